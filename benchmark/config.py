"""Run configuration: typed dataclasses, strict YAML loading (unknown keys are errors), presets, overrides.

A config file (see ``configs/``) names the methods, the datasets and the budgets. Every key is
checked against the dataclasses below: a misspelt key is rejected with its dotted path, never
silently ignored. ``--set a.b=value`` overrides any key from the command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

import yaml

from benchmark.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
#: ``training.regime`` values.
REGIMES = ("end_to_end", "frozen")


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
    pruning: bool = True
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
    from benchmark.data.splits import FOLD_MODES
    from benchmark.methods import get_method
    from benchmark.models.trunks import TRUNKS

    if not cfg.methods:
        raise ConfigError("config key 'methods' must list at least one method")
    for name in cfg.methods:
        get_method(name)
    if len(set(cfg.methods)) != len(cfg.methods):
        raise ConfigError(f"config key 'methods' lists a method twice: {cfg.methods}")
    if cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise ConfigError(f"config key 'device' must be auto, cpu or cuda[:N], got {cfg.device!r}")
    if cfg.model.trunk not in TRUNKS:
        raise ConfigError(f"config key 'model.trunk' must be one of {TRUNKS}, got {cfg.model.trunk!r}")
    _validate_frozen(cfg.frozen)
    p = cfg.protocol
    if p.fold_mode not in FOLD_MODES:
        raise ConfigError(f"config key 'protocol.fold_mode' must be one of {FOLD_MODES}, got {p.fold_mode!r}")
    if p.sampler not in ("tpe", "gp", "random"):
        raise ConfigError(f"config key 'protocol.sampler' must be tpe, gp or random, got {p.sampler!r}")
    for key in ("n_folds", "n_trials", "n_repeats"):
        if getattr(p, key) < (2 if key == "n_folds" else 1):
            raise ConfigError(f"config key 'protocol.{key}' is too small: {getattr(p, key)}")
    names = [d.key for d in cfg.datasets]
    if len(set(names)) != len(names):
        raise ConfigError(f"config key 'datasets' lists a dataset twice: {names} (give each a distinct 'label')")
    for i, d in enumerate(cfg.datasets):
        try:
            t = cfg.training_for(d)
        except TypeError:
            bad = sorted(set(d.training) - {f.name for f in dataclasses.fields(TrainingConfig)})
            raise ConfigError(f"unknown config key 'datasets[{i}].training.{bad[0]}'") from None
        _validate_training(t, f"datasets[{i}].training" if d.training else "training")


def _validate_frozen(f: FrozenConfig) -> None:
    from benchmark.models.cached_trunk import CUTS

    if f.cut not in CUTS:
        raise ConfigError(f"config key 'frozen.cut' must be one of {CUTS}, got {f.cut!r}")
    for key in ("grid", "views"):
        if getattr(f, key) < 1:
            raise ConfigError(f"config key 'frozen.{key}' must be >= 1, got {getattr(f, key)}")


def _validate_training(t: TrainingConfig, path: str) -> None:
    if t.regime not in REGIMES:
        raise ConfigError(f"config key '{path}.regime' must be one of {REGIMES}, got {t.regime!r}")
    if t.optimizer not in ("rmsprop", "adam", "sgd"):
        raise ConfigError(f"config key '{path}.optimizer' must be rmsprop, adam or sgd, got {t.optimizer!r}")
    if t.threads < 0:
        raise ConfigError(f"config key '{path}.threads' must be >= 0 (0: torch's default), got {t.threads}")
    for key in ("batch_size", "m_per_class", "iterations_per_epoch", "max_epochs", "val_interval", "patience"):
        if getattr(t, key) < 1:
            raise ConfigError(f"config key '{path}.{key}' must be >= 1, got {getattr(t, key)}")
    if t.batch_size % t.m_per_class:
        raise ConfigError(f"config key '{path}.batch_size' ({t.batch_size}) must be a multiple of m_per_class "
                          f"({t.m_per_class})")


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
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
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
