"""The run folder: its resolved config (a re-run must match it), provenance and log."""

from __future__ import annotations

import fcntl
import json
import logging
from pathlib import Path

import yaml

from benchmark.config import BenchmarkConfig, config_to_dict
from benchmark.errors import RunDirError
from benchmark.io import atomic_write_json, atomic_write_text, sweep_temporary_files
from benchmark.provenance import provenance

CONFIG_FILE = "config.resolved.yaml"
#: Keys that may differ between invocations of the same run (they change no result).
VOLATILE_KEYS = {"device", "protocol.poll_interval", "training.num_workers", "training.eval_batch_size"}


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
    """Lines ``key: old -> new`` for every key that differs (volatile keys excluded)."""
    a, b = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(a) | set(b)):
        if key in VOLATILE_KEYS:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            lines.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return lines


def prepare_run_dir(run_dir: Path, cfg: BenchmarkConfig, argv: list[str], *, allow_config_change: bool) -> None:
    """Create ``run_dir`` or check that it belongs to ``cfg``; record the config and provenance."""
    run_dir.mkdir(parents=True, exist_ok=True)
    new = config_to_dict(cfg)
    path = run_dir / CONFIG_FILE
    if path.exists():
        old = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        diff = config_difference(old, new)
        if diff and not allow_config_change:
            raise RunDirError(f"{run_dir} holds a run with a different config ({'; '.join(diff)}); use another "
                              f"--out, or --allow-config-change to continue it with the new config")
    swept = sweep_temporary_files(run_dir)
    if swept:
        logging.getLogger(__name__).info("removed %d temporary files of dead processes", len(swept))
    atomic_write_text(path, yaml.safe_dump(new, sort_keys=False))
    record_invocation(run_dir / "provenance.json", provenance(argv, cfg.seed))


def record_invocation(prov_path: Path, invocation: dict) -> None:
    """Append one invocation to ``provenance.json``; an exclusive lock keeps concurrent workers' entries."""
    with open(prov_path.with_name(f".{prov_path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            record = json.loads(prov_path.read_text()) if prov_path.exists() else {"invocations": []}
            record["invocations"].append(invocation)
            atomic_write_json(prov_path, record)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def attach_log(run_dir: Path) -> logging.Handler:
    """Log INFO and above of the ``benchmark`` loggers to ``run_dir/run.log`` (appending)."""
    handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("benchmark")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler
