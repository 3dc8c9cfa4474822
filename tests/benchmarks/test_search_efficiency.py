"""benchmarks/search_efficiency.py: its figures from known curves, and its smallest run through the harness."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "search_efficiency.py"
spec = importlib.util.spec_from_file_location("search_efficiency", PATH)
se = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = se  # its dataclasses look their module up
spec.loader.exec_module(se)


def run(strategy, curve, *, method="m", seed=0, test=0.3):
    return dict(method=method, seed=seed, strategy=strategy, curve=curve, spent=curve[-1][0], best=curve[-1][1],
                complete=len(curve), pruned=0, test=test)


def test_compute_to_reach_is_the_first_point_at_the_target():
    curve = [(100, 0.30), (250, 0.35), (400, 0.41), (600, 0.42)]
    assert se.compute_to_reach(curve, 0.41) == 400
    assert se.compute_to_reach(curve, 0.35) == 250
    assert se.compute_to_reach(curve, 0.43) == math.inf
    assert se.compute_to_reach([(100, -math.inf)], 0.0) == math.inf  # no complete trial yet


def test_shares_summary_and_winner():
    a = [(100, 0.30), (500, 0.38), (1200, 0.40)]  # a's best 0.40; within 1 point: 0.39
    runs = [run("a", a), run("b", [(100, 0.30), (300, 0.395)], test=0.31),  # 300 / 1200 = 0.25
            run("c", [(100, 0.30), (350, 0.392), (390, 0.399)], test=0.32),  # 350 / 1200 = 0.29, close: 390
            run("d", [(100, 0.30), (1200, 0.385)])]  # never
    assert se.shares(runs, "b", 0.01) == [0.25]
    rows = {r["strategy"]: r for r in se.summarise(runs)}
    assert rows["a"]["median_share"] == pytest.approx(1200 / 1200) and rows["a"]["within"] == 0
    assert rows["b"]["within"] == 1 and rows["d"]["reached"] == 0 and rows["d"]["median_share"] == math.inf
    assert rows["c"]["median_share_close"] == pytest.approx(390 / 1200)
    assert rows["b"]["median_share_close"] == math.inf  # 0.395 < 0.3975
    assert se.winner(list(rows.values())) == "c"  # both within a third: c gets within a quarter point sooner
    slow = [run("a", a), run("b", [(100, 0.30), (600, 0.395)]), run("c", [(100, 0.30)])]
    assert se.winner(se.summarise(slow)) is None  # b needs half of a's compute, c never gets there
    assert "| (b) TPE + median" in se.table(se.summarise(slow))


@pytest.mark.slow
def test_the_smallest_run_goes_through_the_harness_and_resumes(capsys, tmp_path):
    args = ["--quick", "--methods", "contrastive", "--seeds", "0", "--jobs", "1", "--runs", str(tmp_path / "r.jsonl")]
    assert se.main(args) == 0
    out = capsys.readouterr().out
    for key in "abcd":
        assert f"| ({key}) " in out
    assert "contrastive seed 0 (c)" in out and "wall time" in out
    recorded = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(recorded) == 4
    assert se.main(args) == 0  # everything recorded: nothing runs again, the same table
    again = capsys.readouterr().out
    assert again.count("(recorded earlier)") == 4 and len((tmp_path / "r.jsonl").read_text().splitlines()) == 4
    assert again.split("\n\n")[1] == out.split("\n\n")[1]
