"""Ranks, Friedman, Nemenyi: Demšar's table and worked example, hand computations, scipy."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from benchmark.constants import RESULT_COLUMNS
from benchmark.reporting.aggregate import aggregate
from benchmark.reporting.cd_diagram import write_cd_diagrams
from benchmark.reporting.ranking import (
    average_ranks,
    cliques,
    critical_difference,
    friedman,
    friedman_tests,
    nemenyi_cliques,
    nemenyi_q,
    rank_matrix,
)
from tests.reporting.helpers import MANIFEST

#: Demšar 2006, Table 5(a): q_0.05 for k = 2..10.
DEMSAR_Q05 = {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 6: 2.850, 7: 2.949, 8: 3.031, 9: 3.102,
              10: 3.164}
#: per dataset, the three methods' MAP@R (no ties): ranks (1,2,3), (2,1,3), (1,3,2)
MEANS = {"d1": {"a": 0.9, "b": 0.8, "c": 0.7}, "d2": {"a": 0.8, "b": 0.9, "c": 0.7},
         "d3": {"a": 0.9, "b": 0.7, "c": 0.8}}


def _results(means=MEANS, pretrained=True) -> pd.DataFrame:
    rows = []
    for dataset, per in means.items():
        for method, value in per.items():
            for r, jitter in enumerate((-0.01, 0.0, 0.01)):
                rows.append((method, method.upper(), dataset, r, "concatenated", "map_at_r",
                             value + jitter))
        if pretrained:
            rows.append(("pretrained", "Pretrained", dataset, 0, "concatenated", "map_at_r", 0.99))
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def test_nemenyi_q_matches_demsar_table():
    for k, q in DEMSAR_Q05.items():
        assert nemenyi_q(k) == pytest.approx(q, abs=1e-3)


def test_critical_difference_demsar_example():
    # Demšar's example: 4 classifiers, 14 data sets -> CD = 2.569 sqrt(4*5 / (6*14)) = 1.25
    assert critical_difference(4, 14) == pytest.approx(2.569 * math.sqrt(20 / 84), abs=1e-3)


def test_ranks_and_friedman_by_hand():
    agg = aggregate(_results(), MANIFEST)
    ranks = rank_matrix(agg, "concatenated", "map_at_r")
    assert list(ranks.columns) == ["a", "b", "c"]  # pretrained left out
    assert ranks.loc["d2"].tolist() == [2.0, 1.0, 3.0]
    avg = average_ranks(agg)
    assert avg["method"].tolist() == ["a", "b", "c"]
    assert avg["average_rank"].tolist() == pytest.approx([4 / 3, 2.0, 8 / 3])
    res = friedman(ranks)
    # chi2 = 12N/(k(k+1)) (sum R^2 - k(k+1)^2/4) = 3 (116/9 - 12) = 8/3; F = 2 chi2 / (6 - chi2)
    assert res["chi2"] == pytest.approx(8 / 3)
    assert res["p_value"] == pytest.approx(stats.chi2.sf(8 / 3, 2))
    ref = stats.friedmanchisquare([0.9, 0.8, 0.9], [0.8, 0.9, 0.7], [0.7, 0.7, 0.8])
    assert res["chi2"] == pytest.approx(ref.statistic)
    assert res["iman_davenport_f"] == pytest.approx(1.6)
    assert res["iman_davenport_p"] == pytest.approx(stats.f.sf(1.6, 2, 4))
    assert res["critical_difference"] == pytest.approx(2.343 * math.sqrt(12 / 18), abs=1e-3)


def test_a_lower_is_better_metric_ranks_the_minimum_first():
    """The same means as a false-accept rate (lower is better, so says the manifest): ranks reversed."""
    results = _results()
    results["metric"] = "far_at_threshold"
    ranks = rank_matrix(aggregate(results, MANIFEST), "concatenated", "far_at_threshold")
    assert ranks.loc["d2"].tolist() == [2.0, 3.0, 1.0]  # a 0.8, b 0.9, c 0.7: c lowest, best
    assert average_ranks(aggregate(results, MANIFEST))["method"].tolist() == ["c", "b", "a"]


def test_ties_share_the_average_rank():
    means = {"d1": {"a": 0.5, "b": 0.5, "c": 0.4}, "d2": {"a": 0.6, "b": 0.7, "c": 0.7}}
    ranks = rank_matrix(aggregate(_results(means), MANIFEST), "concatenated", "map_at_r")
    assert ranks.loc["d1"].tolist() == [1.5, 1.5, 3.0]
    assert ranks.loc["d2"].tolist() == [3.0, 1.5, 1.5]


def test_not_enough_datasets_or_methods():
    one = aggregate(_results({"d1": MEANS["d1"]}), MANIFEST)
    tests = friedman_tests(one)
    assert tests["note"].iloc[0].startswith("not enough datasets")
    assert math.isnan(tests["chi2"].iloc[0])
    assert average_ranks(one)["average_rank"].tolist() == [1.0, 2.0, 3.0]
    two = aggregate(_results({d: {"a": v["a"], "b": v["b"]} for d, v in MEANS.items()}), MANIFEST)
    assert friedman_tests(two)["note"].iloc[0].startswith("not enough methods")


def test_method_missing_on_a_dataset_is_not_ranked():
    means = {"d1": {"a": 0.9, "b": 0.8, "c": 0.7}, "d2": {"a": 0.8, "b": 0.9}}
    ranks = rank_matrix(aggregate(_results(means), MANIFEST), "concatenated", "map_at_r")
    assert list(ranks.columns) == ["a", "b"]


def test_cliques_by_hand():
    avg = {"a": 1.0, "b": 1.5, "c": 2.4, "d": 4.0}
    # CD 1.5: a-b-c within 1.4 of each other; d is 1.6 from c -> alone
    assert nemenyi_cliques(avg, 1.5) == [["a", "b", "c"]]
    # CD 1.0: a-b, b-c (0.9); a-c is 1.4 -> two bars
    assert nemenyi_cliques(avg, 1.0) == [["a", "b"], ["b", "c"]]
    assert cliques(["x", "y"], lambda a, b: False) == []


def test_cd_diagrams_written(tmp_path):
    paths = write_cd_diagrams(aggregate(_results(), MANIFEST), tmp_path)
    assert sorted(p.name for p in paths) == ["cd_concatenated_map_at_r.pdf",
                                             "cd_concatenated_map_at_r.png"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[0].stat().st_size > 5000
    one = write_cd_diagrams(aggregate(_results({"d1": MEANS["d1"]}), MANIFEST), tmp_path / "one")
    assert len(one) == 2
