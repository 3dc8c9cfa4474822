"""The run folder's plots drawn in a second process while the first writes the tables and statistics.

``dml-bench run --workers N`` (N > 1) and ``dml-bench report --jobs N`` may use more than one core for the
report: the plots (``write_plots``: matplotlib, PNG and PDF) and the statistics (``analyse_run``) are
independent and each about half of the report's time. The child process is spawned (no fork of a process
that holds torch's thread pools), draws the plots, and hands back the paths and the warnings it caught,
which the parent re-issues, so that the report's warning summary counts them as before.
"""

from __future__ import annotations

import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path


def _draw(run_dir: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    """``write_plots(run_dir)`` with its warnings recorded: (paths, [(module, category name, message)])."""
    from benchmark.reporting.plots import write_plots

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for hidden in (DeprecationWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=hidden)
        paths = write_plots(run_dir)
    return [str(p) for p in paths], [(w.category.__module__, w.category.__name__, str(w.message)) for w in caught]


def _category(module: str, name: str) -> type[Warning]:
    found = getattr(__import__(module, fromlist=[name]), name, None) if module else None
    return found if isinstance(found, type) and issubclass(found, Warning) else UserWarning


class PlotsInBackground:
    """``start()`` the plots in a child process; ``result()`` waits for them and returns their paths."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
        self.future: Future = self.pool.submit(_draw, str(run_dir))

    def result(self) -> list[Path]:
        try:
            paths, caught = self.future.result()
        finally:
            self.pool.shutdown()
        for module, name, message in caught:
            warnings.warn(message, _category(module, name), stacklevel=2)
        return [Path(p) for p in paths]

    def cancel(self) -> None:
        self.future.cancel()
        self.pool.shutdown(cancel_futures=True)


class PlotsHere:
    """The same interface, the plots drawn in this process when ``result()`` is called."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def result(self) -> list[Path]:
        from benchmark.reporting.plots import write_plots

        return write_plots(self.run_dir)

    def cancel(self) -> None:
        pass


def plots_drawer(run_dir: Path, jobs: int) -> PlotsHere | PlotsInBackground:
    """With ``jobs`` > 1 the plots start now in a second process; else they are drawn at ``result()``."""
    return PlotsInBackground(run_dir) if jobs > 1 else PlotsHere(run_dir)
