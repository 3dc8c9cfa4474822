"""Aggregation over repeats: separated/concatenated means, Student-t half-widths, n, order."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.constants import RESULT_COLUMNS
from benchmark.errors import BenchmarkError
from benchmark.reporting.aggregate import (
    AGGREGATE_COLUMNS,
    aggregate,
    read_results,
    t_half_width,
)
from tests.reporting.helpers import CONCAT, FOLDS, MANIFEST, SEPARATED_BY_HAND, fake_results


def _row(agg: pd.DataFrame, method: str, embedding: str, metric: str = "precision_at_1"):
    sel = agg[(agg["method"] == method) & (agg["embedding"] == embedding)
              & (agg["metric"] == metric)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_columns_and_embeddings():
    agg = aggregate(fake_results(), MANIFEST)
    assert tuple(agg.columns) == AGGREGATE_COLUMNS
    assert set(agg["embedding"]) == {"concatenated", "separated"}


def test_separated_is_mean_of_fold_means_with_t_interval():
    # the hand-computed per-repeat fold means
    for r, expected in zip(FOLDS, SEPARATED_BY_HAND):
        assert np.mean(FOLDS[r]) == pytest.approx(expected)
    row = _row(aggregate(fake_results(), MANIFEST), "contrastive", "separated")
    shift = 0.02  # contrastive is third in fake_results
    vals = [v + shift for v in SEPARATED_BY_HAND]
    assert row["n"] == 3
    assert row["mean"] == pytest.approx((0.53 + 0.43 + 0.62) / 3 + shift)
    assert row["values"] == pytest.approx(tuple(vals))
    by_hand = stats.t.ppf(0.975, 2) * np.std(vals, ddof=1) / math.sqrt(3)
    assert row["half_width"] == pytest.approx(by_hand)
    assert row["half_width"] == pytest.approx(0.236102, abs=1e-6)


def test_concatenated_mean_and_half_width():
    row = _row(aggregate(fake_results(), MANIFEST), "triplet", "concatenated")
    vals = [CONCAT[r] for r in range(3)]
    assert row["mean"] == pytest.approx(0.63)
    assert row["half_width"] == pytest.approx(
        stats.t.ppf(0.975, 2) * np.std(vals, ddof=1) / math.sqrt(3))


def test_confidence_level_changes_half_width():
    row90 = _row(aggregate(fake_results(), MANIFEST, confidence=0.90), "triplet", "concatenated")
    vals = [CONCAT[r] for r in range(3)]
    assert row90["half_width"] == pytest.approx(
        stats.t.ppf(0.95, 2) * np.std(vals, ddof=1) / math.sqrt(3))


def test_single_repeat_has_nan_half_width():
    agg = aggregate(fake_results(), MANIFEST)
    for emb in ("concatenated", "separated"):
        row = _row(agg, "pretrained", emb)
        assert row["n"] == 1
        assert math.isnan(row["half_width"])
    assert _row(agg, "pretrained", "separated")["mean"] == pytest.approx(0.53 + 0.01)


def test_t_half_width_edge_cases():
    assert math.isnan(t_half_width([0.5]))
    assert math.isnan(t_half_width([]))
    assert t_half_width([0.5, 0.5, 0.5]) == 0.0


def test_method_order_first_appearance_pretrained_first():
    agg = aggregate(fake_results(("triplet", "pretrained", "contrastive")), MANIFEST)
    assert list(dict.fromkeys(agg["method"])) == ["pretrained", "triplet", "contrastive"]
    agg = aggregate(fake_results(("contrastive", "triplet")), MANIFEST)
    assert list(dict.fromkeys(agg["method"])) == ["contrastive", "triplet"]


def test_nan_values_are_left_out():
    df = fake_results(("triplet",))
    df.loc[(df["repeat"] == 2) & (df["embedding"] == "concatenated"), "value"] = np.nan
    row = _row(aggregate(df, MANIFEST), "triplet", "concatenated")
    assert row["n"] == 2
    assert row["mean"] == pytest.approx(0.61)


def test_duplicate_rows_and_unknown_embedding_rejected():
    df = fake_results(("triplet",))
    with pytest.raises(BenchmarkError, match="duplicate"):
        aggregate(pd.concat([df, df.iloc[:1]]), MANIFEST)
    bad = df.copy()
    bad.loc[0, "embedding"] = "foldX"
    with pytest.raises(BenchmarkError, match="foldX"):
        aggregate(bad, MANIFEST)


def test_read_results_roundtrip(tmp_path):
    path = tmp_path / "results.csv"
    fake_results().to_csv(path, index=False)
    df = read_results(path)
    assert tuple(df.columns) == RESULT_COLUMNS
    assert df["repeat"].dtype == np.int64
    assert len(aggregate(df, MANIFEST)) == 6


def test_read_results_rejects_wrong_header(tmp_path):
    path = tmp_path / "results.csv"
    fake_results().rename(columns={"value": "val"}).to_csv(path, index=False)
    with pytest.raises(BenchmarkError) as info:
        read_results(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "method, display_name, dataset, repeat, embedding, metric, value" in msg


def test_read_results_rejects_extra_column_missing_file_and_bad_value(tmp_path):
    path = tmp_path / "results.csv"
    fake_results().assign(extra=1).to_csv(path, index=False)
    with pytest.raises(BenchmarkError, match="extra"):
        read_results(path)
    with pytest.raises(BenchmarkError, match="does not exist"):
        read_results(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(BenchmarkError, match="empty.csv"):
        read_results(empty)
    df = fake_results()
    df["value"] = df["value"].astype(object)
    df.loc[3, "value"] = "high"
    df.to_csv(path, index=False)
    with pytest.raises(BenchmarkError, match="row 5"):
        read_results(path)
