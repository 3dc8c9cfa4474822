"""What a user needs to trust a run: library versions, git commit, host, command line, seeds."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

from benchmark.secrets import redact_text

PACKAGES = ("torch", "torchvision", "numpy", "pandas", "scipy", "faiss-cpu", "faiss-gpu", "optuna",
            "pytorch-metric-learning", "tabulate", "matplotlib", "tqdm", "PyYAML")


def library_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def git_commit(path: Path | None = None) -> dict[str, object]:
    """The commit of the harness's source tree and whether it differs from it.

    ``dirty`` is true when a tracked file is modified, staged or deleted, or when the tree holds an
    untracked file that git does not ignore (a new module is part of what ran).
    """
    path = path or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=normal"],
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": dirty if commit else None}


def provenance(argv: list[str], seed: int) -> dict[str, object]:
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "argv": [redact_text(a) for a in argv],  # a --storage URL's password never reaches the file
        "seed": seed,
        "versions": library_versions(),
        "git": git_commit(),
    }
