"""A dataset's values for its methods' fixed hyperparameters (``datasets[i].method_params``).

Some hyperparameters are not searched but still depend on the data in the papers' code, e.g. DCML's
environment-inference interval: 5 passes over the training data on CUB and Cars, 10 on SOP. A dataset
entry sets them per method; every other dataset keeps the method's default::

    datasets:
      - name: sop
        method_params: {dcml: {env_interval: 10}}

Only fixed hyperparameters (a method's defaults outside its search space) can be set: the search
chooses the others. :func:`check_method_params` checks an entry when the config is read (a known
method, a known fixed key, a value of the default's type, and one the method accepts: it is built once
on a two-class context), raising ``ConfigError`` naming the key; :func:`params_for` overlays a
trial's parameters on the dataset's values when a fold's method is built.
"""

from __future__ import annotations

from typing import Any, Mapping

from benchmark.errors import ConfigError, RegistryError
from benchmark.methods.base import MethodContext
from benchmark.methods.registry import get_method


def _same_type(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_method_params(method_params: Any, where: str, dataset: str = "") -> None:
    """Raise ``ConfigError`` naming ``<where>.<method>.<key>`` unless every entry sets a fixed hyperparameter
    (fixed on ``dataset``: see ``MethodSpec.search_space_for``)."""
    if not isinstance(method_params, dict):
        raise ConfigError(f"config key {where!r} expects a mapping of method names to "
                          f"{{hyperparameter: value}}, got {method_params!r}")
    for method, values in method_params.items():
        try:
            spec = get_method(method)
        except RegistryError as exc:
            raise ConfigError(f"config key '{where}.{method}': {exc}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"config key '{where}.{method}' expects a mapping of hyperparameters to values, "
                              f"got {values!r}")
        space = spec.search_space_for(dataset)
        fixed = sorted(set(spec.defaults) - set(space))
        for key, value in values.items():
            path = f"{where}.{method}.{key}"
            if key in space:
                raise ConfigError(f"config key {path!r} is searched ({space[key].describe()}); a dataset "
                                  f"sets only fixed hyperparameters of {method}: {', '.join(fixed) or 'none'}")
            if key not in spec.defaults:
                raise ConfigError(f"unknown config key {path!r} (fixed hyperparameters of {method}: "
                                  f"{', '.join(fixed) or 'none'})")
            default = spec.defaults[key]
            if not _same_type(value, default):
                raise ConfigError(f"config key {path!r} expects {type(default).__name__} (default {default!r}), "
                                  f"got {value!r}")
        try:
            spec.create(MethodContext(num_classes=2, embedding_dim=2), dict(values))
        except ConfigError as exc:
            raise ConfigError(f"config key '{where}.{method}': {exc}") from None


def params_for(method: str, method_params: Mapping[str, Mapping[str, Any]], params: Mapping[str, Any],
               dataset: str = "") -> dict:
    """The hyperparameters a fold's ``method`` is built with: the registry's fixed values on ``dataset``
    (``MethodSpec.fixed_for``), the dataset entry's fixed values, then ``params``."""
    return {**get_method(method).fixed_for(dataset), **method_params.get(method, {}), **params}
