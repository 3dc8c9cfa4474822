"""report.html: self-contained, from the CSVs only, and what a real headless browser shows."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib import image

from benchmark.cli import main
from benchmark.reporting.html_report import render_html, write_html_report
from tests.reporting.fixtures import write_run_folder

#: Debian's browser (apt package "chromium").
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1200, 2000


def _check_self_contained(page: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)
    assert "<link" not in page and "<script" not in page


def test_page_from_a_new_run_folder(tmp_path):
    run = write_run_folder(tmp_path / "run")
    page = render_html(run)
    _check_self_contained(page)
    for text in ("Contrastive", "Triplet", "NT-Xent", "Pretrained", "Findings",
                 "not significantly worse: Triplet", "Welch t-test", "Holm", "α = 0.05",
                 "Search diagnostics", "temperature=50 (high end", "Cost", "Ranks across datasets"):
        assert text in page, text
    assert page.count("data:image/png;base64,") >= 4  # metrics, CD, optimisation, validation
    assert "<b>31.00 ± 1.30</b> †" in page  # contrastive: best, and in its group


def test_page_from_an_old_run_folder(tmp_path):
    run = write_run_folder(tmp_path / "old", old=True)
    path = write_html_report(run)
    page = path.read_text(encoding="utf-8")
    _check_self_contained(page)
    assert "trials.csv not recorded" in page and "cost.csv not recorded" in page
    assert "Contrastive" in page


def test_report_command_on_old_and_new_folders(tmp_path, capsys):
    old = write_run_folder(tmp_path / "old", old=True)
    assert main(["report", str(old)]) == 0
    out = capsys.readouterr().out
    assert "Findings" in out and "not significantly worse: Triplet" in out
    assert "cost.csv not recorded" in out
    for name in ("report.html", "tables/cub200_pairwise.csv", "tables/ranks.csv",
                 "tables/friedman.csv", "plots/cd_concatenated_map_at_r.png"):
        assert (old / name).is_file(), name
    new = write_run_folder(tmp_path / "new", datasets=("cub200", "cars196"))
    assert main(["report", str(new), "--no-plots"]) == 0
    assert not (new / "plots").exists()
    for name in ("report.html", "tables/search_diagnostics.csv", "tables/cost_summary.csv",
                 "tables/cars196_pairwise.csv"):
        assert (new / name).is_file(), name
    assert "Friedman chi2" in capsys.readouterr().out


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian: apt-get install chromium)")
def test_page_in_headless_chromium(tmp_path):
    run = write_run_folder(tmp_path / "run")
    path = write_html_report(run)
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
           f"--window-size={WIDTH},{HEIGHT}", path.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    pixels = image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    dark = pixels.mean(axis=2) < 0.5
    assert pixels.std() > 0.05  # not a blank page
    assert 0.005 < dark.mean() < 0.5  # text and figures, on a light background
    top = dark[:300]
    assert top.any(axis=1).sum() > 20  # the heading and the legend are drawn at the top
    colourful = np.ptp(pixels, axis=2) > 0.3  # the embedded figures' colours (blue/orange bars)
    assert colourful.mean() > 0.001


def test_stale_figures_in_plots_are_not_embedded(tmp_path):
    run = write_run_folder(tmp_path / "run")
    plots = run / "plots"
    plots.mkdir()
    (plots / "cd_separated_roc_auc.png").write_bytes(b"\x89PNG stale")
    (plots / "sop_optimisation.png").write_bytes(b"\x89PNG stale")
    (plots / "cd_concatenated_map_at_r.png").write_bytes(b"\x89PNG fresh")
    page = render_html(run, plot_dir=plots)
    assert 'alt="cd_concatenated_map_at_r"' in page
    assert "cd_separated_roc_auc" not in page and "sop_optimisation" not in page
