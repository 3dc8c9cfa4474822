"""``dml-bench report`` as a user runs it (a subprocess on a run folder on disk): the LaTeX files it writes
and names, the tables it prints, ``--latex-width`` compiled with pdflatex, ``--compare published`` on a
dataset without published numbers, and one summarised line instead of repeated library warnings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark.reporting.tables import write_reports
from tests.reporting.fixtures import write_inshop_run_folder, write_run_folder

REPO = Path(__file__).resolve().parents[2]
PDFLATEX = shutil.which("pdflatex")


def _report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "run_benchmark.py"), "report", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)


def test_latex_format_writes_names_and_prints_every_table(tmp_path):
    run = write_inshop_run_folder(tmp_path / "run")
    proc = _report(str(run), "--format", "latex", "--compare", "published", "--no-plots")
    assert proc.returncode == 0, proc.stderr
    tables = run / "tables"
    names = ["inshop.tex", "inshop_recall.tex", "inshop_other.tex"]
    # every file written, named on one line for the format
    assert f"latex: {', '.join(str(tables / n) for n in names)}" in proc.stdout.splitlines()
    assert not list(tables.glob("*.md")) and not list(tables.glob("*.txt"))
    # --print defaults to the first --format: every table printed as LaTeX, exactly as written
    assert "| Method" not in proc.stdout
    for name in names:
        text = (tables / name).read_text(encoding="utf-8")
        assert f"% {tables / name}\n{text}" in proc.stdout
    assert proc.stdout.count("\\begin{table}[t]") == 3
    assert "Recall@K (\\%) on In-shop Clothes" in proc.stdout
    assert "\\emph{Published} (ours $-$ published)" in proc.stdout  # In-shop has published Recall@K
    assert "note: no published numbers" not in proc.stdout


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex not installed (Debian: apt-get install --no-install-recommends "
                                            "texlive-latex-base texlive-latex-recommended)")
def test_every_latex_table_fits_a_column_and_a_page_of_a_two_column_paper(tmp_path):
    run = write_inshop_run_folder(tmp_path / "run")

    def overfull(width: str) -> dict[str, list[str]]:
        out = {}
        for path in write_reports(run, formats=("latex",), compare=True, latex_width=width):
            if path.suffix != ".tex":
                continue
            doc = tmp_path / f"{width}_{path.stem}.tex"
            doc.write_text("\\documentclass[twocolumn]{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
                           f"\\begin{{document}}\n\\input{{{path}}}\nText beside the table.\n\\end{{document}}\n",
                           encoding="utf-8")
            proc = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                                  capture_output=True, text=True, timeout=120, check=False)
            log = doc.with_suffix(".log").read_text(encoding="utf-8", errors="replace")
            assert proc.returncode == 0, log[-2000:]
            out[path.name] = re.findall(r"Overfull \\hbox \(([\d.]+pt) too wide\)", log)
        return out

    assert sorted(overfull("column")) == ["inshop.tex", "inshop_other.tex", "inshop_recall.tex"]
    assert overfull("column") == {"inshop.tex": [], "inshop_recall.tex": [], "inshop_other.tex": []}
    assert overfull("page") == {"inshop.tex": [], "inshop_recall.tex": [], "inshop_other.tex": []}
    # the natural width does not fit, which is what the option is for (and what this test would see)
    assert all(overfull("none").values())


def test_compare_published_without_published_numbers_and_identical_repeats(tmp_path):
    """A dataset with no published table: one line saying so and which datasets have one. A method whose
    repeats are identical: no library warning per test (scipy warned of precision loss ten times on the
    smoke run), one line in the findings."""
    run = write_run_folder(tmp_path / "run", datasets=("builtin",))
    results = pd.read_csv(run / "results.csv")
    triplet = results["method"] == "triplet"
    results.loc[triplet, "value"] = results.loc[triplet, "embedding"].map({"concatenated": 0.26, "fold0": 0.24})
    results.to_csv(run / "results.csv", index=False)
    proc = _report(str(run), "--compare", "published", "--no-plots", "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    notes = [ln for ln in proc.stdout.splitlines() if "published" in ln and ln.startswith("note:")]
    assert notes == ["note: no published numbers for builtin: published tables exist for cub200, cars196, sop, "
                     "inshop (results/published/)"]
    assert "*Published*" not in proc.stdout
    assert "Precision loss" not in proc.stderr and "RuntimeWarning" not in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) <= 1
    identical = [ln for ln in proc.stdout.splitlines() if "repeats are all identical" in ln]
    assert len(identical) == 1 and re.search(r"- \d+ of \d+ tested pairs have a method", identical[0])


def test_jobs_2_draws_the_plots_in_a_second_process_with_the_same_report(tmp_path):
    """--jobs 2 (what run --workers 2 reports with): the same files, the same page, the same PNG plots, the
    same terminal output as one process; --jobs 0 is refused in one line before anything is written."""
    runs = {jobs: write_run_folder(tmp_path / jobs / "run", datasets=("cub200", "cars196")) for jobs in ("1", "2")}
    procs = {jobs: _report(str(run), "--jobs", jobs) for jobs, run in runs.items()}
    for proc in procs.values():
        assert proc.returncode == 0, proc.stderr
    assert procs["1"].stdout.replace(str(runs["1"]), "RUN") == procs["2"].stdout.replace(str(runs["2"]), "RUN")
    files = {jobs: sorted(p.relative_to(run) for p in run.rglob("*") if p.is_file()) for jobs, run in runs.items()}
    assert files["1"] == files["2"] and any(p.parts[0] == "plots" for p in files["1"])
    for rel in files["1"]:
        if rel.suffix in (".png", ".html", ".csv", ".md", ".tex"):
            assert (runs["1"] / rel).read_bytes() == (runs["2"] / rel).read_bytes(), rel
    bad = write_run_folder(tmp_path / "bad" / "run")
    before = sorted(p for p in bad.rglob("*"))
    proc = _report(str(bad), "--jobs", "0")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: --jobs 0: expected a number of processes, 1 or more"]
    assert sorted(p for p in bad.rglob("*")) == before
