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
from benchmark.secrets import redact_url

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
#: Seeds are non-negative 63-bit integers (numpy and the built-in dataset take them as they are).
MAX_SEED = 2**63 - 1
#: A larger embedding is a typo, not an experiment (the reality check uses 128 per fold).
MAX_EMBEDDING_DIM = 65_536
#: Data-loading processes; more would exhaust process or memory limits before helping.
MAX_NUM_WORKERS = 256
#: Folds, trials and repeats: a larger count is a typo (a million trials of the smallest unit is years of
#: compute), and counts near 2**63 would overflow the storage's and numpy's integers mid-run.
MAX_COUNT = 1_000_000
#: Seconds (grace period, poll interval): a week; more is a typo, and ``time.sleep`` overflows past ~2**63 ns.
MAX_SECONDS = 7 * 24 * 3600


def bounded(default: Any, *, lo: Optional[float] = None, hi: Optional[float] = None, lo_open: bool = False,
            hi_open: bool = False, keywords: tuple[str, ...] = (), help: str = "") -> Any:
    """A dataclass field with a numeric range, checked by ``parse_config`` (``None`` values are not checked);
    a number-or-keyword key (e.g. ``num_workers: auto``) lists its ``keywords``. ``help`` is the key's one-line
    description (the documentation's configuration reference prints it; ``tests/test_config_help.py`` fails on a
    key without one)."""
    return field(default=default, metadata={"range": (lo, hi, lo_open, hi_open), "keywords": keywords,
                                            "help": help})


