"""The run folder: its resolved config (a re-run must match it), provenance and log.

When preparing the folder fails (a full disk, say), what this invocation created is removed again:
the folder itself and the parents it made, or the new entries of a folder that existed.
A log line that cannot be written (full disk) is dropped without a word: the result files report it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
from pathlib import Path

import yaml

from benchmark.config import BenchmarkConfig, config_to_dict, load_yaml, yaml_problem
from benchmark.errors import RunDirError
from benchmark.io import atomic_write_json, atomic_write_text, sweep_temporary_files
from benchmark.protocol.run_config import refuse_config_change
from benchmark.provenance import provenance
from benchmark.secrets import RedactingFilter

CONFIG_FILE = "config.resolved.yaml"


def prepare_run_dir(run_dir: Path, cfg: BenchmarkConfig, argv: list[str], *, allow_config_change: bool) -> None:
    """Create ``run_dir`` or check that it belongs to ``cfg``; record the config and provenance.

    On any failure, what this call created is removed before the error propagates.
    """
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    before = set(run_dir.iterdir()) if not created else set()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        _prepare(run_dir, cfg, argv, allow_config_change=allow_config_change)
    except BaseException:
        if created:
            shutil.rmtree(created[-1], ignore_errors=True)  # the outermost folder this call made
        else:
            for entry in set(run_dir.iterdir()) - before:
                if entry.is_file() or entry.is_symlink():
                    entry.unlink(missing_ok=True)
        raise


def _prepare(run_dir: Path, cfg: BenchmarkConfig, argv: list[str], *, allow_config_change: bool) -> None:
    new = config_to_dict(cfg)
    path = run_dir / CONFIG_FILE
    if path.exists():
        refuse_config_change(read_stored_config(path), cfg, holder=str(run_dir),
                             remedy="use another --out, or --allow-config-change to continue it with the new config",
                             allow_config_change=allow_config_change)
    swept = sweep_temporary_files(run_dir)
    if swept:
        logging.getLogger(__name__).info("removed %d temporary files of dead processes", len(swept))
    atomic_write_text(path, yaml.safe_dump(new, sort_keys=False))
    record_invocation(run_dir / "provenance.json", provenance(argv, cfg.seed))


def read_stored_config(path: Path) -> dict:
    """The config a run folder was started with (``config.resolved.yaml``); RunDirError if unreadable."""
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RunDirError(f"{path}: cannot be read as the run's config ({yaml_problem(exc)}); restore it, "
                          f"or use another --out") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a mapping of config keys (the run's config); restore it, "
                          f"or use another --out")
    return data


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
    handler = _LogFile(run_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())  # no storage password in the log
    logger = logging.getLogger("benchmark")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


class _LogFile(logging.FileHandler):
    """A log file whose write errors (a full disk) drop the line instead of printing a traceback."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass

    def close(self) -> None:
        try:
            super().close()
        except OSError:  # the last lines could not be flushed to a full disk
            pass
