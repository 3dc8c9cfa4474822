"""Everything a reader asking "is this gain real?" needs from a run folder, computed once.

:func:`analyse_run` reads the run's files (``manifest.json`` and ``results.csv``; ``trials.csv``,
``cost.csv`` and ``config.resolved.yaml`` when present) and gathers, in a :class:`RunAnalysis`:

* every pair of methods per dataset, embedding and metric (:mod:`significance`) with its power
  (:mod:`power`), and the significance group of every column;
* average ranks, Friedman tests and critical differences across datasets (:mod:`ranking`);
* search diagnostics (:mod:`diagnostics`) and cost (:mod:`cost`), or a note saying what the run
  folder did not record.

:func:`write_findings` writes them under ``tables/`` (``<dataset>_pairwise.csv``, ``ranks.csv``,
``friedman.csv``, ``search_diagnostics.csv``, ``cost_summary.csv``); :func:`summary_lines` says
what they found in a few lines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.constants import METRICS
from benchmark.io import atomic_write
from benchmark.manifest import RunManifest, read_manifest
from benchmark.reporting.aggregate import aggregate, metric_labels, read_results, read_trials
from benchmark.reporting.cost import run_cost_table
from benchmark.reporting.diagnostics import search_diagnostics
from benchmark.reporting.power import pairwise_power
from benchmark.reporting.ranking import average_ranks, friedman_tests
from benchmark.reporting.significance import (
    ALPHA,
    constant,
    oriented,
    pairwise_comparisons,
    significance_group,
)

#: The difference (a fraction: 0.01 = 1 percentage point) the power columns ask repeats for.
TARGET_DIFFERENCE = 0.01
#: Columns of :attr:`RunAnalysis.groups`.
GROUP_COLUMNS = ("dataset", "embedding", "metric", "best", "group", "not_tested")


@dataclass
class RunAnalysis:
    """The computed frames of one run folder; empty frames and ``notes`` where nothing was recorded."""

    manifest: RunManifest
    agg: pd.DataFrame
    pairwise: pd.DataFrame
    groups: pd.DataFrame
    ranks: pd.DataFrame
    friedman: pd.DataFrame
    diagnostics: pd.DataFrame | None
    cost: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def display(self) -> dict[str, str]:
        return dict(zip(self.agg["method"], self.agg["display_name"]))


def significance_groups(agg: pd.DataFrame, *, alpha: float = ALPHA) -> pd.DataFrame:
    """Per (dataset, embedding, metric): the best tested method, its group (best first, then by
    mean) and the methods not tested (fewer than two repeats); names are method keys."""
    rows = []
    for (dataset, emb, metric), grp in agg.groupby(["dataset", "embedding", "metric"],
                                                   sort=False):
        values = {str(r.method): tuple(r.values) for r in grp.itertuples(index=False)}
        higher = bool(grp["higher_is_better"].iloc[0])
        best, group = significance_group(values, higher=higher, alpha=alpha)
        means = dict(zip(grp["method"], grp["mean"]))
        ordered = sorted(group, key=lambda m: (m != best, -means[m] if higher else means[m]))
        rows.append({"dataset": dataset, "embedding": emb, "metric": metric, "best": best,
                     "group": ordered, "not_tested": [m for m, v in values.items() if len(v) < 2]})
    return pd.DataFrame(rows, columns=list(GROUP_COLUMNS))


def constant_repeats_note(agg: pd.DataFrame, pairs: pd.DataFrame) -> str | None:
    """One sentence counting the tested pairs with a side whose repeats are all identical (zero spread,
    e.g. a false-accept rate at its floor), saying what the tests do then; None when there are none."""
    values = {(r.dataset, r.embedding, r.metric, r.method): r.values for r in agg.itertuples(index=False)}
    tested = pairs[pairs["p_value"].notna()]
    flat = [constant(values.get((r.dataset, r.embedding, r.metric, r.method_a), ()))
            or constant(values.get((r.dataset, r.embedding, r.metric, r.method_b), ()))
            for r in tested.itertuples(index=False)]
    if not any(flat):
        return None
    return (f"{sum(flat)} of {len(flat)} tested pairs have a method whose repeats are all identical (zero "
            "spread): Welch's test then rests on the other method's spread, and with both constant gives "
            "p = 1 when equal, 0 when not (Hedges' g n/a)")


def analyse_run(run_dir: str | os.PathLike, *, alpha: float = ALPHA, difference: float = TARGET_DIFFERENCE,
                agg: pd.DataFrame | None = None) -> RunAnalysis:
    """Compute every frame of :class:`RunAnalysis` from ``run_dir``'s CSV files (``agg``: their aggregate,
    ``aggregate_run(run_dir)``, when the caller has it already)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if agg is None:
        agg = aggregate(read_results(run_dir / "results.csv"), manifest)
    pairs = pairwise_comparisons(agg, alpha=alpha)
    power = pairwise_power(agg, difference=difference, alpha=alpha)
    keys = ["dataset", "embedding", "metric", "method_a", "method_b"]
    pairs = pairs.merge(power, on=keys, how="left")
    notes: list[str] = []
    diagnostics = None
    if (run_dir / "trials.csv").exists():
        diagnostics = search_diagnostics(read_trials(run_dir / "trials.csv"))
    else:
        notes.append("trials.csv not recorded: no search diagnostics")
    note = constant_repeats_note(agg, pairs)
    if note:
        notes.append(note)
    cost = run_cost_table(run_dir)
    if not (run_dir / "cost.csv").exists():
        notes.append("cost.csv not recorded (a run folder from before cost recording): no cost "
                     "of the repeats and test stages")
    for col, what in (("wall_seconds", "wall time"), ("iterations", "training iterations")):
        stages = cost[cost["stage"] != "total"]
        missing = stages[stages[col].isna()]
        if cost.empty or len(missing) == len(stages):
            notes.append(f"{what} not recorded")
        elif len(missing):
            where = ", ".join(dict.fromkeys(f"{r.method} ({r.stage})"
                                            for r in missing.itertuples(index=False)))
            notes.append(f"{what} not recorded for: {where}")
    return RunAnalysis(manifest=manifest, agg=agg, pairwise=pairs, groups=significance_groups(agg, alpha=alpha),
                       ranks=average_ranks(agg), friedman=friedman_tests(agg, alpha=alpha),
                       diagnostics=diagnostics, cost=cost, notes=notes)


