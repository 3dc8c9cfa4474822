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

import ast
import importlib
import inspect
import pkgutil
import random
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch

from benchmark.errors import RegistryError
from benchmark.methods.base import Method, MethodContext
from benchmark.methods.cross_modal_modes import CROSS_MODAL_MODES
from benchmark.methods.search_space import Categorical, Float, Int, Param, validate_values

BuildFn = Callable[[dict, MethodContext], Method]


@dataclass(frozen=True)
class MethodSpec:
    """Everything the harness knows about one method (checked by ``register_method``)."""

    name: str
    display_name: str
    build: BuildFn
    search_space: Mapping[str, Param]
    defaults: Mapping[str, Any]
    #: The paper (authors, venue, year).
    source: str
    #: The build function's docstring: what ``list-methods`` and the docs say the method is.
    description: str
    #: The loss needs the number of training classes (proxies, classifier weights).
    needs_num_classes: bool = False
    #: The loss has learnable parameters; ``loss_lr`` (searched) is then their learning rate.
    has_parameters: bool = False
    #: Images per class in a batch (4 for pair/triplet losses, 1 allowed for classification losses).
    m_per_class: int = 4
    #: Epochs at the start of each fold with the trunk frozen and only the head trained.
    warmup_epochs: int = 0
    #: The method works on the trunk's spatial map (attention, re-pooling), not only its pooled features:
    #: a frozen regime that caches a 1x1 map (``frozen.grid: 1`` after the last stage) cannot serve it.
    needs_spatial_map: bool = False
    #: The method can train on cached trunk outputs (``training.regime: frozen``).
    can_run_frozen: bool = True
    #: Per dataset name (``datasets[i].name``, e.g. ``sop``): parameters whose range differs there (a
    #: ``Param``), or that are not searched there (a plain value, used instead of the default).
    dataset_search_spaces: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: How the method trains two modalities (``benchmark.methods.cross_modal.CROSS_MODAL_MODES``): ``reference``
    #: (queries of one modality against references of the other), ``shared`` (each modality against the same
    #: proxies), ``native`` (a cross-modal loss by construction, on paired datasets only); None: it cannot.
    cross_modal: Optional[str] = None

    def search_space_for(self, dataset: str) -> dict[str, Param]:
        """The search space on ``dataset``: ``search_space`` with that dataset's ranges, less its fixed values."""
        return _space_on(self.search_space, self.dataset_search_spaces.get(dataset, {}))

    def fixed_for(self, dataset: str) -> dict[str, Any]:
        """The values of the parameters not searched on ``dataset`` (overriding the defaults there)."""
        return {k: v for k, v in self.dataset_search_spaces.get(dataset, {}).items() if not _is_param(v)}

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


def _is_param(value: Any) -> bool:
    return isinstance(value, (Float, Int, Categorical))


def _space_on(space: Mapping[str, Param], overrides: Mapping[str, Any]) -> dict[str, Param]:
    """``space`` with a dataset's overrides: a ``Param`` replaces a range, a plain value removes the key."""
    out = {**space, **{k: v for k, v in overrides.items() if _is_param(v)}}
    return {k: v for k, v in out.items() if k not in overrides or _is_param(overrides[k])}


_REGISTRY: dict[str, MethodSpec] = {}
#: Method names appear in storage keys, file names and tables.
_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: The learning rate of a method's own parameters is searched over the same range for every method.
LOSS_LR_RANGE = Float(1e-6, 1.0, log=True)


