"""``dml-bench prepare --write-manifest FILE``: record the split manifest of a copy of the datasets one trusts.

Every image dataset of the config is loaded and checked as a run would (its images readable, its totals those
published, for the four benchmark datasets), then its per-class counts and file-list checksums
(``benchmark.data.split_manifest.describe``) are written to ``FILE`` atomically, one entry per dataset key. Others
check their copy against it with ``datasets[].split_manifest: FILE``.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.data.base import FileImageSet
from benchmark.data.split_manifest import describe, manifest_document
from benchmark.errors import ConfigError
from benchmark.io import atomic_write_json


def check_manifest_target(path: str) -> Path:
    """The file ``--write-manifest`` names, checked before any work: a file name in an existing folder."""
    if not path.strip():
        raise ConfigError("--write-manifest is empty (expected a file to write the split manifest to)")
    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigError(f"--write-manifest {target}: is a folder (expected a file name, e.g. {target}/splits.json)")
    if not target.parent.is_dir():
        raise ConfigError(f"--write-manifest {target}: folder {target.parent} not found (expected an existing folder)")
    return target


def write_split_manifest(bench, target: Path) -> list[str]:
    """Describe every image dataset of ``bench`` (a prepared ``Workbench``) and write the manifest to ``target``;
    the lines to print."""
    entries, lines = {}, []
    for dcfg in bench.cfg.datasets:
        files = bench.dataset(dcfg).files
        if files is None or not isinstance(files.train, FileImageSet):
            lines.append(f"dataset {dcfg.key}: not read from image files, not recorded")
            continue
        entries[dcfg.key] = {"dataset": dcfg.name, **describe(files)}
        parts = ", ".join(f"{n} {p['images']} images / {p['classes']} classes" for n, p in entries[dcfg.key]
                          ["parts"].items())
        lines.append(f"dataset {dcfg.key}: {parts}")
    if not entries:
        raise ConfigError("no dataset of the config is read from image files: there is no split to record")
    atomic_write_json(target, manifest_document(entries))
    lines.append(f"split manifest written to {target} (check other copies with datasets[].split_manifest: {target})")
    return lines
