"""The run analysis on hand-made run folders: groups, ranks, diagnostics, cost, old folders."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from benchmark.constants import RESULT_COLUMNS
from benchmark.manifest import write_manifest
from benchmark.reporting.findings import analyse_run, summary_lines, write_findings
from tests.reporting.fixtures import write_run_folder
from tests.reporting.helpers import MANIFEST


def test_groups_pairs_and_power(tmp_path):
    a = analyse_run(write_run_folder(tmp_path))
    g = a.groups[(a.groups["embedding"] == "concatenated")].iloc[0]
    # contrastive (0.31) best; triplet (0.3075, wide spread) not separated; NT-Xent (0.21) is
    assert g["best"] == "contrastive" and g["group"] == ["contrastive", "triplet"]
    assert g["not_tested"] == ["pretrained"]
    pair = a.pairwise[(a.pairwise["embedding"] == "concatenated")
                      & (a.pairwise["method_a"] == "contrastive")
                      & (a.pairwise["method_b"] == "ntxent")].iloc[0]
    assert (pair["n_a"], pair["n_b"]) == (4, 3)  # NT-Xent's NaN repeat is left out
    assert pair["p_value"] == pytest.approx(stats.ttest_ind([0.30, 0.31, 0.32, 0.31],
                                                            [0.20, 0.21, 0.22],
                                                            equal_var=False).pvalue)
    assert pair["min_detectable_difference"] > 0 and pair["repeats_needed"] >= 2
    lines = summary_lines(a)
    assert any("best Contrastive; not significantly worse: Triplet" in ln for ln in lines)
    assert any("not enough datasets" in ln for ln in lines)
    assert any(ln.startswith("search cub200/Triplet: best found at trial 5 of 5") for ln in lines)
    assert any("temperature=50 (high end" in ln for ln in lines)
    cost = a.cost.set_index(["method", "stage"])
    assert cost.loc[("triplet", "total"), "wall_seconds"] == pytest.approx(5 * 10.0 + 4 * 5.0)
    assert cost.loc[("triplet", "repeats"), "images"] == 4 * 100 * 32
    assert a.notes == []


def test_two_datasets_friedman(tmp_path):
    a = analyse_run(write_run_folder(tmp_path, datasets=("cub200", "cars196")))
    fr = a.friedman[a.friedman["embedding"] == "concatenated"].iloc[0]
    assert fr["note"] == "" and fr["k"] == 3 and fr["n_datasets"] == 2
    means = a.agg[(a.agg["embedding"] == "concatenated") & (a.agg["method"] != "pretrained")]
    piv = means.pivot(index="dataset", columns="method", values="mean")
    ref = stats.friedmanchisquare(*[piv[c].to_numpy() for c in piv.columns])
    assert fr["chi2"] == pytest.approx(ref.statistic)
    assert fr["p_value"] == pytest.approx(ref.pvalue)
    assert any("Friedman chi2" in ln for ln in summary_lines(a))


def test_old_run_folder(tmp_path):
    run = write_run_folder(tmp_path, old=True)
    a = analyse_run(run)
    assert a.diagnostics is None and a.cost.empty
    assert any("trials.csv not recorded" in n for n in a.notes)
    assert any("cost.csv not recorded" in n for n in a.notes)
    names = sorted(p.name for p in write_findings(run, a))
    assert names == ["cub200_pairwise.csv", "friedman.csv", "ranks.csv"]
    pairs = pd.read_csv(run / "tables" / "cub200_pairwise.csv")
    assert len(pairs) == 2 * 6 and "min_detectable_difference" in pairs.columns  # 4 methods


def test_lone_tested_method_and_nan_only_method(tmp_path):
    rows = [("a", "A", "cub200", r, "concatenated", "map_at_r", math.nan) for r in range(3)]
    rows += [("b", "B", "cub200", r, "concatenated", "map_at_r", 0.1 + 0.01 * r) for r in range(3)]
    pd.DataFrame(rows, columns=list(RESULT_COLUMNS)).to_csv(tmp_path / "results.csv", index=False)
    write_manifest(tmp_path, MANIFEST)
    a = analyse_run(tmp_path)
    assert summary_lines(a)[0] == ("cub200, concatenated MAP@R: best B; no other method has two "
                                   "repeats to test against")
    pair = a.pairwise.iloc[0]
    assert pair["n_a"] == 0 and math.isnan(pair["p_value"]) and math.isnan(pair["p_a_beats_b"])
