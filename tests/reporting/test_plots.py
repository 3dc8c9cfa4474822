"""Plots: PNG and PDF files are written, missing CSV files are skipped, no import side effects."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from benchmark.constants import CURVE_COLUMNS, TRIAL_COLUMNS
from benchmark.errors import BenchmarkError
from benchmark.manifest import manifest_for, write_manifest
from benchmark.metric_catalog import VALIDATION_METRIC
from benchmark.reporting import plots
from benchmark.reporting.aggregate import aggregate, read_trials
from benchmark.reporting.plots import (
    plot_metric_bars,
    plot_optimisation_history,
    plot_validation_curves,
    write_plots,
)
from tests.reporting.helpers import MANIFEST, fake_results


def _check(paths, stems):
    assert sorted(p.name for p in paths) == sorted(f"{s}.{e}" for s in stems
                                                   for e in ("png", "pdf"))
    for p in paths:
        data = p.read_bytes()
        assert len(data) > 1000
        assert data.startswith(b"\x89PNG" if p.suffix == ".png" else b"%PDF")


def _trials() -> pd.DataFrame:
    rows = [("triplet", "cub200", t, "COMPLETE" if t != 2 else "FAIL", 0.1 + 0.01 * (t % 3),
             json.dumps({"margin": 0.1 * t}), json.dumps([0.1] * 4)) for t in range(6)]
    # the header of run folders written before the cost columns existed
    return pd.DataFrame(rows, columns=list(TRIAL_COLUMNS[:7]))


def _curves() -> pd.DataFrame:
    rows = [("triplet", "cub200", r, f, e, 100 * e, VALIDATION_METRIC, 0.1 + 0.01 * e + 0.001 * f)
            for r in range(2) for f in range(4) for e in range(1, 5)]
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def test_plot_functions(tmp_path):
    agg = aggregate(fake_results(), MANIFEST)
    _check(plot_metric_bars(agg, "cub200", tmp_path), ["cub200_metrics"])
    assert plot_metric_bars(agg, "sop", tmp_path) == []
    _check(plot_optimisation_history(_trials(), tmp_path / "o"), ["cub200_optimisation"])
    labels = {k: m.label for k, m in MANIFEST.metrics.items()}
    _check(plot_validation_curves(_curves(), tmp_path / "v", labels=labels), ["cub200_validation"])


def test_write_plots_uses_what_is_there(tmp_path):
    assert write_plots(tmp_path) == []
    fake_results().to_csv(tmp_path / "results.csv", index=False)
    write_manifest(tmp_path, MANIFEST)
    _check(write_plots(tmp_path), ["cub200_metrics"])
    _trials().to_csv(tmp_path / "trials.csv", index=False)
    _curves().to_csv(tmp_path / "curves.csv", index=False)
    _check(write_plots(tmp_path), ["cub200_metrics", "cub200_optimisation",
                                   "cub200_validation"])
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name.startswith(".")]


def test_import_has_no_pyplot_side_effect():
    code = ("import sys, benchmark.reporting; "
            "print('matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_metric_bars_legend_names_each_embedding_with_its_dimension(monkeypatch, tmp_path):
    """A 2-fold run of 128-d models: the concatenation is 256-d, as the manifest says; panels carry labels."""
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, out_dir, stem: figures.append(fig) or [])
    two_folds = manifest_for(folds=2, repeats=3, embedding_dim=128, recall_at=[[1]], far=1e-3)
    results = fake_results()
    results = results[results["embedding"].isin(["fold0", "fold1", "concatenated"])]
    plot_metric_bars(aggregate(results, two_folds), "cub200", tmp_path)
    (fig,) = figures
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["Concatenated (256-dim)", "Separated (128-dim)"]
    assert fig.axes[0].get_title() == "P@1"
    with pytest.raises(BenchmarkError, match="fold2"):  # 4 folds' rows are not this manifest's run
        aggregate(fake_results(), two_folds)


def test_optimisation_history_has_integer_trial_ticks_and_draws_pruned_trials(monkeypatch, tmp_path):
    """trials.csv on disk with COMPLETE, PRUNED (with and without a finished fold) and FAIL trials."""
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, out_dir, stem: figures.append(fig) or [])
    rows = [("triplet", "cub200", 0, "COMPLETE", 0.20, "{}", "[0.2, 0.2]"),
            ("triplet", "cub200", 1, "PRUNED", "", "{}", "[0.10, 0.14]"),
            ("triplet", "cub200", 2, "COMPLETE", 0.25, "{}", "[0.25, 0.25]"),
            ("triplet", "cub200", 3, "PRUNED", "", "{}", "[]"),
            ("triplet", "cub200", 4, "FAIL", "", "{}", "[]"),
            ("triplet", "cub200", 5, "COMPLETE", 0.22, "{}", "[0.22, 0.22]"),
            # two trials: matplotlib's default ticks would be 0, 0.2, ..., 1
            ("contrastive", "cub200", 0, "COMPLETE", 0.20, "{}", "[0.2, 0.2]"),
            ("contrastive", "cub200", 1, "COMPLETE", 0.21, "{}", "[0.21, 0.21]")]
    pd.DataFrame(rows, columns=list(TRIAL_COLUMNS[:7])).to_csv(tmp_path / "trials.csv", index=False)
    plot_optimisation_history(read_trials(tmp_path / "trials.csv"), tmp_path)
    (fig,) = figures
    fig.canvas.draw()
    for panel in fig.axes[:2]:
        ticks = [t for t in panel.get_xticks() if panel.get_xlim()[0] <= t <= panel.get_xlim()[1]]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
    ax = fig.axes[0]
    crosses = {c.get_label(): c.get_offsets() for c in ax.collections if c.get_label().startswith("pruned")}
    # trial 1 at the mean of the folds it finished; trial 3 (none finished) at the bottom of the panel
    assert crosses["pruned (mean of its folds so far)"].tolist() == [[1.0, pytest.approx(12.0)]]
    assert crosses["pruned (no fold finished)"][:, 0].tolist() == [3.0]
    dots = next(c for c in ax.collections if c.get_label() == "trial").get_offsets()
    assert dots[:, 0].tolist() == [0.0, 2.0, 5.0]  # COMPLETE only; the failed trial 4 is not drawn
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "pruned (mean of its folds so far)" in legend and "pruned (no fold finished)" in legend