def register_method(*, name: str, display_name: str, search_space: Mapping[str, Param],
                    defaults: Mapping[str, Any], source: str, needs_num_classes: bool = False,
                    has_parameters: bool = False, m_per_class: int = 4, warmup_epochs: int = 0,
                    needs_spatial_map: bool = False, can_run_frozen: bool = True,
                    dataset_search_spaces: Optional[Mapping[str, Mapping[str, Any]]] = None,
                    cross_modal: Optional[str] = None) -> Callable[[BuildFn], BuildFn]:
    """Decorator registering ``fn(hp, ctx) -> Method`` under ``name``.

    Raises ``RegistryError`` for anything a method must satisfy: a new lower-case name, a display name, a
    source, a docstring on ``fn`` (the method's description), something to search, a default inside the
    range for every searched parameter, ``loss_lr`` searched over ``LOSS_LR_RANGE`` exactly when the method
    has parameters, at least one image per class in a batch, a non-negative warm-up, and every default
    (searched or fixed) read by ``fn`` (called once with the defaults on a small context: ``_check_keys_read``);
    ``dataset_search_spaces`` overrides only searched parameters, leaves something to search and keeps
    every default inside its dataset's range.
    """

    def decorator(fn: BuildFn) -> BuildFn:
        where = f"method {name!r} ({getattr(fn, '__module__', '?')})"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise RegistryError(f"method name {name!r} must be lower-case letters, digits and _ (it names files)")
        if name in _REGISTRY:
            raise RegistryError(f"method {name!r} is already registered (by {_REGISTRY[name].build.__module__})")
        if not display_name.strip() or not source.strip():
            raise RegistryError(f"{where}: needs a display_name and a source (authors, venue, year)")
        description = (fn.__doc__ or "").strip()
        if not description:
            raise RegistryError(f"{where}: the build function {fn.__name__}() needs a docstring (the method's "
                                f"description in list-methods)")
        if not search_space:
            raise RegistryError(f"{where}: the search space is empty (every method searches something)")
        if has_parameters and search_space.get("loss_lr") != LOSS_LR_RANGE:
            raise RegistryError(f"{where} has parameters: search 'loss_lr' over {LOSS_LR_RANGE.describe()}, "
                                f"as every method with parameters does")
        if not has_parameters and "loss_lr" in search_space:
            raise RegistryError(f"{where} searches 'loss_lr' but has no parameters (set has_parameters=True)")
        missing = set(search_space) - set(defaults)
        if missing:
            raise RegistryError(f"{where}: no default for searched parameter(s) {sorted(missing)}")
        if isinstance(m_per_class, bool) or not isinstance(m_per_class, int) or m_per_class < 1:
            raise RegistryError(f"{where}: m_per_class must be a positive integer, got {m_per_class!r}")
        if cross_modal not in (None, *CROSS_MODAL_MODES):
            raise RegistryError(f"{where}: cross_modal must be one of {', '.join(CROSS_MODAL_MODES)} or None, "
                                f"got {cross_modal!r}")
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise RegistryError(f"{where}: warmup_epochs must be a non-negative integer, got {warmup_epochs!r}")
        validate_values(search_space, {k: v for k, v in defaults.items() if k in search_space},
                        where=f"method {name!r} defaults")
        for dataset, overrides in (dataset_search_spaces or {}).items():
            unknown = set(overrides) - set(search_space)
            if unknown:
                raise RegistryError(f"{where}: dataset_search_spaces[{dataset!r}] overrides unsearched "
                                    f"parameter(s) {sorted(unknown)}")
            space = _space_on(search_space, overrides)
            if not space:
                raise RegistryError(f"{where}: dataset_search_spaces[{dataset!r}] leaves nothing to search")
            validate_values(space, {k: v for k, v in defaults.items() if k in space},
                            where=f"method {name!r} defaults on {dataset}")
        _check_keys_read(fn, {**defaults}, where)
        _REGISTRY[name] = MethodSpec(
            name=name, display_name=display_name, build=fn, search_space=dict(search_space),
            defaults=dict(defaults), source=source, description=description, needs_num_classes=needs_num_classes,
            has_parameters=has_parameters, m_per_class=m_per_class, warmup_epochs=warmup_epochs,
            needs_spatial_map=needs_spatial_map, can_run_frozen=can_run_frozen,
            dataset_search_spaces={k: dict(v) for k, v in (dataset_search_spaces or {}).items()},
            cross_modal=cross_modal)
        return fn

    return decorator


class _RecordingParams(dict):
    """The hyperparameters handed to a build function at registration, recording which keys it reads
    (``hp[k]``, ``hp.get(k)``, ``**hp``, ``dict(hp)``: the last two read every key)."""

    def __init__(self, values: Mapping[str, Any]):
        super().__init__(values)
        self.read: set[str] = set()
        self.missing: list[str] = []

    def __getitem__(self, key):
        self.read.add(key)
        if not super().__contains__(key):
            self.missing.append(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __iter__(self):  # a dict subclass with its own __iter__ is unpacked (``**hp``) through keys() and [k]
        return iter(list(super().keys()))

    def keys(self):
        return list(super().keys())

    def items(self):
        self.read.update(super().keys())
        return list(super().items())

    def values(self):
        self.read.update(super().keys())
        return list(super().values())

    def copy(self):
        self.read.update(super().keys())
        return dict(super().items())


def _keys_in_source(fn: BuildFn) -> Optional[set[str]]:
    """String keys the source of ``fn`` reads from its first parameter (``hp["k"]``, ``hp.get("k")``), or None
    when the source is not available. Catches a read that the defaults do not reach (``if hp["a"]: hp["b"]``)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        first = next(iter(inspect.signature(fn).parameters))
    except (OSError, TypeError, SyntaxError, StopIteration):
        return None
    keys = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == first
                and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
            keys.add(node.slice.value)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and isinstance(node.func.value, ast.Name) and node.func.value.id == first and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            keys.add(node.args[0].value)
    return keys


#: The context of the build at registration (small: building a method allocates its proxies and heads).
_PROBE_CONTEXT = MethodContext(num_classes=8, embedding_dim=16)


def _check_keys_read(fn: BuildFn, defaults: dict[str, Any], where: str) -> None:
    """Refuse a default (searched or fixed) that ``fn`` never reads, and a key it reads without a default.

    ``fn`` is called once with the defaults in a recording mapping on a small context (the global random
    states are kept as they were); a key counts as read when the call read it or the source reads it by
    name. A build that fails on the small context is not judged (its own tests show why it fails)."""
    params = _RecordingParams(defaults)
    state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            fn(params, _PROBE_CONTEXT)
        built = True
    except Exception:  # noqa: BLE001 - judged by the method's own tests, not at registration
        built = False
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
    if params.missing:
        raise RegistryError(f"{where}: the build function reads hyperparameter {params.missing[0]!r}, which has "
                            f"no default (known: {', '.join(sorted(defaults)) or 'none'})")
    if not built:
        return
    read = params.read | (_keys_in_source(fn) or set())
    unread = sorted(set(defaults) - read)
    if unread:
        reads = ", ".join(sorted(read)) or "none"
        raise RegistryError(f"{where}: hyperparameter {unread[0]!r} has a default but the build function "
                            f"{fn.__name__}() never reads it (misspelled? it reads: {reads})")


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
