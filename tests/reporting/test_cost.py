"""Cost: the export's cost rows from the trials, the cost table, batch sizes, old run folders."""

from __future__ import annotations

import datetime as dt
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from benchmark.constants import COST_COLUMNS, TRIAL_COLUMNS, TRIAL_COST_COLUMNS
from benchmark.protocol.export import trial_rows, unit_cost_rows
from benchmark.reporting.cost import batch_sizes, cost_table, run_cost_table

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def _trial(number, seconds, fold_iterations=None, state="COMPLETE"):
    attrs = {"fold_values": [0.1, 0.2]}
    if fold_iterations is not None:
        attrs["fold_iterations"] = fold_iterations
    return SimpleNamespace(number=number, state=SimpleNamespace(name=state), value=0.15,
                           params={"margin": 0.1}, user_attrs=attrs, datetime_start=T0,
                           datetime_complete=None if seconds is None
                           else T0 + dt.timedelta(seconds=seconds))


def _stages():
    search = SimpleNamespace(trials=lambda: [_trial(0, 10.5, [100, 120]), _trial(1, None)],
                             slots=lambda trials: {t.number: t.number for t in trials},
                             owners=lambda trials: {t.number: t for t in trials})
    repeats = SimpleNamespace(completed_units=lambda: {1: _trial(5, 4.0, [50, 50]),
                                                       0: _trial(4, 6.0, [60, 40])})
    pre = SimpleNamespace(dcfg=SimpleNamespace(key="cub200"),
                          completed_units=lambda: {0: _trial(0, 1.25)})
    return SimpleNamespace(search={("cub200", "triplet"): search},
                           repeats={("cub200", "triplet"): repeats}, pretrained=[pre])


def test_export_cost_rows():
    rows = pd.DataFrame(trial_rows(_stages()), columns=list(TRIAL_COLUMNS))
    assert rows["stage"].tolist() == ["search", "search"]
    assert rows["wall_seconds"].iloc[0] == 10.5 and math.isnan(rows["wall_seconds"].iloc[1])
    assert rows["iterations"].iloc[0] == 220 and math.isnan(rows["iterations"].iloc[1])
    units = pd.DataFrame(unit_cost_rows(_stages()), columns=list(COST_COLUMNS))
    assert units[["stage", "method", "unit"]].values.tolist() == [
        ["test", "pretrained", 0], ["repeats", "triplet", 0], ["repeats", "triplet", 1]]
    assert units["wall_seconds"].tolist() == [1.25, 6.0, 4.0]
    assert units["iterations"].tolist() == [0.0, 100.0, 100.0]


def test_cost_table_by_hand(tmp_path):
    (tmp_path / "config.resolved.yaml").write_text(
        "training: {batch_size: 32}\ndatasets:\n  - {name: cub200, training: {batch_size: 64}}\n"
        "  - {name: builtin, label: b2, training: {}}\n", encoding="utf-8")
    assert batch_sizes(tmp_path / "config.resolved.yaml") == {"cub200": 64, "b2": 32}
    assert batch_sizes(tmp_path / "missing.yaml") == {}
    pd.DataFrame(trial_rows(_stages()), columns=list(TRIAL_COLUMNS)).to_csv(
        tmp_path / "trials.csv", index=False)
    pd.DataFrame(unit_cost_rows(_stages()), columns=list(COST_COLUMNS)).to_csv(
        tmp_path / "cost.csv", index=False)
    table = run_cost_table(tmp_path).set_index(["method", "stage"])
    search = table.loc[("triplet", "search")]
    assert search["units"] == 2
    assert math.isnan(search["wall_seconds"])  # one trial unfinished: no partial sum
    repeats = table.loc[("triplet", "repeats")]
    assert (repeats["units"], repeats["wall_seconds"], repeats["iterations"],
            repeats["images"]) == (2, 10.0, 200.0, 200.0 * 64)
    assert math.isnan(table.loc[("triplet", "total"), "wall_seconds"])
    assert table.loc[("pretrained", "test"), "images"] == 0.0


def test_old_run_folder_has_no_cost(tmp_path):
    legacy = list(TRIAL_COLUMNS[:7])  # the columns of the first trials.csv
    assert not set(legacy) & set(TRIAL_COST_COLUMNS)
    pd.DataFrame([("triplet", "cub200", 0, "COMPLETE", 0.1, "{}", "[]")],
                 columns=legacy).to_csv(tmp_path / "trials.csv", index=False)
    table = run_cost_table(tmp_path)
    assert table["stage"].tolist() == ["search"]
    assert table["units"].tolist() == [1]
    assert table[["wall_seconds", "iterations", "images"]].isna().all().all()
    assert run_cost_table(tmp_path / "nothing").empty


def test_cost_table_without_anything():
    assert cost_table(None, None).empty
    frame = cost_table(None, pd.DataFrame([("repeats", "m", "d", 0, 2.0, 10.0)],
                                          columns=list(COST_COLUMNS)), {"d": 8})
    assert frame["images"].tolist() == pytest.approx([80.0])
