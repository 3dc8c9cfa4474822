"""Run configuration: typed, frozen dataclasses, strict YAML loading, presets and ``--set`` overrides.

This module is a leaf: it imports nothing from the layers it configures. It knows every key's type
and numeric range (declared next to the key, in the field's metadata), rejects unknown keys with
their dotted path, and builds the frozen config. Names that belong to a layer (methods, trunks,
optimizers, samplers, dataset entries) are checked by that layer, and one function assembles and
cross-checks a whole run's config: ``benchmark.protocol.run_config.assemble_config``.
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
from benchmark.secrets import redact_text, redact_url

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
#: Seeds are non-negative 63-bit integers (numpy and the built-in dataset take them as they are).
MAX_SEED = 2**63 - 1
#: A larger embedding is a typo, not an experiment (the reality check uses 128 per fold).
MAX_EMBEDDING_DIM = 65_536
#: Data-loading processes; more would exhaust process or memory limits before helping.
MAX_NUM_WORKERS = 256


def bounded(default: Any, *, lo: Optional[float] = None, hi: Optional[float] = None, lo_open: bool = False,
            hi_open: bool = False, keywords: tuple[str, ...] = ()) -> Any:
    """A dataclass field with a numeric range, checked by ``parse_config`` (``None`` values are not checked);
    a number-or-keyword key (e.g. ``num_workers: auto``) lists its ``keywords``."""
    return field(default=default, metadata={"range": (lo, hi, lo_open, hi_open), "keywords": keywords})


@dataclass(frozen=True)
class ModelConfig:
    """Trunk and embedder (the trunk's name is checked by ``benchmark.models``)."""

    trunk: str = "small_cnn"
    embedding_dim: int = bounded(128, lo=1, hi=MAX_EMBEDDING_DIM)
    pretrained: bool = True
    #: The pretrained weights file of a ``bn_inception`` or ``timm:<name>`` trunk (default: the caches').
    weights: Optional[str] = None
    freeze_bn: bool = True
    #: Epochs of classification pretraining of the small CNN on the built-in dataset's held-out pool.
    pretrain_epochs: int = bounded(8, lo=1)


@dataclass(frozen=True)
class TrainingConfig:
    """Training of one fold (reference values from the reality-check protocol where they apply).

    ``optimizer`` and ``regime`` are names checked by ``benchmark.training``."""

    batch_size: int = bounded(32, lo=1)
    m_per_class: int = bounded(4, lo=1)
    iterations_per_epoch: int = bounded(100, lo=1)
    max_epochs: int = bounded(1000, lo=1)
    #: Validate every this many epochs (2 CUB, 5 Cars, 20 SOP in the reference).
    val_interval: int = bounded(2, lo=1)
    #: Stop after this many epochs without a better validation MAP@R (9 / 14 / 39 in the reference).
    patience: int = bounded(9, lo=1)
    #: When patience runs out (``benchmark.training.schedule``): ``harness`` (after any epoch, once
    #: ``epoch - best >= patience``) or ``published`` (the reality-check code: at validation epochs only,
    #: once ``epoch - best > patience``, one validation later). Checked by ``benchmark.training``.
    early_stopping: str = "harness"
    optimizer: str = "rmsprop"
    lr_trunk: float = bounded(1e-6, lo=0.0)
    lr_embedder: float = bounded(1e-6, lo=0.0)
    weight_decay: float = bounded(1e-4, lo=0.0)
    #: Weight decay of the loss's own parameters (proxies, beta; ``benchmark.training.optim``): 0 here,
    #: 1e-4 in the reality-check code's optimizer file for losses with parameters.
    loss_weight_decay: float = bounded(0.0, lo=0.0)
    momentum: float = bounded(0.9, lo=0.0, hi=1.0, hi_open=True)
    #: DataLoader worker processes, or ``auto`` (a share of the cores on a GPU run, 0 on a CPU-only one;
    #: see ``benchmark.data.loader_workers``).
    num_workers: Union[int, str] = bounded("auto", lo=0, hi=MAX_NUM_WORKERS, keywords=("auto",))
    eval_batch_size: int = bounded(256, lo=1)
    #: ``end_to_end`` (the trunk trains on images) or ``frozen`` (the part of the trunk before
    #: ``frozen.cut`` is run once and cached; the rest trains on its outputs, see ``FrozenConfig``).
    regime: str = "end_to_end"
    #: torch CPU threads while a unit of work trains and tests (0: torch's default). 1 suits the frozen
    #: regime's small models on a shared CPU, where idle threads of a busy pool spin and stall.
    threads: int = bounded(0, lo=0, hi=MAX_NUM_WORKERS)
    #: Mixed precision of the training step: auto (bf16, or fp16 with a grad scaler, on CUDA; fp32 on a
    #: CPU), fp32 (none), bf16 or fp16. Checked by ``benchmark.training``.
    amp: str = "auto"
    #: Layout of the model and images: auto (channels-last on CUDA, contiguous on a CPU), channels_last,
    #: contiguous. Checked by ``benchmark.training``.
    memory_format: str = "auto"
    #: ``torch.compile`` the model's forward for training.
    compile: bool = False


@dataclass(frozen=True)
class FrozenConfig:
    """The frozen-trunk regime (``training.regime: frozen``, implied by a ``features`` dataset)."""

    #: ``after_last``: cache the trunk's output map; ``before_last``: cache the last stage's input
    #: (the last stage then trains on it). Checked by ``benchmark.models``.
    cut: str = "after_last"
    #: The map is average-pooled to ``grid x grid`` and flattened for the embedder (1 = global pooling).
    grid: int = bounded(4, lo=1)
    #: Augmented views (training transform) cached per training image; a batch takes one at random.
    views: int = bounded(4, lo=1)
    #: Keep the outputs on disk under the cache folder (``$DML_BENCH_CACHE`` or ``~/.cache/dml-bench``).
    cache: bool = True


@dataclass(frozen=True)
class ProtocolConfig:
    """Cross-validation, hyperparameter search, repeats and the storage that coordinates workers.

    ``sampler``, ``diverged_trial`` and ``search_order`` are names checked by ``benchmark.protocol``,
    ``fold_mode`` by ``benchmark.data``."""

    n_folds: int = bounded(4, lo=2)
    fold_mode: str = "contiguous"
    n_trials: int = bounded(50, lo=1)
    n_repeats: int = bounded(10, lo=1)
    sampler: str = "tpe"
    #: Trials before the sampler models the objective (slot 0, the defaults, counts; with ``sobol_gp``:
    #: the Sobol points after slot 0), or ``auto``: max(5, number of searched parameters), the Sobol
    #: start of the reality check's Ax search.
    n_startup_trials: Union[int, str] = bounded(10, lo=0, keywords=("auto",))
    #: The search value of a trial with a diverged fold (non-finite loss): ``best`` (the folds' best
    #: validation so far, as if it had stopped) or ``zero`` (the reality-check code's). Checked by
    #: ``benchmark.protocol``.
    diverged_trial: str = "best"
    #: Early stopping of unpromising search trials (``benchmark.protocol.fidelity``): ``none``, ``median``
    #: (the running mean against the median of earlier trials, at fold ends) or ``hyperband`` (at every
    #: validation, across folds; the default, from ``benchmarks/search_efficiency.py``; the reality-check
    #: preset says ``none``). Slot 0, the method's defaults, is never pruned. Checked by ``benchmark.protocol``.
    pruner: str = "hyperband"
    #: Training iterations one search (one method on one dataset) may spend in all, over all its trials
    #: (``benchmark.protocol.budget``); null: only ``n_trials`` bounds it.
    budget_iterations: Optional[int] = bounded(None, lo=1)
    #: Optuna storage URL (e.g. ``postgresql://user:pw@host/db``); None = a journal file in the run folder.
    storage: Optional[str] = None
    #: Seconds without a heartbeat after which another worker may take over a unit of work.
    grace_period: int = bounded(1800, lo=1)
    #: Seconds a worker waits before looking again for work held by other workers.
    poll_interval: float = bounded(10.0, lo=0.0, lo_open=True)
    #: ``ordered``: a method's search slots run one after another, each sampled (and pruned) against the
    #: finished slots before it, so any number of workers gives the table of one; workers share out the
    #: methods, datasets and repeats instead. ``concurrent``: a free worker starts the next slot at once
    #: (TPE's constant liar stands in for running slots): faster with more workers than methods, but the
    #: parameters then depend on the workers' timing. Checked by ``benchmark.protocol``.
    search_order: str = "ordered"
    #: Worker processes ``dml-bench run`` starts on this machine (all on the run's storage), or ``auto``
    #: (every core on a CPU, one per GPU; ``benchmark.protocol.local_workers``).
    workers: Union[int, str] = bounded(1, lo=1, hi=MAX_NUM_WORKERS, keywords=("auto",))


@dataclass(frozen=True)
class EvaluationConfig:
    """Test-set evaluation."""

    recall_at: list[int] = field(default_factory=lambda: [1])
    #: False-accept rate of the verification report (TAR at this FAR); null turns verification off.
    verification_far: Optional[float] = bounded(1e-3, lo=0.0, hi=1.0, lo_open=True, hi_open=True)


@dataclass(frozen=True)
class DatasetConfig:
    """One dataset of the leaderboard; ``training`` overrides the global training keys for it.

    ``name``, ``root`` and ``options`` are checked by ``benchmark.data``."""

    name: str = "builtin"
    #: The dataset's name in results and tables (default: ``name``); lets one leaderboard hold the
    #: same dataset twice with different options, e.g. the built-in dataset at two context biases.
    label: Optional[str] = None
    root: Optional[str] = None
    options: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    recall_at: Optional[list[int]] = None
    #: Fixed (not searched) hyperparameters per method on this dataset, e.g. ``{dcml: {env_interval: 10}}``
    #: (checked by ``benchmark.methods.dataset_params``).
    method_params: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The dataset's identifier in the storage, results and tables."""
        return self.label or self.name


@dataclass(frozen=True)
class BenchmarkConfig:
    """A whole leaderboard: every method on every dataset, under one protocol."""

    name: str = "benchmark"
    seed: int = bounded(0, lo=0, hi=MAX_SEED)
    device: str = "auto"
    #: Method names (a config file may say ``all``; the assembler expands it to every registered method).
    methods: list[str] = field(default_factory=lambda: ["contrastive"])
    datasets: list[DatasetConfig] = field(default_factory=lambda: [DatasetConfig()])
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    frozen: FrozenConfig = field(default_factory=FrozenConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def training_for(self, dataset: DatasetConfig) -> TrainingConfig:
        """The training config of ``dataset`` (global values overlaid with its own)."""
        return dataclasses.replace(self.training, **dataset.training)

    def training_sections(self) -> list[tuple[str, TrainingConfig]]:
        """``(dotted path, training config)`` of every dataset, for checks that name the key."""
        return [(f"datasets[{i}].training" if d.training else "training", self.training_for(d))
                for i, d in enumerate(self.datasets)]

    def recall_at_for(self, dataset: DatasetConfig) -> list:
        return list(dataset.recall_at if dataset.recall_at is not None else self.evaluation.recall_at)


# -- parsing: types, unknown keys, ranges ---------------------------------------------------------

def _check_type(value: Any, hint: Any, path: str) -> Any:
    origin = get_origin(hint)
    if origin is Union:
        args = [a for a in get_args(hint) if a is not type(None)]
        if value is None:
            return None
        if len(args) > 1:  # a number or a keyword: the field's metadata says which keywords
            if isinstance(value, bool) or not isinstance(value, tuple(args)):
                raise ConfigError(f"config key {path!r} expects {' or '.join(a.__name__ for a in args)}, "
                                  f"got {value!r}")
            return value
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
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key {path!r} expects a list, got {value!r}")
        (item,) = get_args(hint)
        return [_check_type(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {path!r} expects a mapping, got {value!r}")
        return dict(value)
    return value


def check_range(value: float, path: str, *, lo: float | None = None, hi: float | None = None,
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


def check_choice(value: str, choices: Any, path: str) -> None:
    """``value`` one of ``choices`` (a layer's table of names), else ConfigError naming the key."""
    if value not in choices:
        raise ConfigError(f"config key {path!r} must be one of {', '.join(choices)}, got {value!r}")


def _build(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config section {path or 'top level'!r} must be a mapping, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(f"unknown config key {where!r} (known keys{' of ' + path if path else ''}: "
                          f"{', '.join(sorted(fields))})")
    kwargs = {}
    for name, value in data.items():
        sub = f"{path}.{name}" if path else name
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, sub)
        elif name == "datasets" and cls is BenchmarkConfig:
            if not isinstance(value, list) or not value:
                raise ConfigError("config key 'datasets' expects a non-empty list")
            kwargs[name] = [_build(DatasetConfig, {"name": d} if isinstance(d, str) else d, f"datasets[{i}]")
                            for i, d in enumerate(value)]
        elif name == "training" and cls is DatasetConfig:
            kwargs[name] = _training_overrides(value, sub)
        else:
            kwargs[name] = _check_type(value, hint, sub)
            _check_field_range(fields[name], kwargs[name], sub)
    return cls(**kwargs)


def _check_field_range(f: dataclasses.Field, value: Any, path: str) -> None:
    keywords = f.metadata.get("keywords", ())
    if keywords and isinstance(value, str):
        if value not in keywords:
            raise ConfigError(f"config key {path!r} must be a number or {' or '.join(keywords)}, got {value!r}")
        return
    if "range" in f.metadata and value is not None:
        lo, hi, lo_open, hi_open = f.metadata["range"]
        check_range(value, path, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open)


def _training_overrides(overrides: Any, path: str) -> dict:
    """A dataset's ``training`` overrides: known keys, each of the global key's type and range."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"config key {path!r} expects a mapping, got {overrides!r}")
    hints = get_type_hints(TrainingConfig)
    fields = {f.name: f for f in dataclasses.fields(TrainingConfig)}
    out = {}
    for key, value in overrides.items():
        if key not in hints:
            raise ConfigError(f"unknown config key '{path}.{key}' (known keys of training: "
                              f"{', '.join(sorted(hints))})")
        out[key] = _check_type(value, hints[key], f"{path}.{key}")
        _check_field_range(fields[key], out[key], f"{path}.{key}")
    return out


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")


def _check_name(value: str, path: str) -> None:
    """A name used in file and folder names: no path separators, no leading dot, not empty."""
    if not _NAME.fullmatch(value):
        raise ConfigError(f"config key {path!r} must be a name of letters, digits and . _ + = - (not starting "
                          f"with . or -; it names files and folders), got {value!r}")


def _check_recall_at(values: list, path: str) -> None:
    """A non-empty list of distinct positive integers (the K of Recall@K)."""
    if not values:
        raise ConfigError(f"config key {path!r} must list at least one K (e.g. [1, 2, 4, 8]), got {values!r}")
    for i, k in enumerate(values):
        if k < 1:
            raise ConfigError(f"config key '{path}[{i}]' must be a positive integer, got {k!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"config key {path!r} lists a K twice: {values}")


def _check_values(cfg: BenchmarkConfig) -> None:
    """What types and ranges alone cannot say, within the config itself (no layer's names)."""
    _check_name(cfg.name, "name")
    if not cfg.methods:
        raise ConfigError("config key 'methods' must list at least one method")
    if len(set(cfg.methods)) != len(cfg.methods):
        raise ConfigError(f"config key 'methods' lists a method twice: {cfg.methods}")
    if cfg.device not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", cfg.device):
        raise ConfigError(f"config key 'device' must be auto, cpu or cuda[:N], got {cfg.device!r}")
    if cfg.protocol.storage is not None and not cfg.protocol.storage.strip():
        raise ConfigError("config key 'protocol.storage' is empty (give a storage URL, or null for a journal file "
                          "in the run folder)")
    _check_recall_at(cfg.evaluation.recall_at, "evaluation.recall_at")
    names = [d.key for d in cfg.datasets]
    if len(set(names)) != len(names):
        raise ConfigError(f"config key 'datasets' lists a dataset twice: {names} (give each a distinct 'label')")
    for i, d in enumerate(cfg.datasets):
        if d.label is not None:
            _check_name(d.label, f"datasets[{i}].label")
        if d.recall_at is not None:
            _check_recall_at(d.recall_at, f"datasets[{i}].recall_at")
    for path, t in cfg.training_sections():
        if t.batch_size % t.m_per_class:
            raise ConfigError(f"config key '{path}.batch_size' ({t.batch_size}) must be a multiple of m_per_class "
                              f"({t.m_per_class})")
        if t.patience < t.val_interval:
            raise ConfigError(f"config key '{path}.patience' ({t.patience}) must be at least val_interval "
                              f"({t.val_interval}): with less, training stops before its next validation")


def parse_config(data: dict) -> BenchmarkConfig:
    """The frozen config of a plain mapping (as read from YAML): types, unknown keys, ranges.

    Layer names (methods, trunks, optimizers, samplers, datasets) are not checked here; a run's config
    is assembled by ``benchmark.protocol.run_config.assemble_config``, which checks them too.
    """
    cfg = _build(BenchmarkConfig, data, "")
    _check_values(cfg)
    return cfg


def config_to_dict(cfg: BenchmarkConfig) -> dict:
    """The config as a plain mapping, as it is recorded (run folder, storage) and compared: the storage
    URL's password masked (``benchmark.secrets``), since the record must never hold it."""
    data = dataclasses.asdict(cfg)
    data["protocol"]["storage"] = redact_url(data["protocol"]["storage"])
    return data


# -- reading files, presets and overrides --------------------------------------------------------

#: Keys whose ``--set`` value is taken as the string given (``null`` aside), never parsed as YAML: a
#: storage URL must not turn into a mapping (whose refusal would print it, password and all).
VERBATIM_KEYS = {"protocol.storage"}


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"training.max_epochs=3"`` -> (["training", "max_epochs"], 3); the value is parsed as YAML
    (``VERBATIM_KEYS`` excepted)."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {redact_text(text)!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects KEY=VALUE, got {redact_text(text)!r}")
    if key in VERBATIM_KEYS:
        return key.split("."), None if raw.strip() in ("null", "~") else raw
    try:
        return key.split("."), yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: the value is not valid YAML ({str(exc).splitlines()[0]}); quote it "
                          f"if it is a string") from None


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
