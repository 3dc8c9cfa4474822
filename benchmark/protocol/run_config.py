"""Assembling a run's config: the one place where a config file, a preset, ``--set`` and the CLI's flags
become a checked ``BenchmarkConfig``.

``benchmark.config`` (a leaf) checks types, unknown keys and ranges; each layer checks the names it
owns (methods: the registry; trunks and cuts: ``benchmark.models``; optimizers and regimes:
``benchmark.training``; datasets and fold modes: ``benchmark.data``; samplers: ``benchmark.protocol``);
this module calls them all and checks what spans several sections. ``refuse_config_change`` is the one
check that a run folder or a storage is continued with the config it was started with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from benchmark.config import (BenchmarkConfig, apply_overrides, check_choice, config_to_dict, parse_config,
                              preset_path, read_config_file)
from benchmark.constants import POOLINGS
from benchmark.data.catalog import check_dataset_entry
from benchmark.data.splits import FOLD_MODES
from benchmark.errors import ConfigError, RunDirError
from benchmark.methods import get_method, list_methods
from benchmark.methods.cross_modal import why_not_cross_modal
from benchmark.methods.dataset_params import check_method_params
from benchmark.data.paired import is_paired_entry
from benchmark.secrets import redact_url
from benchmark.models.checks import check_model_section
from benchmark.protocol.diverged_trial import DIVERGED_TRIAL_RULES
from benchmark.protocol.fidelity import PRUNERS, trial_iterations
from benchmark.protocol.artifacts import SAVE_MODES
from benchmark.protocol.units import SAMPLERS, SEARCH_ORDERS
from benchmark.training.checks import check_training_section

#: Keys that may change when a run is continued (they change how fast, not what is computed).
VOLATILE_KEYS = {"device", "protocol.poll_interval", "protocol.storage_wait", "protocol.workers",
                 "training.num_workers", "training.eval_batch_size", "protocol.save"}


def assemble_config(data: dict) -> BenchmarkConfig:
    """The checked config of a raw mapping: ``methods: all`` expanded, every key and name checked."""
    data = dict(data)
    if data.get("methods") == "all":
        data["methods"] = all_methods_for(data.get("datasets"))
    cfg = parse_config(data)
    check_run_config(cfg)
    return cfg


def all_methods_for(datasets: object) -> list[str]:
    """``methods: all``: every registered method that runs on the config's datasets (its raw entries): on paired
    (cross-modal) datasets those with a cross-modal mode, else those that are not cross-modal by construction."""
    entries = datasets if isinstance(datasets, list) else []
    paired = [isinstance(d, dict) and is_paired_entry(d.get("name"), d.get("options")) for d in entries]
    if paired and all(paired):
        return [spec.name for spec in list_methods() if spec.cross_modal is not None]
    return [spec.name for spec in list_methods() if spec.cross_modal != "native"]


def check_cross_modal(cfg: BenchmarkConfig, specs: list) -> None:
    """Paired datasets: frozen regime, methods with a cross-modal mode; native cross-modal methods need one."""
    for i, d in enumerate(cfg.datasets):
        if is_paired_entry(d.name, d.options):
            if not cfg.is_frozen(d):
                raise ConfigError(f"config key 'datasets[{i}]': the paired (cross-modal) dataset {d.key!r} trains "
                                  f"two-tower models in the frozen regime only (set training.regime: frozen)")
            for spec in specs:
                why = why_not_cross_modal(spec)
                if why:
                    raise ConfigError(f"config key 'methods': {why}, and dataset 'datasets[{i}]' ({d.key}) is "
                                      f"paired (cross-modal); remove the method")
        else:
            for spec in specs:
                if spec.cross_modal == "native":
                    raise ConfigError(f"config key 'methods': {spec.name!r} is a cross-modal loss and dataset "
                                      f"'datasets[{i}]' ({d.key}) has one modality (give it a second_modality, "
                                      f"or remove the method)")


def check_run_config(cfg: BenchmarkConfig) -> None:
    """Every layer's names, then what spans sections; ConfigError (or RegistryError) naming the key."""
    specs = [get_method(name) for name in cfg.methods]
    check_model_section(cfg.model, cfg.frozen)
    check_choice(cfg.protocol.fold_mode, FOLD_MODES, "protocol.fold_mode")
    check_choice(cfg.protocol.sampler, tuple(SAMPLERS), "protocol.sampler")
    check_choice(cfg.protocol.pruner, PRUNERS, "protocol.pruner")
    check_choice(cfg.protocol.search_order, SEARCH_ORDERS, "protocol.search_order")
    check_choice(cfg.protocol.diverged_trial, DIVERGED_TRIAL_RULES, "protocol.diverged_trial")
    check_choice(cfg.protocol.pooling, POOLINGS, "protocol.pooling")
    check_choice(cfg.protocol.save, SAVE_MODES, "protocol.save")
    for i, d in enumerate(cfg.datasets):
        check_dataset_entry(d.name, d.root, d.options, f"datasets[{i}]", image_root=d.image_root,
                            class_split=d.class_split, split_manifest=d.split_manifest)
        check_method_params(d.method_params, f"datasets[{i}].method_params", d.name)
    for path, t in cfg.training_sections():
        check_training_section(t, path)
    check_cross_modal(cfg, specs)
    if cfg.protocol.save != SAVE_MODES[0]:
        for i, d in enumerate(cfg.datasets):
            if is_paired_entry(d.name, d.options):
                raise ConfigError(f"'protocol.save' ({cfg.protocol.save}): 'datasets[{i}]' ({d.key}) is paired "
                                  f"(cross-modal), whose embeddings and two-tower models are not kept yet; expected "
                                  f"protocol.save: {SAVE_MODES[0]} for a cross-modal run")
    budget = cfg.protocol.budget_iterations
    for i, d in enumerate(cfg.datasets):
        most = trial_iterations(cfg.protocol.n_folds, cfg.training_for(d))
        if budget is not None and budget < most:
            raise ConfigError(f"config key 'protocol.budget_iterations' ({budget}) must be at least one trial's "
                              f"maximum on datasets[{i}] ({d.key}): n_folds x max_epochs x iterations_per_epoch = "
                              f"{most}")
    for i, d in enumerate(cfg.datasets):
        frozen = cfg.is_frozen(d)
        if d.name in ("features", "paired_features") and cfg.frozen.cut != "after_last":
            raise ConfigError(f"config key 'frozen.cut': {cfg.frozen.cut} needs a trunk, and dataset "
                              f"'datasets[{i}]' is a features file without one (use after_last)")
        if not frozen:
            continue
        # a features file is one vector per image; the after_last cut pools the map to grid x grid
        one_by_one = (d.name in ("features", "paired_features")
                      or (cfg.frozen.cut == "after_last" and cfg.frozen.grid == 1))
        for spec in specs:
            if not spec.can_run_frozen:
                raise ConfigError(f"config key 'methods': {spec.name!r} cannot train in the frozen regime, which "
                                  f"dataset 'datasets[{i}]' uses (remove the method or use regime end_to_end)")
            if spec.needs_spatial_map and one_by_one:
                raise ConfigError(f"config key 'methods': {spec.name!r} works on the trunk's spatial map, but "
                                  f"dataset 'datasets[{i}]' trains on 1x1 cached outputs (use frozen.grid >= 2, "
                                  f"frozen.cut before_last, or an image dataset)")


