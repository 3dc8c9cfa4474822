"""Run configuration: typed dataclasses, strict YAML loading (unknown keys are errors), presets, overrides.

A config file (see ``configs/``) names the methods, the datasets and the budgets. Every key is
checked against the dataclasses below: a misspelt key is rejected with its dotted path, never
silently ignored. ``--set a.b=value`` overrides any key from the command line.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

import yaml

from benchmark.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
#: ``training.regime`` values.
REGIMES = ("end_to_end", "frozen")
#: ``protocol.pruner`` values.
PRUNERS = ("none", "median", "hyperband")


@dataclass
class ModelConfig:
    """Trunk and embedder."""

    trunk: str = "small_cnn"
    embedding_dim: int = 128
    pretrained: bool = True
    freeze_bn: bool = True
    #: Epochs of classification pretraining of the small CNN on the built-in dataset's held-out pool.
    pretrain_epochs: int = 8


@dataclass
class TrainingConfig:
    """Training of one fold (reference values from the reality-check protocol where they apply)."""

    batch_size: int = 32
    m_per_class: int = 4
    iterations_per_epoch: int = 100
    max_epochs: int = 1000
    #: Validate every this many epochs (2 CUB, 5 Cars, 20 SOP in the reference).
    val_interval: int = 2
    #: Stop after this many epochs without a better validation MAP@R (9 / 14 / 39 in the reference).
    patience: int = 9
    optimizer: str = "rmsprop"
    lr_trunk: float = 1e-6
    lr_embedder: float = 1e-6
    weight_decay: float = 1e-4
    momentum: float = 0.9
    num_workers: int = 0
    eval_batch_size: int = 256
    #: ``end_to_end`` (the trunk trains on images) or ``frozen`` (the part of the trunk before
    #: ``frozen.cut`` is run once and cached; the rest trains on its outputs, see ``FrozenConfig``).
    regime: str = "end_to_end"
    #: torch CPU threads while a unit of work trains and tests (0: torch's default). 1 suits the frozen
    #: regime's small models on a shared CPU, where idle threads of a busy pool spin and stall.
    threads: int = 0


@dataclass
class FrozenConfig:
    """The frozen-trunk regime (``training.regime: frozen``, implied by a ``features`` dataset)."""

    #: ``after_last``: cache the trunk's output map; ``before_last``: cache the last stage's input
    #: (the last stage then trains on it).
    cut: str = "after_last"
    #: The map is average-pooled to ``grid x grid`` and flattened for the embedder (1 = global pooling).
    grid: int = 4
    #: Augmented views (training transform) cached per training image; a batch takes one at random.
    views: int = 4
    #: Keep the outputs on disk under the cache folder (``$DML_BENCH_CACHE`` or ``~/.cache/dml-bench``).
    cache: bool = True


@dataclass
class ProtocolConfig:
    """Cross-validation, hyperparameter search, repeats and the storage that coordinates workers."""

    n_folds: int = 4
    fold_mode: str = "contiguous"
    n_trials: int = 50
    n_repeats: int = 10
    sampler: str = "tpe"
    n_startup_trials: int = 10
    #: Early stopping of unpromising search trials (``benchmark.protocol.fidelity``): ``none``, ``median``
    #: (the running mean against the median of earlier trials, at fold ends) or ``hyperband`` (at every
    #: validation, across folds; the default, from ``benchmarks/search_efficiency.py``; the reality-check preset
    #: says ``none``). Slot 0, the method's defaults, is never pruned.
    pruner: str = "hyperband"
    #: Training iterations one search (one method on one dataset) may spend in all, over all its trials
    #: (``benchmark.protocol.budget``); null: only ``n_trials`` bounds it.
    budget_iterations: Optional[int] = None
    #: Optuna storage URL (e.g. ``postgresql://user:pw@host/db``); None = a journal file in the run folder.
    storage: Optional[str] = None
    #: Seconds without a heartbeat after which another worker may take over a unit of work.
    grace_period: int = 1800
    #: Seconds a worker waits before looking again for work held by other workers.
    poll_interval: float = 10.0


@dataclass
class EvaluationConfig:
    """Test-set evaluation."""

    recall_at: list = field(default_factory=lambda: [1])
    #: False-accept rate of the verification report (TAR at this FAR); null turns verification off.
    verification_far: Optional[float] = 1e-3


@dataclass
class DatasetConfig:
    """One dataset of the leaderboard; ``training`` overrides the global training keys for it."""

    name: str = "builtin"
    #: The dataset's name in results and tables (default: ``name``); lets one leaderboard hold the
    #: same dataset twice with different options, e.g. the built-in dataset at two context biases.
    label: Optional[str] = None
    root: Optional[str] = None
    options: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    recall_at: Optional[list] = None

    @property
    def key(self) -> str:
        """The dataset's identifier in the storage, results and tables."""
        return self.label or self.name


