"""report.html: self-contained, from the CSVs only, and what a real headless browser shows."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from matplotlib import image
from scipy import stats

from benchmark.cli import main
from benchmark.reporting.html_report import render_html, write_html_report
from tests.reporting.fixtures import write_inshop_run_folder, write_run_folder

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


def _section(page: str, anchor: str) -> str:
    """The page from the heading with id ``anchor`` to the next heading of a section."""
    start = page.index(f"id='{anchor}'")
    ends = [i for i in (page.find("<h3", start + 1), page.find("<h2", start + 1)) if i > 0]
    return page[start:min(ends) if ends else len(page)]


def _rows(section: str) -> dict[str, dict[str, str]]:
    """The first table of ``section`` as {method: {header: cell}}, tags stripped."""
    table = section[section.index("<table>"):section.index("</table>")]
    rows = [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", tr)]
            for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", table)]
    return {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}


def _expected(results: pd.DataFrame, method: str, embedding: str, metric: str) -> str:
    """``mean ± half-width`` in percent, computed here from results.csv (separated: per-repeat fold means)."""
    rows = results[(results["method"] == method) & (results["metric"] == metric)]
    rows = rows[rows["embedding"] == "concatenated"] if embedding == "concatenated" else \
        rows[rows["embedding"].str.startswith("fold")]
    per_repeat = rows.groupby("repeat")["value"].mean().to_numpy()
    half = stats.t.ppf(0.975, len(per_repeat) - 1) * per_repeat.std(ddof=1) / np.sqrt(len(per_repeat))
    return f"{100 * per_repeat.mean():.2f} ± {100 * half:.2f}"


def test_page_holds_the_recall_and_other_metrics_tables_with_the_run_folders_numbers(tmp_path):
    run = write_inshop_run_folder(tmp_path / "run")
    results = pd.read_csv(run / "results.csv")
    page = write_html_report(run).read_text(encoding="utf-8")
    _check_self_contained(page)
    recall = _section(page, "inshop-recall")
    cells = _rows(recall)
    assert list(cells) == ["Pretrained", "MS", "DRO-TopK", "Lifted Structure"]
    for method, display in (("multi_similarity", "MS"), ("lifted_structure", "Lifted Structure")):
        for k in (1, 10, 50):
            for emb, head in (("concatenated", "Concat. (512-d)"), ("separated", "Sep. (128-d)")):
                assert cells[display][f"{head} R@{k}"].removesuffix(" †") == _expected(results, method, emb,
                                                                                        f"recall_at_{k}")
    assert 'alt="inshop Recall@K"' in recall  # the Recall@K bars
    other = _section(page, "inshop-other")
    cells = _rows(other)
    assert cells["MS"]["Sep. (128-d) TAR@FAR=1e-3"].removesuffix(" †") == _expected(
        results, "multi_similarity", "separated", "tar_at_far_1e-03")
    assert cells["MS"]["Concat. (512-d) ROC AUC"].removesuffix(" †") == _expected(
        results, "multi_similarity", "concatenated", "roc_auc")
    # the concatenation has no TAR@FAR: no column of dashes, a note saying why
    assert not any("Concat." in h and "TAR" in h for h in cells["MS"])
    assert ("Not shown (no method has a value): Concatenated (512-dim) TAR@FAR=1e-3 and Concatenated (512-dim) "
            "test FAR (target 1e-3): the threshold") in other
    assert "the concatenation of the fold models has none" in other
    retrieval = _rows(_section(page, "inshop-retrieval"))
    best = _expected(results, "dro_topk", "concatenated", "map_at_r")
    assert retrieval["DRO-TopK"]["Concat. (512-d) MAP@R"] == f"{best} †"


def test_table_of_contents_links_every_section(tmp_path):
    run = write_run_folder(tmp_path / "run", datasets=("cub200", "cars196"))
    page = render_html(run)
    nav = page[page.index("<nav"):page.index("</nav>")]
    links = re.findall(r"href='#([^']+)'", nav)
    assert links[:2] == ["findings", "dataset-cub200"]
    assert {"dataset-cars196", "cub200-retrieval", "cars196-pairs", "ranks", "search", "cost",
            "curves"} <= set(links)
    for anchor in links:  # every link has its target, once
        assert page.count(f"id='{anchor}'") == 1, anchor


def test_one_cd_diagram_shown_the_others_linked(tmp_path):
    run = write_run_folder(tmp_path / "run", datasets=("cub200", "cars196"))
    assert main(["report", str(run), "--format", "markdown"]) == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    shown = re.findall(r'alt="(cd_[^"]+)"', page)
    assert shown == ["cd_concatenated_map_at_r"]  # the headline metric
    linked = re.findall(r"href='(plots/cd_[^']+)'", page)
    assert linked == ["plots/cd_separated_map_at_r.png"]
    assert all((run / link).is_file() for link in linked)


def test_two_methods_get_one_line_instead_of_a_cd_diagram(tmp_path):
    run = write_run_folder(tmp_path / "run", datasets=("cub200", "cars196"))
    results = pd.read_csv(run / "results.csv")
    results[results["method"] != "ntxent"].to_csv(run / "results.csv", index=False)
    assert main(["report", str(run), "--format", "markdown"]) == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    assert 'alt="cd_' not in page and not list((run / "plots").glob("cd_*"))
    ranks = _section(page, "ranks")
    assert ranks.count("No critical-difference diagram: 2 methods ranked (Pretrained is not), and a diagram "
                       "needs at least 3") == 1