def load_run_config(*, preset: Optional[str] = None, path: Optional[str | Path] = None,
                    overrides: Iterable[str] = (), methods: Optional[list[str]] = None,
                    datasets: Optional[list[str]] = None, storage: Optional[str] = None) -> BenchmarkConfig:
    """A run's config from a preset name or a file, narrowed to ``methods`` / ``datasets`` when given
    (a dataset not in the file is added with default options), with ``--set`` overrides applied.

    ``storage`` (the ``--storage`` flag) is set as given, a plain string: never parsed as YAML, so no
    URL turns into a mapping whose refusal would print it."""
    if (preset is None) == (path is None):
        raise ConfigError("give exactly one of --preset or --config")
    data = read_config_file(preset_path(preset) if preset else path)
    if methods:
        data["methods"] = "all" if list(methods) == ["all"] else list(methods)  # --methods all, as a file may say
    if datasets:
        existing = {(d if isinstance(d, str) else d.get("name")): d for d in data.get("datasets", [])}
        data["datasets"] = [existing.get(name, {"name": name}) for name in datasets]
    data = apply_overrides(data, list(overrides))
    if storage is not None:
        protocol = data.get("protocol")
        data["protocol"] = {**(protocol if isinstance(protocol, dict) else {}), "storage": storage}
    return assemble_config(data)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                out.update(_flatten(x, f"{key}[{i}]."))
        else:
            out[key] = v
    return out


def config_difference(old: dict, new: dict) -> list[str]:
    """Lines ``key: old -> new`` for every key that differs (``VOLATILE_KEYS`` excluded)."""
    a, b = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(a) | set(b)):
        if key in VOLATILE_KEYS:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            lines.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return lines


def refuse_config_change(old: Optional[dict], cfg: BenchmarkConfig, *, holder: str, remedy: str,
                         allow_config_change: bool) -> None:
    """Raise RunDirError when ``old`` (the config ``holder`` was started with) differs from ``cfg``."""
    if old is None or allow_config_change:
        return
    old = dict(old)
    if isinstance(old.get("protocol"), dict):  # a record written before passwords were masked
        old["protocol"] = {**old["protocol"], "storage": redact_url(old["protocol"].get("storage"))}
    diff = config_difference(old, config_to_dict(cfg))
    if diff:
        raise RunDirError(f"{holder} holds a run with a different config ({'; '.join(diff)}); {remedy}")