@dataclass
class BenchmarkConfig:
    """A whole leaderboard: every method on every dataset, under one protocol."""

    name: str = "benchmark"
    seed: int = 0
    #: Method names, or the string ``all`` in a config file for every registered method.
    device: str = "auto"
    methods: list = field(default_factory=lambda: ["contrastive"])
    datasets: list = field(default_factory=lambda: [DatasetConfig()])
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    frozen: FrozenConfig = field(default_factory=FrozenConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def training_for(self, dataset: DatasetConfig) -> TrainingConfig:
        """The training config of ``dataset`` (global values overlaid with its own)."""
        return dataclasses.replace(self.training, **dataset.training)

    def recall_at_for(self, dataset: DatasetConfig) -> list:
        return list(dataset.recall_at if dataset.recall_at is not None else self.evaluation.recall_at)


def _check_type(value: Any, hint: Any, path: str) -> Any:
    origin = get_origin(hint)
    if origin is Union:
        args = [a for a in get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _check_type(value, args[0], path)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 5e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"config key {path!r} expects {hint.__name__}, got {value!r}")
        return value
    if hint in (list, dict) or origin in (list, dict):
        base = origin or hint
        if not isinstance(value, base):
            raise ConfigError(f"config key {path!r} expects a {base.__name__}, got {value!r}")
    return value


def _build(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config section {path or 'top level'!r} must be a mapping, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(f"unknown config key {where!r} (known keys{' of ' + path if path else ''}: "
                          f"{', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        sub = f"{path}.{name}" if path else name
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, sub)
        elif name == "methods" and cls is BenchmarkConfig and value == "all":
            from benchmark.methods import list_methods

            kwargs[name] = [m.name for m in list_methods()]
        elif name == "datasets" and cls is BenchmarkConfig:
            if not isinstance(value, list) or not value:
                raise ConfigError("config key 'datasets' expects a non-empty list")
            kwargs[name] = [_build(DatasetConfig, {"name": d} if isinstance(d, str) else d, f"datasets[{i}]")
                            for i, d in enumerate(value)]
        else:
            kwargs[name] = _check_type(value, hint, sub)
    return cls(**kwargs)


def config_from_dict(data: dict) -> BenchmarkConfig:
    """Build and validate a config from a plain mapping (as read from YAML)."""
    cfg = _build(BenchmarkConfig, data, "")
    validate(cfg)
    return cfg


def config_to_dict(cfg: BenchmarkConfig) -> dict:
    return dataclasses.asdict(cfg)


def validate(cfg: BenchmarkConfig) -> None:
    """Check values that types alone cannot (names, ranges); raise ConfigError naming the key."""
    from benchmark.data.catalog import check_dataset_entry
    from benchmark.data.splits import FOLD_MODES
    from benchmark.methods import get_method
    from benchmark.models.trunks import TRUNKS

    _check_name(cfg.name, "name")
    _check_range(cfg.seed, "seed", lo=0, hi=MAX_SEED)
    if not cfg.methods:
        raise ConfigError("config key 'methods' must list at least one method")
    for i, name in enumerate(cfg.methods):
        if not isinstance(name, str):
            raise ConfigError(f"config key 'methods[{i}]' expects a method name (str), got {name!r}")
        get_method(name)
    if len(set(cfg.methods)) != len(cfg.methods):
        raise ConfigError(f"config key 'methods' lists a method twice: {cfg.methods}")
    if cfg.device not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", cfg.device):
        raise ConfigError(f"config key 'device' must be auto, cpu or cuda[:N], got {cfg.device!r}")
    m = cfg.model
    if m.trunk not in TRUNKS:
        raise ConfigError(f"config key 'model.trunk' must be one of {TRUNKS}, got {m.trunk!r}")
    _check_range(m.embedding_dim, "model.embedding_dim", lo=1, hi=MAX_EMBEDDING_DIM)
    _check_range(m.pretrain_epochs, "model.pretrain_epochs", lo=1)
    _validate_frozen(cfg.frozen)
    p = cfg.protocol
    if p.fold_mode not in FOLD_MODES:
        raise ConfigError(f"config key 'protocol.fold_mode' must be one of {FOLD_MODES}, got {p.fold_mode!r}")
    if p.sampler not in ("tpe", "gp", "random"):
        raise ConfigError(f"config key 'protocol.sampler' must be tpe, gp or random, got {p.sampler!r}")
    if p.pruner not in PRUNERS:
        raise ConfigError(f"config key 'protocol.pruner' must be one of {', '.join(PRUNERS)}, got {p.pruner!r}")
    _check_range(p.n_folds, "protocol.n_folds", lo=2)
    _check_range(p.n_trials, "protocol.n_trials", lo=1)
    _check_range(p.n_repeats, "protocol.n_repeats", lo=1)
    _check_range(p.n_startup_trials, "protocol.n_startup_trials", lo=0)
    _check_range(p.grace_period, "protocol.grace_period", lo=1)
    _check_range(p.poll_interval, "protocol.poll_interval", lo=0.0, lo_open=True)
    if p.storage is not None and not p.storage.strip():
        raise ConfigError("config key 'protocol.storage' is empty (give a storage URL, or null for a journal file "
                          "in the run folder)")
    _check_recall_at(cfg.evaluation.recall_at, "evaluation.recall_at")
    far = cfg.evaluation.verification_far
    if far is not None:
        _check_range(far, "evaluation.verification_far", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    names = [d.key for d in cfg.datasets]
    if len(set(names)) != len(names):
        raise ConfigError(f"config key 'datasets' lists a dataset twice: {names} (give each a distinct 'label')")
    for i, d in enumerate(cfg.datasets):
        where = f"datasets[{i}]"
        check_dataset_entry(d.name, d.root, d.options, where)
        if d.label is not None:
            _check_name(d.label, f"{where}.label")
        if d.recall_at is not None:
            _check_recall_at(d.recall_at, f"{where}.recall_at")
        _check_dataset_training(d.training, f"{where}.training")
        _validate_training(cfg.training_for(d), f"{where}.training" if d.training else "training")
        _check_budget(cfg, d, where)


#: Seeds are non-negative 63-bit integers (numpy and the built-in dataset take them as they are).
MAX_SEED = 2**63 - 1
#: A larger embedding is a typo, not an experiment (the reality check uses 128 per fold).
MAX_EMBEDDING_DIM = 65_536
#: Data-loading processes; more would exhaust process or memory limits before helping.
MAX_NUM_WORKERS = 256
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")


def _check_name(value: str, path: str) -> None:
    """A name used in file and folder names: no path separators, no leading dot, not empty."""
    if not _NAME.fullmatch(value):
        raise ConfigError(f"config key {path!r} must be a name of letters, digits and . _ + = - (not starting "
                          f"with . or -; it names files and folders), got {value!r}")


def _check_range(value: float, path: str, *, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False, hi_open: bool = False) -> None:
    """``value`` finite and within [lo, hi] (an end excluded when ``*_open``), else ConfigError."""
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and (value >= hi if hi_open else value > hi)
    if (isinstance(value, float) and not math.isfinite(value)) or too_low or too_high:
        if lo is not None and hi is not None:
            expected = f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        elif lo is not None:
            expected = f"{'>' if lo_open else '>='} {lo}"
        else:
            expected = f"{'<' if hi_open else '<='} {hi}"
        raise ConfigError(f"config key {path!r} must be a finite number {expected}, got {value!r}"
                          if isinstance(value, float) else f"config key {path!r} must be {expected}, got {value!r}")


def _check_recall_at(values: list, path: str) -> None:
    """A non-empty list of distinct positive integers (the K of Recall@K)."""
    if not values:
        raise ConfigError(f"config key {path!r} must list at least one K (e.g. [1, 2, 4, 8]), got {values!r}")
    for i, k in enumerate(values):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"config key '{path}[{i}]' must be a positive integer, got {k!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"config key {path!r} lists a K twice: {values}")


def _check_dataset_training(overrides: dict, path: str) -> None:
    """A dataset's ``training`` overrides: known keys, each of the global key's type."""
    hints = get_type_hints(TrainingConfig)
    for key, value in overrides.items():
        if key not in hints:
            raise ConfigError(f"unknown config key '{path}.{key}' (known keys of training: "
                              f"{', '.join(sorted(hints))})")
        overrides[key] = _check_type(value, hints[key], f"{path}.{key}")


def _validate_frozen(f: FrozenConfig) -> None:
    from benchmark.models.cached_trunk import CUTS

    if f.cut not in CUTS:
        raise ConfigError(f"config key 'frozen.cut' must be one of {CUTS}, got {f.cut!r}")
    for key in ("grid", "views"):
        _check_range(getattr(f, key), f"frozen.{key}", lo=1)


def _validate_training(t: TrainingConfig, path: str) -> None:
    if t.regime not in REGIMES:
        raise ConfigError(f"config key '{path}.regime' must be one of {REGIMES}, got {t.regime!r}")
    if t.optimizer not in ("rmsprop", "adam", "sgd"):
        raise ConfigError(f"config key '{path}.optimizer' must be rmsprop, adam or sgd, got {t.optimizer!r}")
    for key in ("batch_size", "m_per_class", "iterations_per_epoch", "max_epochs", "val_interval", "patience",
                "eval_batch_size"):
        _check_range(getattr(t, key), f"{path}.{key}", lo=1)
    _check_range(t.num_workers, f"{path}.num_workers", lo=0, hi=MAX_NUM_WORKERS)
    _check_range(t.threads, f"{path}.threads", lo=0, hi=MAX_NUM_WORKERS)
    for key in ("lr_trunk", "lr_embedder", "weight_decay"):
        _check_range(getattr(t, key), f"{path}.{key}", lo=0.0)
    _check_range(t.momentum, f"{path}.momentum", lo=0.0, hi=1.0, hi_open=True)
    if t.batch_size % t.m_per_class:
        raise ConfigError(f"config key '{path}.batch_size' ({t.batch_size}) must be a multiple of m_per_class "
                          f"({t.m_per_class})")


def _check_budget(cfg: BenchmarkConfig, d: DatasetConfig, where: str) -> None:
    """``protocol.budget_iterations``, when set, holds at least one trial trained to the end on dataset ``d``."""
    budget = cfg.protocol.budget_iterations
    if budget is None:
        return
    t = cfg.training_for(d)
    most = cfg.protocol.n_folds * t.max_epochs * t.iterations_per_epoch
    if budget < most:
        raise ConfigError(f"config key 'protocol.budget_iterations' ({budget}) must be at least one trial's maximum "
                          f"on {where} ({d.key}): n_folds x max_epochs x iterations_per_epoch = {most}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"training.max_epochs=3"`` -> (["training", "max_epochs"], 3); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}")
    return key.strip().split("."), yaml.safe_load(raw)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``--set`` overrides to a raw config mapping (validation happens when it is built)."""
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {k!r} is not a section")
        node[keys[-1]] = value
    return data


def preset_path(name: str) -> Path:
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(known)})")
    return path


def read_config_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} {'is not a file' if path.exists() else 'does not exist'}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return data


def load_config(*, preset: Optional[str] = None, path: Optional[str | Path] = None,
                overrides: Optional[list[str]] = None) -> BenchmarkConfig:
    """The config from a preset name or a file, with ``--set`` overrides applied and validated."""
    if (preset is None) == (path is None):
        raise ConfigError("give exactly one of --preset or --config")
    data = read_config_file(preset_path(preset) if preset else path)
    return config_from_dict(apply_overrides(data, list(overrides or [])))
