"""A full disk through the real CLI (``benchmark.io``'s ``DiskFullError`` and ``write_cache_file``).

Each case runs a tiny leaderboard (one method, one trial, one repeat, the frozen regime) as a real
process with ``--out`` or the cache on a real, small ``tmpfs``: full before the start, mid-run, or
at the report stage, and a full cache. A full ``--out`` must end in exactly one stderr line
``error: no space left on device while writing <file>; ...`` with exit status 3 and no traceback;
a full cache in one warning line and a complete run. After space is freed, re-running the same
command must give the ``results.csv`` of an uninterrupted run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.constants import cache_dir
from tests.tmpfs import PAGE, fill, resize, small_fs

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
DISK_FULL = 3
TINY = """\
name: tiny
seed: 0
device: cpu
methods: [contrastive]
datasets:
  - name: builtin
    options: {num_classes: 8, images_per_class: 4}
model: {trunk: small_cnn, embedding_dim: 8, pretrained: true, pretrain_epochs: 1}
frozen: {cut: after_last, grid: 2, views: 1}
training: {regime: frozen, threads: 1, batch_size: 4, m_per_class: 2, iterations_per_epoch: 1, max_epochs: 1,
           val_interval: 1, patience: 1}
protocol: {n_folds: 2, n_trials: 1, n_repeats: 1, pruner: none, poll_interval: 0.3}
evaluation: {recall_at: [1], verification_far: null}
"""


def run(config: Path, out: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "run_benchmark.py"), "run", "--config", str(config),
                           "--out", str(out), "--no-progress"], cwd=REPO, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory) -> Path:
    """An uninterrupted run of the tiny leaderboard (it also fills the default cache with its trunk)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    proc = run(config, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def assert_one_disk_full_line(proc: subprocess.CompletedProcess, where: Path) -> str:
    assert proc.returncode == DISK_FULL, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == errors[0]
    assert errors[0].startswith(f"error: no space left on device while writing {where}")
    assert errors[0].endswith("; free space and re-run the same command to resume")
    return errors[0]


def files(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def resume_and_compare(config: Path, out: Path, reference: Path) -> None:
    proc = run(config, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
    assert (out / "report.html").is_file()
    assert not list(out.rglob(".*.tmp*"))


def test_full_before_the_start_leaves_no_run_folder(config, reference, tmp_path):
    with small_fs(tmp_path / "fs", 16 * PAGE) as fs:
        fill(fs)
        out = fs / "runs" / "run"
        assert_one_disk_full_line(run(config, out), out)
        assert sorted(p.name for p in fs.iterdir()) == ["filler"]  # the folders it made are gone again
        resize(fs, 4 << 20)
        resume_and_compare(config, out, reference)


def test_full_mid_run_resumes_to_the_same_results(config, reference, tmp_path):
    with small_fs(tmp_path / "fs", 5 * PAGE) as fs:  # room for the run folder's first files only
        out = fs / "run"
        proc = run(config, out)
        assert_one_disk_full_line(proc, out)
        assert (out / "config.resolved.yaml").is_file() and not (out / "report.html").exists()
        resize(fs, 4 << 20)
        resume_and_compare(config, out, reference)


def test_full_at_the_report_keeps_the_results(config, reference, tmp_path):
    with small_fs(tmp_path / "fs", 24 * PAGE) as fs:  # the results fit, the plots and report.html do not
        out = fs / "run"
        proc = run(config, out)
        assert_one_disk_full_line(proc, out)
        assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
        resize(fs, 4 << 20)
        resume_and_compare(config, out, reference)


def test_a_full_cache_is_one_warning_and_the_run_goes_on(config, reference, tmp_path, monkeypatch):
    """The frozen regime's trunk outputs cannot be cached (``torch.save`` fails with a RuntimeError there)."""
    from benchmark.data.builtin import load_builtin

    with small_fs(tmp_path / "cache", 256 * PAGE) as cache:
        shutil.copytree(cache_dir() / "trunks", cache / "trunks")  # the pretrained trunk, from the reference run
        monkeypatch.setenv("DML_BENCH_CACHE", str(cache))
        load_builtin(num_classes=8, images_per_class=4)  # the dataset is cached: only the trunk outputs are not
        fill(cache)
        before = files(cache)
        out = tmp_path / "run"
        proc = run(config, out)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
        warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1, proc.stderr[-3000:]
        assert warnings[0].startswith(f"warning: cannot write the cache file {cache / 'frozen'}")
        assert "no space left on device" in warnings[0]
        assert files(cache) == before  # nothing partial left: the frozen folder stays empty
        assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