def _csv(path: Path, frame: pd.DataFrame) -> Path:
    return atomic_write(path, lambda p: frame.to_csv(p, index=False))


def write_findings(run_dir: str | os.PathLike, analysis: RunAnalysis | None = None) -> list[Path]:
    """Write the analysis' CSV files under ``run_dir/tables``; return the paths written."""
    run_dir = Path(run_dir)
    analysis = analysis or analyse_run(run_dir)
    out = run_dir / "tables"
    written = []
    for dataset, grp in analysis.pairwise.groupby("dataset", sort=False):
        written.append(_csv(out / f"{dataset}_pairwise.csv", grp))
    written.append(_csv(out / "ranks.csv", analysis.ranks))
    written.append(_csv(out / "friedman.csv", analysis.friedman))
    if analysis.diagnostics is not None:
        written.append(_csv(out / "search_diagnostics.csv", analysis.diagnostics))
    if not analysis.cost.empty:
        written.append(_csv(out / "cost_summary.csv", analysis.cost))
    return written


def summary_lines(analysis: RunAnalysis, *, metrics=METRICS) -> list[str]:
    """What the analysis found, in plain sentences: the significance groups of the main metrics,
    the Friedman tests, the search warnings and what was not recorded."""
    display = analysis.display
    labels = metric_labels(analysis.agg)
    lines = []
    for row in analysis.groups.itertuples(index=False):
        if row.metric not in metrics:
            continue
        where = f"{row.dataset}, {row.embedding} {labels[row.metric]}"
        if row.best is None:
            lines.append(f"{where}: no method has two repeats; nothing tested")
            continue
        others = [m for m in row.group if m != row.best]
        pairs = oriented(analysis.pairwise[(analysis.pairwise["dataset"] == row.dataset)
                                           & (analysis.pairwise["embedding"] == row.embedding)
                                           & (analysis.pairwise["metric"] == row.metric)],
                         row.best).set_index("method_b")
        shown = [f"{display.get(m, m)} (P(best beats it) = {pairs.loc[m, 'p_a_beats_b']:.2f})"
                 for m in others]
        if others:
            verdict = f"; not significantly worse: {', '.join(shown)}"
        elif pairs["p_value"].notna().any():
            verdict = "; every other tested method is significantly worse"
        else:
            verdict = "; no other method has two repeats to test against"
        text = f"{where}: best {display.get(row.best, row.best)}{verdict}"
        lines.append(text)
    notes = {row.note for row in analysis.friedman.itertuples(index=False) if row.note}
    for note in sorted(notes):
        lines.append(f"across datasets: {note} (average ranks: tables/ranks.csv)")
    for row in analysis.friedman.itertuples(index=False):
        if row.metric not in metrics or row.note:
            continue
        where = f"across datasets, {row.embedding} {labels[row.metric]}"
        lines.append(f"{where}: Friedman chi2 = {row.chi2:.2f}, p = {row.p_value:.3g} "
                     f"(k = {row.k}, N = {row.n_datasets}); Nemenyi CD = "
                     f"{row.critical_difference:.2f}")
    if analysis.diagnostics is not None:
        for row in analysis.diagnostics.itertuples(index=False):
            if row.warnings:
                lines.append(f"search {row.dataset}/{display.get(row.method, row.method)}: "
                             f"{row.warnings}")
    lines += analysis.notes
    return lines
