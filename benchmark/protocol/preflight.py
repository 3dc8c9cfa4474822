"""Checks of the run's surroundings made before anything is written: the output folder and the device.

The config's own keys are checked when it is built (``benchmark.config``), the storage URL by
``benchmark.protocol.storage_check`` and the datasets by ``Workbench.load_all``; these are the
rest. Each raises a ``BenchmarkError`` whose one-line message names the path or the config key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from benchmark.errors import ConfigError, RunDirError

#: The file that marks a folder as a run folder (written first when a run starts).
RUN_MARKER = "config.resolved.yaml"


def _nearest_existing(path: Path) -> Path:
    """``path`` or the closest of its ancestors that exists (``os.path.lexists``: a dangling link counts)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")  # pragma: no cover - a relative path's parents end in "."


def _writable(folder: Path) -> bool:
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        return not os.statvfs(folder).f_flag & os.ST_RDONLY
    except OSError:  # pragma: no cover - statvfs unsupported: trust os.access
        return True


#: Bytes left under the run folder's path for the names inside it (``tables/<dataset>_pairwise.csv`` & co.).
INNER_NAME_ROOM = 200


def _check_name_lengths(path: Path) -> None:
    """Every name of ``path`` within the file system's limit, and room left under it for the run's files
    (else ``is_dir`` and ``mkdir`` raise ENAMETOOLONG)."""
    absolute = os.fsencode(path.absolute())
    anchor = _nearest_existing(path.absolute())
    folder = anchor if anchor.is_dir() else anchor.parent
    name_max, path_max = os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    for part in path.absolute().parts:
        if len(os.fsencode(part)) > name_max:
            raise RunDirError(f"output folder {excerpt_path(path)} cannot be created: its name {excerpt_path(part)} "
                              f"is {len(os.fsencode(part))} bytes long, over the file system's {name_max}")
    if len(absolute) + INNER_NAME_ROOM > path_max:
        raise RunDirError(f"output folder {excerpt_path(path)} cannot be used: its path is {len(absolute)} bytes "
                          f"long, and the run's files need it under {path_max - INNER_NAME_ROOM} (choose a shorter "
                          f"--out)")


def excerpt_path(path: Path | str, limit: int = 80) -> str:
    """``path`` cut in the middle to ``limit`` characters, for a message."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]}"


def check_output_dir(path: Path) -> None:
    """The run folder ``path`` can be used without writing anything to find out.

    An existing folder must be writable and either be a run folder (it holds ``config.resolved.yaml``)
    or hold nothing but hidden entries; a missing one must be creatable: its nearest existing
    ancestor is a writable folder. ``RunDirError`` says which path is wrong and why.
    """
    path = Path(path).expanduser()
    _check_name_lengths(path)
    if path.is_dir():
        if not _writable(path):
            raise RunDirError(f"output folder {path} is not writable")
        if not (path / RUN_MARKER).exists():
            others = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
            if others:
                raise RunDirError(f"output folder {path} already holds other files ({', '.join(others[:3])}"
                                  f"{', ...' if len(others) > 3 else ''}) and is not a run folder (no {RUN_MARKER});"
                                  f" choose a new or empty folder")
        return
    if os.path.lexists(path):
        what = "a broken symbolic link" if path.is_symlink() and not path.exists() else "a file"
        raise RunDirError(f"output folder {path} is {what}, expected a folder (choose another --out)")
    base = _nearest_existing(path.absolute())
    if not base.is_dir():
        raise RunDirError(f"output folder {path} cannot be created: {base} is a file, not a folder")
    if not _writable(base):
        raise RunDirError(f"output folder {path} cannot be created: {base} is not writable")


#: Datasets that take every image under their root (the others read only the files their lists name).
WALKED_DATASETS = ("folder",)


def check_outside_datasets(run_dir: Path, cfg) -> None:
    """The run folder lies outside the root of every dataset that walks its root (a folder dataset would read
    the run's plots as a class on the next run); ``RunDirError`` naming both otherwise."""
    out = os.path.realpath(Path(run_dir).expanduser())
    for i, d in enumerate(cfg.datasets):
        if d.root is None or d.name not in WALKED_DATASETS:
            continue
        folder = os.path.realpath(Path(d.root).expanduser())
        if out == folder or out.startswith(folder.rstrip(os.sep) + os.sep):
            raise RunDirError(f"output folder {run_dir} is inside the root of datasets[{i}] ({d.root}); expected it "
                              f"outside the dataset (a folder dataset would read the run's files as images), "
                              f"choose another --out")


def check_device(device: str) -> None:
    """``cuda`` / ``cuda:N`` must name a GPU this machine has (``auto`` and ``cpu`` always work)."""
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if match is None:
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ConfigError(f"config key 'device' is {device!r}, but torch finds no CUDA device here "
                          f"(use --device cpu or auto)")
    index = int(match.group(1) or 0)
    if index >= count:
        raise ConfigError(f"config key 'device' is {device!r}, but this machine has {count} CUDA device(s) "
                          f"(cuda:0 to cuda:{count - 1})")


def check_precision(cfg) -> None:
    """Every dataset's ``training.amp`` is a precision its device computes in (bf16 on an older GPU is refused)."""
    from benchmark.protocol.workbench import resolve_device
    from benchmark.training.precision import resolve_precision

    device = resolve_device(cfg.device)
    for i, dcfg in enumerate(cfg.datasets):
        key = f"datasets[{i}].training" if "amp" in dcfg.training else "training"
        resolve_precision(cfg.training_for(dcfg), device, key=key)
