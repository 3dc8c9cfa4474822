"""Search diagnostics: position of the best trial, late-best and edge warnings, old folders."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from benchmark.constants import TRIAL_COLUMNS
from benchmark.methods.search_space import Categorical, Float, Int
from benchmark.reporting.diagnostics import (
    best_so_far,
    edge_parameters,
    range_position,
    search_diagnostics,
)

SPACE = {"margin": Float(0.0, 1.0), "lr": Float(1e-6, 1.0, log=True), "bins": Int(2, 102),
         "kind": Categorical(["a", "b"])}
LEGACY = list(TRIAL_COLUMNS[:7])  # the columns of the first trials.csv


def _trials(method: str, values, params, states=None) -> list[tuple]:
    states = states or ["COMPLETE"] * len(values)
    return [(method, "cub200", t, s, v, json.dumps(p), "[]")
            for t, (v, p, s) in enumerate(zip(values, params, states))]


def test_range_position_linear_log_int_categorical():
    assert range_position(SPACE["margin"], 0.25) == pytest.approx(0.25)
    assert range_position(SPACE["lr"], 1e-3) == pytest.approx(0.5)  # halfway in log space
    assert range_position(SPACE["bins"], 97) == pytest.approx(0.95)
    assert math.isnan(range_position(SPACE["kind"], "a"))


def test_edge_parameters_by_hand():
    edges = edge_parameters({"margin": 0.04, "lr": 1.9e-6, "bins": 50, "kind": "b"}, SPACE)
    # margin 0.04 <= 0.05 of [0, 1]; lr: ln(1.9) / ln(1e6) = 0.0465 -> low end
    assert edges == ["margin=0.04 (low end of [0, 1])",
                     "lr=1.9e-06 (low end of [1e-06, 1] (log))"]
    # ln(2) / ln(1e6) = 0.0502: just inside the range
    assert edge_parameters({"lr": 2e-6}, SPACE) == []
    assert edge_parameters({"margin": 0.96}, SPACE) == ["margin=0.96 (high end of [0, 1])"]
    assert edge_parameters({"margin": 0.5, "unknown": 3.0}, SPACE) == []


def test_late_best_and_edges():
    mid = {"margin": 0.5, "lr": 1e-3}
    rows = (_trials("late", [0.1, 0.2, 0.3, 0.4, 0.5], [mid] * 4 + [{"margin": 0.99, "lr": 1e-3}])
            + _trials("early", [0.5, 0.2, 0.3, 0.4, math.nan], [mid] * 5,
                      states=["COMPLETE"] * 4 + ["PRUNED"])
            + _trials("single", [0.3], [{}])
            + _trials("failed", [math.nan], [{}], states=["FAIL"]))
    diag = search_diagnostics(pd.DataFrame(rows, columns=LEGACY), space_of=lambda m, d: SPACE)
    late, early, single = (diag.set_index("method").loc[m] for m in ("late", "early", "single"))
    assert (late["budget"], late["best_trial"], late["best_position"]) == (5, 4, 5)
    assert bool(late["late_best"]) and "last 20% of the budget" in late["warnings"]
    assert late["edge_parameters"] == "margin=0.99 (high end of [0, 1])"
    assert (early["budget"], early["best_position"], bool(early["late_best"])) == (5, 1, False)
    assert early["warnings"] == ""
    assert single["budget"] == 1 and not bool(single["late_best"])  # no search: no warning
    assert "failed" not in set(diag["method"])


def test_boundary_of_the_last_fifth():
    # 10 trials: position 8 is not in the last fifth (8 <= 0.8 * 10), position 9 is
    for pos, late in ((8, False), (9, True)):
        values = [0.1] * 10
        values[pos - 1] = 0.9
        diag = search_diagnostics(pd.DataFrame(_trials("m", values, [{}] * 10), columns=LEGACY),
                                  space_of=lambda m, d: {})
        assert bool(diag["late_best"].iloc[0]) is late


def test_unknown_method_is_said():
    diag = search_diagnostics(pd.DataFrame(_trials("not_a_method_xyz", [0.1, 0.2], [{}, {}]),
                                           columns=LEGACY))
    assert "search space unknown" in diag["warnings"].iloc[0]


def test_registry_space_is_used():
    rows = _trials("triplet", [0.1, 0.2], [{"margin": 0.1}, {"margin": 1.99}])
    diag = search_diagnostics(pd.DataFrame(rows, columns=LEGACY))
    assert diag["edge_parameters"].iloc[0].startswith("margin=1.99 (high end")


def test_the_registry_space_of_the_trials_dataset_is_used():
    """ArcFace's scale reaches 300 on SOP (the published SOP range), 200 elsewhere."""
    rows = _trials("arcface", [0.1, 0.2], [{"scale": 100.0}, {"scale": 199.0}])
    cub = search_diagnostics(pd.DataFrame(rows, columns=LEGACY))
    sop = search_diagnostics(pd.DataFrame([(r[0], "sop", *r[2:]) for r in rows], columns=LEGACY))
    assert cub["edge_parameters"].iloc[0].startswith("scale=199 (high end of [0.01, 200])")
    assert sop["edge_parameters"].iloc[0] == ""


def test_best_so_far():
    assert best_so_far(pd.Series([0.1, 0.3, math.nan, 0.2, 0.4])).tolist() == \
        [0.1, 0.3, 0.3, 0.3, 0.4]
