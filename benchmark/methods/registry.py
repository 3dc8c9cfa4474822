"""The method registry: one decorated function per method, carrying its loss, search space and defaults.

    @register_method(
        name="contrastive", display_name="Contrastive", source="Hadsell et al., CVPR 2006",
        search_space={"pos_margin": Float(-0.2, 2), "neg_margin": Float(-0.2, 2)},
        defaults={"pos_margin": 0.0, "neg_margin": 1.0},
    )
    def contrastive(hp, ctx):
        return PMLMethod(losses.ContrastiveLoss(**hp))

The decorated function receives the hyperparameters (defaults overlaid with the trial's values)
and a ``MethodContext`` and returns a ``Method``. Nothing else in the code changes for a new method.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from benchmark.errors import RegistryError
from benchmark.methods.base import Method, MethodContext
from benchmark.methods.search_space import Param, validate_values

BuildFn = Callable[[dict, MethodContext], Method]


@dataclass(frozen=True)
class MethodSpec:
    """Everything the harness knows about one method."""

    name: str
    display_name: str
    build: BuildFn
    search_space: Mapping[str, Param]
    defaults: Mapping[str, Any]
    source: str = ""
    #: The loss needs the number of training classes (proxies, classifier weights).
    needs_num_classes: bool = False
    #: The loss has learnable parameters; ``loss_lr`` is then its learning rate.
    has_parameters: bool = False
    #: Images per class in a batch (4 for pair/triplet losses, 1 allowed for classification losses).
    m_per_class: int = 4
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def hyperparameters(self, overrides: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """The defaults overlaid with ``overrides`` (validated against the search space)."""
        overrides = dict(overrides or {})
        unknown = set(overrides) - set(self.search_space) - set(self.defaults)
        if unknown:
            raise RegistryError(
                f"method {self.name!r}: unknown hyperparameter(s) {sorted(unknown)} "
                f"(known: {sorted(set(self.search_space) | set(self.defaults))})")
        return {**self.defaults, **overrides}

    def create(self, ctx: MethodContext, overrides: Optional[Mapping[str, Any]] = None) -> Method:
        """Build the method for ``ctx`` with its defaults overlaid with ``overrides``."""
        return self.build(self.hyperparameters(overrides), ctx)


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(*, name: str, display_name: str, search_space: Mapping[str, Param],
                    defaults: Mapping[str, Any], source: str = "", needs_num_classes: bool = False,
                    has_parameters: bool = False, m_per_class: int = 4,
                    extra: Optional[Mapping[str, Any]] = None) -> Callable[[BuildFn], BuildFn]:
    """Decorator registering ``fn(hp, ctx) -> Method`` under ``name``. A duplicate name raises."""

    def decorator(fn: BuildFn) -> BuildFn:
        if name in _REGISTRY:
            raise RegistryError(f"method {name!r} is already registered (by {_REGISTRY[name].build.__module__})")
        if has_parameters and "loss_lr" not in search_space and "loss_lr" not in defaults:
            raise RegistryError(f"method {name!r} has parameters but no 'loss_lr' default or search range")
        missing = set(search_space) - set(defaults)
        if missing:
            raise RegistryError(f"method {name!r}: no default for searched parameter(s) {sorted(missing)}")
        validate_values(search_space, {k: v for k, v in defaults.items() if k in search_space},
                        where=f"method {name!r} defaults")
        _REGISTRY[name] = MethodSpec(
            name=name, display_name=display_name, build=fn, search_space=dict(search_space),
            defaults=dict(defaults), source=source, needs_num_classes=needs_num_classes,
            has_parameters=has_parameters, m_per_class=m_per_class,
            description=(fn.__doc__ or "").strip(), extra=dict(extra or {}))
        return fn

    return decorator


def unregister_method(name: str) -> None:
    """Remove ``name`` from the registry (for tests and notebooks that register throw-away methods)."""
    _REGISTRY.pop(name, None)


_LOADED = False


def _load_builtin_methods() -> None:
    """Import every module of ``benchmark.methods.library`` so their decorators run (once)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from benchmark.methods import library

    for info in pkgutil.iter_modules(library.__path__):
        importlib.import_module(f"{library.__name__}.{info.name}")


def get_method(name: str) -> MethodSpec:
    """The registered method ``name``; an unknown name raises ``RegistryError`` listing the known ones."""
    _load_builtin_methods()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RegistryError(f"unknown method {name!r} (known: {', '.join(sorted(_REGISTRY))})") from None


def list_methods() -> list[MethodSpec]:
    """Every registered method, in registration order of the library modules (sorted by name)."""
    _load_builtin_methods()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
