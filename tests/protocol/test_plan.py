"""``dml-bench plan``: the counts of a run before it runs, what a previous run says of early stopping,
and a measured estimate (the real CLI in a subprocess for what users type)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from benchmark.config import config_to_dict
from benchmark.constants import COST_COLUMNS, TRIAL_COLUMNS
from benchmark.protocol.plan import plan_run
from benchmark.protocol.run_config import load_run_config
from tests.protocol.workers import ROOT


def cli(*argv: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run_benchmark.py"), *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_reality_check_on_cub_counts_the_published_budget(tmp_path):
    """25 methods x (50 trials + 10 repeats) x 4 folds = 6,000 fold trainings of up to 100,000 iterations."""
    proc = cli("plan", str(ROOT / "configs" / "reality-check.yaml"), "--datasets", "cub200", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    total = next(line for line in proc.stdout.splitlines() if line.startswith("| total"))
    cells = [c.strip() for c in total.strip("|").split("|")]
    assert cells[4] == "6000"
    assert cells[5] == "600M"  # 6,000 fold trainings x max_epochs x iterations_per_epoch (100,000)
    assert "1,501 units of work (1 Pretrained test, 1,250 search trials, 250 repeats)" in proc.stdout
    assert "assumptions:" in proc.stdout and not list(tmp_path.iterdir())  # nothing written


def test_counts_by_hand():
    cfg = load_run_config(preset="smoke", overrides=["protocol.n_trials=5", "protocol.n_repeats=3"],
                          methods=["contrastive", "multi_similarity"])
    plan = plan_run(cfg)
    per_fold = cfg.training.max_epochs * cfg.training.iterations_per_epoch  # 2 x 10
    for row in plan.rows:
        assert (row.trials, row.repeats, row.folds) == (5, 3, 2)
        assert row.fold_trainings == (5 + 3) * 2
        assert row.max_iterations == (5 + 3) * 2 * per_fold
    assert plan.totals()["units"] == 2 * (5 + 3) + 1
    capped_cfg = load_run_config(preset="smoke", overrides=["protocol.n_trials=5", "protocol.budget_iterations=50"])
    capped = plan_run(capped_cfg)
    assert capped.rows[0].max_iterations == 50 + capped_cfg.protocol.n_repeats * 2 * per_fold


def test_expected_iterations_come_from_a_previous_run_of_the_same_config(tmp_path):
    cfg = load_run_config(preset="smoke", methods=["contrastive"])
    (tmp_path / "config.resolved.yaml").write_text(yaml.safe_dump(config_to_dict(cfg)))
    trials = [("contrastive", "builtin", 0, "COMPLETE", 0.5, "{}", "[]", "search", 1.0, 12, 0, "[]", ""),
              ("contrastive", "builtin", 1, "PRUNED", None, "{}", "[]", "search", 1.0, 4, 1, "[]", ""),
              ("contrastive", "builtin", 2, "FAIL", None, "{}", "[]", "search", 1.0, 40, 1, "[]", "")]
    pd.DataFrame(trials, columns=list(TRIAL_COLUMNS)).to_csv(tmp_path / "trials.csv", index=False)
    cost = [("repeats", "contrastive", "builtin", 0, 2.0, 30), ("repeats", "contrastive", "builtin", 1, 2.0, 34)]
    pd.DataFrame(cost, columns=list(COST_COLUMNS)).to_csv(tmp_path / "cost.csv", index=False)
    row = plan_run(cfg, previous_run=tmp_path).rows[0]
    # search: mean of the finished trials (12 and 4) per trial; repeats: the recorded mean (32)
    assert row.expected_iterations == pytest.approx(cfg.protocol.n_trials * 8 + cfg.protocol.n_repeats * 32)
    other = load_run_config(preset="smoke", methods=["contrastive"], overrides=["seed=5"])
    assert plan_run(other, previous_run=tmp_path).rows[0].expected_iterations is None  # another config


@pytest.mark.slow
def test_measure_estimates_the_wall_time_on_this_machine(tmp_path):
    proc = cli("plan", "smoke", "--measure", "--no-progress", "--methods", "contrastive", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| builtin"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[7]) > 0 and float(cells[8]) >= 0 and cells[9].endswith(("min", "h"))
    assert "estimated wall time with 1 worker" in proc.stdout
    assert "measure builtin/contrastive" in proc.stderr


def test_bad_input_is_one_line(tmp_path):
    proc = cli("plan", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1
    proc = cli("plan", cwd=tmp_path)
    assert proc.returncode == 2 and "plan needs a config" in proc.stderr