def doc(default: Any = dataclasses.MISSING, *, help: str, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field without a numeric range, with its one-line ``help`` (see ``bounded``)."""
    return field(default=default, default_factory=default_factory, metadata={"help": help})


def field_help(f: dataclasses.Field) -> str:
    """The one-line help declared beside a config key ('' for a field declared without one)."""
    return f.metadata.get("help", "")


def field_range(f: dataclasses.Field) -> str:
    """A config key's range as text (``>= 1``, ``(0, 1)``, ``>= 0 or auto``), '' for none."""
    def num(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    parts = []
    if "range" in f.metadata:
        lo, hi, lo_open, hi_open = f.metadata["range"]
        if lo is not None and hi is not None:
            parts.append(f"{'(' if lo_open else '['}{num(lo)}, {num(hi)}{')' if hi_open else ']'}")
        elif lo is not None:
            parts.append(f"{'>' if lo_open else '>='} {num(lo)}")
        elif hi is not None:
            parts.append(f"{'<' if hi_open else '<='} {num(hi)}")
    parts.extend(f.metadata.get("keywords", ()))
    return " or ".join(parts)


@dataclass(frozen=True)
class ModelConfig:
    """Trunk and embedder (the trunk's name is checked by ``benchmark.models``)."""

    trunk: str = doc("small_cnn", help="The trunk network whose pooled features the embedder maps.")
    embedding_dim: int = bounded(128, lo=1, hi=MAX_EMBEDDING_DIM,
                                 help="Width of each fold's embedding (the reality check uses 128).")
    pretrained: bool = doc(True, help="Start the trunk from pretrained weights (false: random weights).")
    weights: Optional[str] = doc(None, help="The pretrained weights file of a bn_inception or timm:<name> trunk "
                                            "(default: the caches').")
    freeze_bn: bool = doc(True, help="Keep the trunk's BatchNorm statistics frozen during training, as the "
                                     "protocol does.")
    tower_hidden: int = bounded(0, lo=0, hi=MAX_EMBEDDING_DIM,
                                help="Hidden width of the vector tower of a paired (cross-modal) dataset's second "
                                     "modality: 0 a Linear layer, else an MLP Linear-ReLU-Linear of this width.")
    pretrain_epochs: int = bounded(8, lo=1, help="Epochs of classification pretraining of the small CNN on the "
                                                 "built-in dataset's held-out pool.")


@dataclass(frozen=True)
class TrainingConfig:
    """Training of one fold (reference values from the reality-check protocol where they apply).

    ``optimizer`` and ``regime`` are names checked by ``benchmark.training``."""

    batch_size: int = bounded(32, lo=1, help="Training batch size (classes x m_per_class).")
    m_per_class: int = bounded(4, lo=1, help="Images per class in a class-balanced training batch.")
    iterations_per_epoch: int = bounded(100, lo=1, help="Training iterations that make one epoch.")
    max_epochs: int = bounded(1000, lo=1, help="Most epochs a fold trains.")
    val_interval: int = bounded(2, lo=1, help="Validate every this many epochs (2 CUB, 5 Cars, 20 SOP in the "
                                              "reference).")
    patience: int = bounded(9, lo=1, help="Stop after this many epochs without a better validation MAP@R "
                                          "(9 / 14 / 39 in the reference); at least val_interval.")
    early_stopping: str = doc("harness", help="When patience runs out: harness (after any epoch, once epoch - best "
                                              ">= patience) or published (the reality-check code: at validation "
                                              "epochs only, once epoch - best > patience).")
    optimizer: str = doc("rmsprop", help="The optimizer of trunk, embedder and the method's parameters.")
    lr_trunk: float = bounded(1e-6, lo=0.0, help="Learning rate of the trunk.")
    lr_embedder: float = bounded(1e-6, lo=0.0, help="Learning rate of the embedder.")
    weight_decay: float = bounded(1e-4, lo=0.0, help="Weight decay of the trunk and embedder.")
    loss_weight_decay: float = bounded(0.0, lo=0.0, help="Weight decay of the loss's own parameters (proxies, "
                                                          "beta); the reality-check code used 1e-4.")
    momentum: float = bounded(0.9, lo=0.0, hi=1.0, hi_open=True, help="Momentum of the optimizer (RMSprop, SGD).")
    num_workers: Union[int, str] = bounded(
        "auto", lo=0, hi=MAX_NUM_WORKERS, keywords=("auto",),
        help="DataLoader worker processes, or auto (a share of the cores on a GPU run, 0 on a CPU-only one).")
    eval_batch_size: int = bounded(256, lo=1, help="Batch size when embedding validation and test images.")
    regime: str = doc("end_to_end", help="end_to_end: the trunk trains on images; frozen: the trunk's output is "
                                         "cached once and only what follows trains.")
    threads: int = bounded(0, lo=0, hi=MAX_NUM_WORKERS,
                           help="torch CPU threads while a unit of work trains and tests (0: torch's default).")
    amp: str = doc("auto", help="Mixed precision of the training step; auto: bf16 (else fp16) on CUDA, fp32 "
                                "on a CPU.")
    memory_format: str = doc("auto", help="Layout of model and images; auto: channels-last on CUDA, contiguous on "
                                          "a CPU.")
    compile: bool = doc(False, help="torch.compile the model's forward for training.")


@dataclass(frozen=True)
class FrozenConfig:
    """The frozen-trunk regime (``training.regime: frozen``, implied by a ``features`` dataset)."""

    cut: str = doc("after_last", help="after_last: cache the trunk's output map; before_last: cache the last "
                                      "stage's input (the last stage then trains).")
    grid: int = bounded(4, lo=1, help="The cached map is average-pooled to grid x grid for the embedder "
                                      "(1: global pooling).")
    views: int = bounded(4, lo=1, help="Augmented views cached per training image; a batch takes one at random.")
    cache: bool = doc(True, help="Keep the cached outputs on disk under $DML_BENCH_CACHE or ~/.cache/dml-bench.")


@dataclass(frozen=True)
class ProtocolConfig:
    """Cross-validation, hyperparameter search, repeats and the storage that coordinates workers.

    ``sampler``, ``diverged_trial``, ``pooling`` and ``search_order`` are names checked by ``benchmark.protocol``,
    ``fold_mode`` by ``benchmark.data``."""

    n_folds: int = bounded(4, lo=2, hi=MAX_COUNT, help="Class-disjoint cross-validation folds.")
    fold_mode: str = doc("contiguous", help="How the training classes are dealt into folds.")
    n_trials: int = bounded(50, lo=1, hi=MAX_COUNT, help="Hyperparameter search slots per method and dataset.")
    n_repeats: int = bounded(10, lo=1, hi=MAX_COUNT,
                             help="Retrainings of the best configuration from scratch, with new seeds.")
    pooling: str = doc("repeats", help="What a method's test row pools: repeats (the n_repeats retrainings) or "
                                       "with_best_trial (also the best search trial's own fold models, tested "
                                       "once the trial leads the search: n = n_repeats + 1, as the reality "
                                       "check's published report pooled them).")
    sampler: str = doc("tpe", help="The search's sampler (tpe: multivariate, with constant liar; gp; random; "
                                   "sobol_gp: a scrambled Sobol start, then a GP with expected improvement).")
    n_startup_trials: Union[int, str] = bounded(
        10, lo=0, hi=MAX_COUNT, keywords=("auto",),
        help="Trials before the sampler models the results (slot 0, the defaults, counts; with sobol_gp: the Sobol "
             "points after slot 0), or auto: max(5, number of searched parameters), as the reality check's Ax.")
    diverged_trial: str = doc("best", help="The search value of a trial with a diverged fold (non-finite loss): "
                                           "best (the folds' best validation so far) or zero (the reality-check "
                                           "code's).")
    pruner: str = doc("hyperband", help="Early stopping of unpromising trials (median: at fold ends; hyperband: "
                                        "at every validation).")
    budget_iterations: Optional[int] = bounded(
        None, lo=1, help="Training iterations one search may spend over all its trials (null: n_trials alone).")
    storage: Optional[str] = doc(None, help="Optuna storage URL (e.g. postgresql://user@host/db); null: a journal "
                                            "file in the run folder.")
    grace_period: int = bounded(1800, lo=1, hi=MAX_SECONDS,
                                help="Seconds without a heartbeat after which another worker may take over a unit "
                                     "of work.")
    poll_interval: float = bounded(10.0, lo=0.0, hi=MAX_SECONDS, lo_open=True,
                                   help="Seconds a worker waits before looking again for work held by others.")
    storage_wait: float = bounded(120.0, lo=0.0, hi=86400.0,
                                  help="Seconds a worker keeps retrying a storage database that stopped answering "
                                       "before it gives up with exit status 4 (its unfinished unit is redone by "
                                       "the next worker); 0: give up at once.")
    search_order: str = doc("ordered", help="ordered: a method's search slots run one after another, each "
                                            "sampled and pruned against the finished slots before it, so any "
                                            "number of workers gives one worker's table; concurrent: a free "
                                            "worker starts the next slot at once (faster with more workers than "
                                            "methods, but the parameters depend on timing).")
    workers: Union[int, str] = bounded(1, lo=1, hi=MAX_NUM_WORKERS, keywords=("auto",),
                                       help="Worker processes dml-bench run starts on this machine, all on the "
                                            "run's storage; auto: one per core on a CPU, one per GPU.")
    save: str = doc("none", help="What each repeat keeps in the run folder's artifacts/: embeddings (the test "
                                 "embeddings and labels, .npz, which dml-bench evaluate RUN re-scores), models "
                                 "(each fold model's best weights, .safetensors), both, or none.")


@dataclass(frozen=True)
class EvaluationConfig:
    """Test-set evaluation."""

    recall_at: list[int] = doc(default_factory=lambda: [1], help="The K of Recall@K (distinct positive integers).")
    verification_far: Optional[float] = bounded(
        1e-3, lo=0.0, hi=1.0, lo_open=True, hi_open=True,
        help="False-accept rate of the verification report (TAR at this FAR); null turns it off.")
    clustering: bool = doc(False, help="Also report NMI, AMI and the pairwise F1 of seeded k-means with k = the "
                                       "number of test classes (dml-bench evaluate RUN --metrics nmi,ami,f1 adds "
                                       "them to a finished run from its saved embeddings).")


@dataclass(frozen=True)
class DatasetConfig:
    """One dataset of the leaderboard; ``training`` overrides the global training keys for it.

    ``name``, ``root`` and ``options`` are checked by ``benchmark.data``."""

    name: str = doc("builtin", help="The dataset's kind (a known dataset or a generic layout).")
    label: Optional[str] = doc(None, help="The dataset's name in results and tables (default: name); lets a "
                                          "leaderboard hold one dataset twice.")
    root: Optional[str] = doc(None, help="The dataset's folder or file, in its official layout.")
    image_root: Optional[str] = doc(None, help="A list file's (csv, oml) folder its relative image paths are resolved "
                                               "against (default: the list file's folder); absolute paths are "
                                               "taken as written.")
    class_split: str = doc("file", help="How a list file (csv, oml) is split into training and test classes: file "
                                        "(its split column) or first_half (the first half of the sorted class ids "
                                        "train, the rest test: the DML split of CUB-200-2011 and Cars196, "
                                        "re-derived from a df.csv written with the classification split).")
    verify_split: bool = doc(True, help="Check the loaded images against the checked-in split manifest (cub200, "
                                        "cars196, sop, inshop: image and class totals of train and test) and against "
                                        "split_manifest when set; false to load a subset or a test fixture.")
    split_manifest: Optional[str] = doc(None, help="A split manifest written by dml-bench prepare --write-manifest "
                                                   "from a trusted copy: per-class image counts and checksums of the "
                                                   "sorted file lists, checked when the dataset is loaded.")
    options: dict[str, Any] = doc(default_factory=dict, help="Dataset options, e.g. {context_bias: 0.9} for the "
                                                             "built-in dataset.")
    training: dict[str, Any] = doc(default_factory=dict, help="Training keys overridden for this dataset, e.g. "
                                                              "{val_interval: 5}.")
    recall_at: Optional[list[int]] = doc(None, help="This dataset's K of Recall@K (default: evaluation.recall_at).")
    method_params: dict[str, Any] = doc(default_factory=dict, help="Fixed (not searched) hyperparameters per "
                                                                   "method on this dataset, e.g. "
                                                                   "{dcml: {env_interval: 10}}.")

    @property
    def key(self) -> str:
        """The dataset's identifier in the storage, results and tables."""
        return self.label or self.name


@dataclass(frozen=True)
class BenchmarkConfig:
    """A whole leaderboard: every method on every dataset, under one protocol."""

    name: str = doc("benchmark", help="The run's name: its folder results/<name> and its leaderboard in the "
                                      "storage.")
    seed: int = bounded(0, lo=0, hi=MAX_SEED, help="The seed every fold, trial and repeat seed derives from.")
    device: str = doc("auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N.")
    methods: list[str] = doc(default_factory=lambda: ["contrastive"],
                             help="Method names, or all (every registered method).")
    datasets: list[DatasetConfig] = doc(default_factory=lambda: [DatasetConfig()],
                                        help="The leaderboard's datasets (see datasets[] below).")
    model: ModelConfig = doc(default_factory=ModelConfig, help="Trunk and embedder.")
    training: TrainingConfig = doc(default_factory=TrainingConfig, help="Training of one fold.")
    frozen: FrozenConfig = doc(default_factory=FrozenConfig, help="The frozen-trunk regime.")
    protocol: ProtocolConfig = doc(default_factory=ProtocolConfig, help="Folds, search, repeats and storage.")
    evaluation: EvaluationConfig = doc(default_factory=EvaluationConfig, help="Test-set evaluation.")

    def training_for(self, dataset: DatasetConfig) -> TrainingConfig:
        """The training config of ``dataset`` (global values overlaid with its own)."""
        return dataclasses.replace(self.training, **dataset.training)

    def is_frozen(self, dataset: DatasetConfig) -> bool:
        """True when ``dataset`` trains in the frozen regime (its training says so, or it is a features file, of
        one modality or two)."""
        return self.training_for(dataset).regime == "frozen" or dataset.name in ("features", "paired_features")

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
    unknown = sorted((k for k in data if k not in fields), key=str)  # (YAML keys may be numbers or null)
    if unknown:
        where = f"{path}.{unknown[0]}" if path else str(unknown[0])
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
#: One step of a ``--set`` key: ``name``, ``name[3]`` or ``name[name=cub200]`` (a list entry by index or by name).
_STEP = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SELECTOR = re.compile(r"\[([^\[\]]*)\]")
#: Lists whose entries a config may give as a bare name (``datasets: [cub200]``) and whose default is not empty.
_DEFAULT_LISTS = {"datasets": lambda: [{"name": DatasetConfig().name}]}


def parse_override(text: str) -> tuple[list[Union[str, int, tuple[str, str]]], Any]:
    """``"training.max_epochs=3"`` -> (["training", "max_epochs"], 3); the value is parsed as YAML
    (``VERBATIM_KEYS`` excepted).

    A list entry is addressed as the error messages name it: by index (``datasets[0].root=/data``, ``[-1]``
    the last) or by a key of its entries (``datasets[name=cub200].root=/data``; the step is then the tuple
    ``("name", "cub200")``)."""
    # ``datasets[name=cub200].root=x``: the first '=' outside brackets separates the key from the value
    depth, split = 0, None
    for i, ch in enumerate(text):
        depth += (ch == "[") - (ch == "]")
        if ch == "=" and depth == 0:
            split = i
            break
    key = text[:split].strip() if split is not None else ""
    if not key:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}")
    raw = text[split + 1:]
    steps: list[Union[str, int, tuple[str, str]]] = []
    for part in _split_key(key, text):
        m = _STEP.fullmatch(part)
        if not m:
            raise ConfigError(f"--set {text!r}: {part!r} is not a config key (expected e.g. training.max_epochs, "
                              f"datasets[0].root or datasets[name=cub200].root)")
        steps.append(m.group(1))
        for sel in _SELECTOR.findall(m.group(2)):
            sel = sel.strip()
            if re.fullmatch(r"-?\d+", sel):
                steps.append(int(sel))
            elif "=" in sel and sel.split("=", 1)[0].strip() and sel.split("=", 1)[1].strip():
                field_name, wanted = (s.strip() for s in sel.split("=", 1))
                steps.append((field_name, wanted))
            else:
                raise ConfigError(f"--set {text!r}: [{sel}] must be an index (datasets[0]) or KEY=NAME "
                                  f"(datasets[name=cub200])")
    if _path_text(steps) in VERBATIM_KEYS:
        return steps, None if raw.strip() in ("null", "~") else raw
    try:
        return steps, load_yaml(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: the value is not valid YAML ({yaml_problem(exc)}); quote it if it is "
                          f"a string") from None


def _split_key(key: str, text: str) -> list[str]:
    """``key`` split at the dots outside brackets (a dataset's name may hold a dot)."""
    parts, depth, current = [], 0, ""
    for ch in key:
        depth += (ch == "[") - (ch == "]")
        if depth not in (0, 1):
            raise ConfigError(f"--set {text!r}: unbalanced brackets in {key!r}")
        if ch == "." and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if depth:
        raise ConfigError(f"--set {text!r}: unbalanced brackets in {key!r}")
    return [*parts, current]


def _path_text(steps: list) -> str:
    """The dotted path of ``steps`` as the error messages write it (``datasets[0].root``)."""
    out = ""
    for s in steps:
        if isinstance(s, int):
            out += f"[{s}]"
        elif isinstance(s, tuple):
            out += f"[{s[0]}={s[1]}]"
        else:
            out += f".{s}" if out else s
    return out


def _entry_label(entry: Any, i: int) -> str:
    if isinstance(entry, dict):
        name = entry.get("label") or entry.get("name")
        return f"[{i}] {name}" if name is not None else f"[{i}]"
    return f"[{i}] {entry}"


def _select(items: list, step: Union[int, tuple[str, str]], path: str, text: str) -> int:
    """The index in ``items`` that ``step`` (an index or ``(key, value)``) names, else ConfigError listing them."""
    listing = ", ".join(_entry_label(e, i) for i, e in enumerate(items)) or "none"
    if isinstance(step, int):
        if -len(items) <= step < len(items):
            return step % len(items)
        raise ConfigError(f"--set {text!r}: config key {path!r} has no entry [{step}] (entries: {listing})")
    field_name, wanted = step
    hits = [i for i, e in enumerate(items)
            if (isinstance(e, dict) and str(e.get(field_name)) == wanted)
            or (isinstance(e, str) and field_name == "name" and e == wanted)]
    if field_name == "name" and not hits:  # a dataset's ``label`` is its name in results and tables
        hits = [i for i, e in enumerate(items) if isinstance(e, dict) and e.get("label") == wanted]
    if not hits:
        raise ConfigError(f"--set {text!r}: config key {path!r} has no entry with {field_name}={wanted} "
                          f"(entries: {listing})")
    if len(hits) > 1:
        raise ConfigError(f"--set {text!r}: config key {path!r} has several entries with {field_name}={wanted} "
                          f"({', '.join(f'[{i}]' for i in hits)}); address one by index")
    return hits[0]


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``--set`` overrides to a raw config mapping (validation happens when it is built).

    A list entry given as a bare name (``datasets: [cub200]``) becomes ``{name: cub200}`` when a key inside it
    is set; ``datasets[0]`` of a config without ``datasets`` addresses the default entry (the built-in dataset)."""
    for text in overrides:
        steps, value = parse_override(text)
        node: Any = data
        for n, step in enumerate(steps):
            last = n == len(steps) - 1
            here = _path_text(steps[:n])
            if isinstance(step, str):
                if not isinstance(node, dict):
                    raise ConfigError(f"--set {text!r}: config key {here!r} is not a section (it holds {node!r})")
                if last:
                    node[step] = value
                elif isinstance(steps[n + 1], str):
                    node = node.setdefault(step, {})
                else:
                    if step not in node and step in _DEFAULT_LISTS and node is data:
                        node[step] = _DEFAULT_LISTS[step]()
                    node = node.get(step)
                    if not isinstance(node, list):
                        raise ConfigError(f"--set {text!r}: config key {_path_text(steps[:n + 1])!r} is not a list "
                                          f"(it holds {node!r})")
                continue
            if not isinstance(node, list):
                raise ConfigError(f"--set {text!r}: config key {here!r} is not a list (it holds {node!r})")
            i = _select(node, step, here, text)
            if last:
                node[i] = value
            else:
                if isinstance(node[i], str) and isinstance(steps[n + 1], str):
                    node[i] = {"name": node[i]}  # a bare dataset name, given as ``datasets: [cub200]``
                node = node[i]
    return data


def list_presets() -> list[str]:
    """The presets in ``configs/`` (their file names without ``.yaml``), sorted."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(list_presets())})")
    return path


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping holding one key twice (PyYAML lets the last one win).
    Keys brought in by a merge (``<<: *anchor``) may be overridden, as YAML intends."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise DuplicateKeyError(key, seen[key], line)
                    seen[key] = line
                except TypeError:  # an unhashable key: the base class refuses it
                    continue
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(yaml.YAMLError):
    """A YAML mapping gives ``key`` twice, at lines ``first`` and ``second`` (1-based)."""

    def __init__(self, key, first: int, second: int) -> None:
        super().__init__(f"key {key!r} is given twice, at lines {first} and {second}")
        self.key, self.first, self.second = key, first, second


def yaml_problem(exc: Exception) -> str:
    """One line for a YAML (or decoding, or reading) error: PyYAML's problem and the line it is at."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem and exc.problem_mark is not None:
        return f"{exc.problem} at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}"
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]


def not_utf8(exc: UnicodeDecodeError) -> str:
    """Why a text file is not UTF-8, with a hint for UTF-16 (what some Windows editors save)."""
    utf16 = exc.start == 0 and exc.object[:2] in (b"\xff\xfe", b"\xfe\xff")
    return (f"not a UTF-8 text file ({exc.reason} at byte {exc.start}"
            f"{'; it looks like UTF-16: save it as UTF-8' if utf16 else ''})")


def load_yaml(text: str):
    """The data of a YAML document, read like ``yaml.safe_load`` but refusing duplicate keys
    (``DuplicateKeyError``: the key and both line numbers). Every YAML file the harness reads goes through it."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def read_config_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} {'is not a file' if path.exists() else 'does not exist'}")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except DuplicateKeyError as exc:
        raise ConfigError(f"{path}: {exc} (expected each config key once; one of the values would be "
                          f"silently lost)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {not_utf8(exc)}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({yaml_problem(exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return data
