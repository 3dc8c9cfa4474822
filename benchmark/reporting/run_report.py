"""The statistical part of ``dml-bench report RUN_DIR``, in one call.

:func:`write_run_report` analyses the run folder's CSV files (:mod:`findings`), writes the
pairwise, rank, diagnostic and cost tables under ``tables/``, the critical-difference diagrams
under ``plots/`` (with ``plots``), and ``report.html``; it returns the paths written and the
summary lines the command prints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from benchmark.reporting.cd_diagram import write_cd_diagrams
from benchmark.reporting.findings import analyse_run, summary_lines, write_findings
from benchmark.reporting.html_report import write_html_report


def write_run_report(run_dir: str | os.PathLike, *, plots: bool = True,
                     plots_ready: Optional[Callable[[], list[Path]]] = None,
                     agg: Optional[pd.DataFrame] = None) -> tuple[list[Path], list[str]]:
    """Write the statistics, CD diagrams (with ``plots``) and ``report.html`` of ``run_dir`` (``agg``: its
    ``aggregate_run``, when the caller has it already).

    ``plots_ready()``, when given, is called before the page is written (which shows the plots): it draws
    the other plots, or waits for the process drawing them, and returns their paths (counted as written).
    """
    run_dir = Path(run_dir)
    analysis = analyse_run(run_dir, agg=agg)
    written = write_findings(run_dir, analysis)
    if plots:
        written += write_cd_diagrams(analysis.agg, run_dir / "plots")
    if plots_ready is not None:
        written += plots_ready()
    written.append(write_html_report(run_dir, analysis,
                                     plot_dir=run_dir / "plots" if plots else None))
    return written, summary_lines(analysis)
