"""``git_commit`` on a temporary repository: clean, untracked, ignored and modified files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from benchmark.provenance import git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           "-c", "commit.gpgsign=false", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    (tmp_path / "module.py").write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("*.log\n")
    _git(tmp_path, "add", "module.py", ".gitignore")
    _git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_clean_tree_is_not_dirty(repo):
    info = git_commit(repo)
    assert info == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": False}


def test_untracked_file_makes_the_tree_dirty(repo):
    (repo / "new_method.py").write_text("y = 2\n")
    assert git_commit(repo)["dirty"] is True


def test_ignored_file_leaves_the_tree_clean(repo):
    (repo / "run.log").write_text("log\n")
    assert git_commit(repo)["dirty"] is False


def test_modified_tracked_file_makes_the_tree_dirty(repo):
    (repo / "module.py").write_text("x = 2\n")
    assert git_commit(repo)["dirty"] is True


def test_not_a_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above it either
    assert git_commit(tmp_path) == {"commit": None, "dirty": None}
