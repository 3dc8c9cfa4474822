"""Reporting: from a run folder's ``results.csv`` to aggregated numbers, tables, plots.

* :mod:`~benchmark.reporting.aggregate` reads and validates the result files and aggregates the
  repeats (mean and Student-t 95% interval; "separated" = per-repeat mean over the fold models),
  each row described (label, unit, direction, dimension) by the run's manifest
  (:mod:`benchmark.manifest`).
* :mod:`~benchmark.reporting.tables` renders the papers' tables as Markdown, plain text and
  LaTeX (booktabs) from the aggregate, and writes ``tables/`` in a run folder.
* :mod:`~benchmark.reporting.published` loads the transcribed published tables in
  ``results/published/`` and compares them with ours.
* :mod:`~benchmark.reporting.plots` draws metric bars, optimisation histories and validation
  curves into ``plots/``.

Which differences are real (``dml-bench report`` runs all of them through
:mod:`~benchmark.reporting.run_report`):

* :mod:`~benchmark.reporting.significance`: pairwise Welch tests, Holm, effect sizes,
  P(A beats B), the significance group the tables mark;
* :mod:`~benchmark.reporting.power`: minimal detectable differences and repeats needed;
* :mod:`~benchmark.reporting.ranking` and :mod:`~benchmark.reporting.cd_diagram`: average ranks,
  Friedman, Nemenyi critical difference and its diagram;
* :mod:`~benchmark.reporting.diagnostics`: search convergence and range-edge warnings;
* :mod:`~benchmark.reporting.cost`: wall time, iterations and images per method and stage;
* :mod:`~benchmark.reporting.findings` gathers them from a run folder's CSV files and
  :mod:`~benchmark.reporting.html_report` renders ``report.html``.
"""

from benchmark.reporting.aggregate import (
    AGGREGATE_COLUMNS,
    SEPARATED,
    aggregate,
    aggregate_run,
    read_curves,
    read_results,
    read_trials,
    t_half_width,
)
from benchmark.reporting.plots import (
    plot_metric_bars,
    plot_optimisation_history,
    plot_validation_curves,
    write_plots,
)
from benchmark.reporting.published import (
    PUBLISHED_TABLES,
    compare_with_published,
    load_published,
)
from benchmark.reporting.tables import render_recall_table, render_table, write_reports

__all__ = [
    "AGGREGATE_COLUMNS",
    "PUBLISHED_TABLES",
    "SEPARATED",
    "aggregate",
    "aggregate_run",
    "compare_with_published",
    "load_published",
    "plot_metric_bars",
    "plot_optimisation_history",
    "plot_validation_curves",
    "read_curves",
    "read_results",
    "read_trials",
    "render_recall_table",
    "render_table",
    "t_half_width",
    "write_plots",
    "write_reports",
]
