"""Tables: formatted cells, Pretrained without ±, LaTeX bold/underline rules, reports on disk."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from benchmark.errors import BenchmarkError
from benchmark.manifest import manifest_for, write_manifest
from benchmark.reporting.aggregate import t_half_width
from benchmark.reporting.tables import render_recall_table, render_table, write_reports
from tests.reporting.helpers import MANIFEST, fake_results, make_agg, paper_like_agg


def _latex_row(tex: str, name: str) -> list[str]:
    line = next(ln for ln in tex.splitlines() if ln.startswith(name + " &"))
    return [c.strip() for c in line.removesuffix("\\\\").split(" & ")]


def test_markdown_cells_and_header():
    md = render_table(paper_like_agg(), "cub200", fmt="markdown")
    assert "26.53 ± 0.29" in md
    assert "59.73 ± 0.40" in md
    assert "Concat. P@1" in md and "Sep. MAP@R" in md
    pretrained = next(ln for ln in md.splitlines() if ln.startswith("| Pretrained"))
    assert "51.05" in pretrained and "±" not in pretrained
    assert "**68.13 ± 0.31**" in md  # best concatenated P@1 in bold
    assert "concatenated (512-dim)" in md and "separated (128-dim)" in md
    assert "95% Student-t" in md


def test_text_table_and_method_order():
    txt = render_table(paper_like_agg(), "cub200", fmt="text")
    assert "21.18 ± 0.28" in txt
    lines = [ln.split()[0] for ln in txt.splitlines() if ln.split() and ln.split()[0]
             in {"Pretrained", "Contrastive", "MS"}]
    assert lines == ["Pretrained", "Contrastive", "MS"]
    assert "**" not in txt


def test_a_two_fold_run_says_256_dim_and_subset_of_columns():
    two_folds = manifest_for(folds=2, repeats=10, embedding_dim=128, recall_at=[[1]], far=1e-3)
    agg = paper_like_agg(manifest=two_folds)
    tex = render_table(agg, "cub200", fmt="latex", embeddings=("concatenated",), metrics=("map_at_r",))
    assert "Concatenated (256-dim)" in tex and "(512-dim)" not in tex
    assert "Separated" not in tex
    assert _latex_row(tex, "Contrastive")[1] == r"\textbf{26.53 $\pm$ 0.29}"
    md = render_table(agg, "cub200", fmt="markdown")
    assert "concatenated (256-dim)" in md and "separated (128-dim)" in md and "(512-dim)" not in md
    wide = manifest_for(folds=3, repeats=10, embedding_dim=64, recall_at=[[1]], far=None)
    assert "concatenated (192-dim)" in render_table(paper_like_agg(manifest=wide), "cub200")


def test_latex_structure_and_bold_on_best_row():
    tex = render_table(paper_like_agg(), "cub200", fmt="latex", latex_width="page")  # the papers' layout
    assert tex.count(r"\begin{table*}[t]") == 1 and tex.count(r"\end{table*}") == 1
    for token in (r"\toprule", r"\midrule", r"\bottomrule", r"\cmidrule(lr){2-4}",
                  r"\multicolumn{3}{c}{Concatenated (512-dim)}",
                  r"\multicolumn{3}{c}{Separated (128-dim)}", r"\begin{tabular}{lccccccc}"):
        assert token in tex
    contrastive = _latex_row(tex, "Contrastive")
    ms = _latex_row(tex, "MS")
    pretrained = _latex_row(tex, "Pretrained")
    assert all(c.startswith(r"\textbf{") for c in contrastive[1:7])
    assert not any(r"\textbf" in c for c in ms + pretrained)
    assert pretrained[1] == "51.05"
    assert contrastive[3] == r"\textbf{26.53 $\pm$ 0.29}"
    assert "underline" not in tex and "Welch" in tex and "Holm" in tex


def test_latex_widths_column_stacks_the_embeddings_and_none_keeps_the_natural_width():
    column = render_table(paper_like_agg(), "cub200", fmt="latex")  # the default: --latex-width column
    assert r"\begin{table}[t]" in column and "table*" not in column
    assert r"\begin{tabular}{lcccc}" in column  # 3 metrics + n: one block of rows per embedding
    blocks = column.split(r"\multicolumn{5}{l}{\emph{")
    assert [b.split("}")[0] for b in blocks[1:]] == ["Concatenated (512-dim)", "Separated (128-dim)"]
    concat_rows = [ln for ln in blocks[1].splitlines() if ln.startswith("Contrastive &")]
    sep_rows = [ln for ln in blocks[2].splitlines() if ln.startswith("Contrastive &")]
    assert concat_rows == [r"Contrastive & \textbf{68.13 $\pm$ 0.31} & \textbf{37.24 $\pm$ 0.28} & "
                           r"\textbf{26.53 $\pm$ 0.29} & 10 \\"]
    assert sep_rows and r"59.73 $\pm$ 0.40" in sep_rows[0] and "68.13" not in sep_rows[0]
    # shrunk to the line width only when wider than it
    assert r"\ifdim\wd0>\linewidth\resizebox{\linewidth}{!}{\box0}\else\box0\fi" in column
    natural = render_table(paper_like_agg(), "cub200", fmt="latex", latex_width="none")
    assert "resizebox" not in natural and r"\begin{tabular}{lccccccc}" in natural
    with pytest.raises(BenchmarkError, match="LaTeX width 'wide'"):
        render_table(paper_like_agg(), "cub200", fmt="latex", latex_width="wide")


def _agg_with_values(values: dict[str, list[float]], metric: str = "map_at_r"):
    cells = [(m, m.upper() + ("_x" if m == "d" else ""), "concatenated", metric,
              100 * sum(v) / len(v), 100 * t_half_width(v), len(v)) for m, v in values.items()]
    agg = make_agg(cells)
    agg["values"] = [tuple(values[m]) for m in agg["method"]]
    return agg


def test_significance_group_marks():
    values = {"a": [0.70, 0.71, 0.72],   # best
              "b": [0.69, 0.70, 0.73],   # not significantly worse than a: in the group
              "c": [0.50, 0.51, 0.52],   # significantly worse
              "d": [0.715]}              # one evaluation: not tested, never marked
    agg = _agg_with_values(values)
    kwargs = {"metrics": ("map_at_r",), "embeddings": ("concatenated",)}
    tex = render_table(agg, "cub200", fmt="latex", **kwargs)
    assert _latex_row(tex, "A")[1] == r"71.00 $\pm$ 2.48$^\dagger$"  # best tested method
    assert _latex_row(tex, "B")[1].endswith(r"$^\dagger$")
    assert "dagger" not in _latex_row(tex, "C")[1]
    assert _latex_row(tex, r"D\_x")[1] == r"\textbf{71.50}"  # best mean, but untested
    assert "underline" not in tex
    md = render_table(agg, "cub200", fmt="markdown", **kwargs)
    assert "**71.50**" in md and "**71.50** †" not in md
    assert "| 71.00 ± 2.48 † |" in md and "|   51.00 ± 2.48 |" in md
    assert "Welch t-test" in md and "Holm" in md and "α = 0.05" in md
    txt = render_table(agg, "cub200", fmt="text", **kwargs)
    assert "71.00 ± 2.48 †" in txt and "**" not in txt
    # lower is better (a false-accept rate, so says the manifest): the best and the group are the minimum's
    low = _agg_with_values({k: v for k, v in values.items() if k != "d"}, metric="far_at_threshold")
    md = render_table(low, "cub200", metrics=("far_at_threshold",), embeddings=("concatenated",))
    assert "**51.00 ± 2.48** †" in md and "71.00 ± 2.48 †" not in md and "**71.00" not in md
    assert "test FAR (target 1e-3)" in md and "far_at_threshold" not in md


def test_no_values_no_marks():
    cells = [("a", "A", "concatenated", "map_at_r", 70.0, 1.0, 10),
             ("b", "B", "concatenated", "map_at_r", 68.5, 0.6, 10)]
    md = render_table(make_agg(cells), "cub200", metrics=("map_at_r",),
                      embeddings=("concatenated",))
    assert "†" not in md


def test_ties_are_all_bold():
    cells = [("a", "A", "separated", "r_precision", 50.001, 0.1, 3),
             ("b", "B", "separated", "r_precision", 49.999, 0.1, 3)]
    tex = render_table(make_agg(cells), "cub200", fmt="latex", metrics=("r_precision",),
                       embeddings=("separated",))
    assert _latex_row(tex, "A")[1].startswith(r"\textbf{50.00")
    assert _latex_row(tex, "B")[1].startswith(r"\textbf{50.00")


def test_latex_escapes_specials():
    cells = [("x", "Mine_v2 & 100%", "concatenated", "map_at_r", 10.0, 1.0, 3)]
    tex = render_table(make_agg(cells), "cub200", fmt="latex", metrics=("map_at_r",),
                       embeddings=("concatenated",))
    assert r"Mine\_v2 \& 100\%" in tex


def test_missing_cell_and_errors():
    cells = [("a", "A", "concatenated", "map_at_r", 70.0, 1.0, 10),
             ("b", "B", "concatenated", "precision_at_1", 60.0, 1.0, 10)]
    md = render_table(make_agg(cells), "cub200", metrics=("map_at_r", "precision_at_1"),
                      embeddings=("concatenated",))
    assert "—" in md
    with pytest.raises(BenchmarkError, match="format"):
        render_table(make_agg(cells), "cub200", fmt="html")  # type: ignore[arg-type]
    with pytest.raises(BenchmarkError, match="sop"):
        render_table(make_agg(cells), "sop")


def _md_rows(md: str) -> list[list[str]]:
    return [[c.strip() for c in ln.split("|")[1:-1]] for ln in md.splitlines() if ln.startswith("| ")]


def test_compare_published_is_a_block_of_rows_below_ours():
    agg = paper_like_agg()
    agg.loc[(agg["method"] == "contrastive") & (agg["embedding"] == "concatenated")
            & (agg["metric"] == "map_at_r"), "mean"] = 0.2640
    md = render_table(agg, "cub200", fmt="markdown", compare="cub200")
    rows = _md_rows(md)
    header, names = rows[0], [r[0] for r in rows]
    assert names == ["Method", "Pretrained", "Contrastive", "MS", "*Published*", "Pretrained", "Contrastive",
                     "MS"]
    ours, published = dict(zip(header, rows[2])), dict(zip(header, rows[6]))
    assert ours["Concat. MAP@R"] == "**26.40 ± 0.29**"  # our cell keeps its width: no published text in it
    assert published["Concat. MAP@R"] == "26.53 (−0.13)"  # the paper's value and ours minus it
    assert dict(zip(header, rows[7]))["Concat. MAP@R"] == "24.70 (+0.00)"
    assert max(len(c) for r in rows for c in r[1:]) <= len("**68.13 ± 0.31** †")
    assert "dcml_icml2022_cub200" in md and "cub200_vs_published.csv" in md
    txt = render_table(agg, "cub200", fmt="text", compare="cub200")
    assert "Published:" in txt and "26.53 (−0.13)" in txt and "(pub." not in txt
    tex = render_table(agg, "cub200", fmt="latex", compare=True, latex_width="page")
    assert r"\multicolumn{8}{l}{\emph{Published} (ours $-$ published)} \\" in tex
    assert r"26.53 ($-$0.13)" in tex


def test_recall_table():
    ks = (1, 10, 20, 30, 40, 50)
    cells = [(m, d, e, f"recall_at_{k}", 80.0 + k / 10 + (2 if m == "ms" else 0), 0.2, 5)
             for m, d in (("triplet", "Triplet"), ("ms", "MS"))
             for e in ("concatenated", "separated") for k in ks]
    agg = make_agg(cells, dataset="inshop")
    md = render_recall_table(agg, "inshop", fmt="markdown")
    assert "Concat. R@50" in md and "87.00 ± 0.20" in md
    txt = render_recall_table(agg, "inshop", (1, 10), fmt="text", compare=True,
                              embeddings=("concatenated",))
    assert "R@20" not in txt
    assert "82.10 ± 0.20" in txt and "89.7 (−7.60)" in txt
    tex = render_recall_table(agg, "inshop", fmt="latex", latex_width="none")
    assert r"\multicolumn{6}{c}{Concatenated (512-dim)}" in tex
    assert _latex_row(tex, "MS")[1] == r"\textbf{82.10 $\pm$ 0.20}"
    with pytest.raises(BenchmarkError, match="recall_at"):
        render_recall_table(agg, "inshop", (5,))


def test_write_reports(tmp_path):
    fake_results().to_csv(tmp_path / "results.csv", index=False)
    write_manifest(tmp_path, MANIFEST)
    paths = write_reports(tmp_path, compare=True)
    names = sorted(p.name for p in paths)
    assert names == ["aggregate.csv", "cub200.md", "cub200.tex", "cub200.txt",
                     "cub200_vs_published.csv"]
    md = (tmp_path / "tables" / "cub200.md").read_text(encoding="utf-8")
    assert md.startswith("# CUB-200-2011")
    assert "*Published*" in md and "51.05 (" in md
    assert not [p for p in (tmp_path / "tables").iterdir() if p.name.startswith(".")]
    assert write_reports(tmp_path, formats=("latex",))[1].suffix == ".tex"
    with pytest.raises(BenchmarkError):
        write_reports(tmp_path, formats=("html",))


def testother_metrics_table_prints_labels_and_bolds_the_lowest_false_accept_rate(tmp_path):
    """The verification metrics of a 2-fold run: labels, not raw keys; a FAR's best is the minimum."""
    import pandas as pd

    from benchmark.constants import RESULT_COLUMNS

    rows = []
    for method, display, tar, far in (("a", "A", 0.60, 0.0030), ("b", "B", 0.70, 0.0010)):
        for r in range(3):
            for emb in ("fold0", "fold1"):
                rows += [(method, display, "cub200", r, emb, "precision_at_1", 0.5 + 0.01 * r),
                         (method, display, "cub200", r, emb, "tar_at_far_1e-03", tar + 0.01 * r),
                         (method, display, "cub200", r, emb, "far_at_threshold", far + 0.0001 * r),
                         (method, display, "cub200", r, emb, "kappa_p1_spearman", 0.2 + 0.01 * r)]
            rows.append((method, display, "cub200", r, "concatenated", "precision_at_1", 0.55))
    pd.DataFrame(rows, columns=list(RESULT_COLUMNS)).to_csv(tmp_path / "results.csv", index=False)
    write_manifest(tmp_path, manifest_for(folds=2, repeats=3, embedding_dim=128, recall_at=[[1]], far=1e-3))
    write_reports(tmp_path, formats=("markdown",))
    md = (tmp_path / "tables" / "cub200.md").read_text(encoding="utf-8")
    other = md.split("## Other metrics", 1)[1]
    assert "TAR@FAR=1e-3" in other and "test FAR (target 1e-3)" in other
    assert "tar_at_far" not in md and "far_at_threshold" not in md
    assert "Spearman" not in md  # a correlation is not a percentage: not in these tables
    lines = [[c.strip() for c in line.split("|")[1:-1]] for line in other.splitlines() if line.startswith("| ")]
    header, body = lines[0], {cells[0]: dict(zip(lines[0], cells)) for cells in lines[1:]}
    # the concatenation has no TAR@FAR and no test FAR (no validation classes of its own to set the threshold
    # on): its two empty columns are left out, and the note says why; only the separated columns remain
    assert header == ["Method", "TAR@FAR=1e-3", "test FAR (target 1e-3)", "n"]
    assert ("Not shown (no method has a value): Concatenated (256-dim) TAR@FAR=1e-3 and Concatenated (256-dim) "
            "test FAR (target 1e-3): the threshold for the target FAR is chosen on a fold model's own validation "
            "classes, and the concatenation of the fold models has none") in other
    assert "—" not in other
    # B has the highest TAR and the lowest FAR: both bold; A's higher FAR is not
    assert body["B"]["TAR@FAR=1e-3"].startswith("**71.00")
    assert body["B"]["test FAR (target 1e-3)"].startswith("**0.11")
    assert "**" not in body["A"]["test FAR (target 1e-3)"]
    assert "Bold: best mean per column (the lowest for test FAR (target 1e-3))." in other
    assert "separated (128-dim)" in md and "concatenated (256-dim)" in md


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles(tmp_path):
    agg = paper_like_agg()
    body = render_table(agg, "cub200", fmt="latex", compare="cub200")
    doc = ("\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
           "\\begin{document}\n" + body + "\\end{document}\n")
    (tmp_path / "t.tex").write_text(doc, encoding="utf-8")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "t.pdf").stat().st_size > 0
    assert not re.search(r"^! ", proc.stdout, flags=re.MULTILINE)


def test_a_method_whose_repeats_diverged_is_marked_and_explained():
    import pandas as pd

    from benchmark.constants import DIVERGED_METRIC, RESULT_COLUMNS
    from benchmark.reporting import aggregate
    from benchmark.reporting.tables import DIVERGED_LEGEND, other_metrics
    from tests.reporting.helpers import fake_results

    df = fake_results()
    diverged = pd.DataFrame([("triplet", "Triplet", "cub200", 1, "concatenated", DIVERGED_METRIC, 2.0)],
                            columns=list(RESULT_COLUMNS))
    agg = aggregate(pd.concat([df, diverged], ignore_index=True), MANIFEST)
    text = render_table(agg, "cub200", fmt="markdown", metrics=("precision_at_1",))
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "Triplet ‡" in rows and "Contrastive" in rows and "Contrastive ‡" not in rows
    assert DIVERGED_LEGEND in text
    assert DIVERGED_METRIC not in other_metrics(agg, "cub200")
    clean = render_table(aggregate(df, MANIFEST), "cub200", fmt="markdown", metrics=("precision_at_1",))
    assert "‡" not in clean


@pytest.mark.parametrize("pooling, phrase, tex", [
    ("repeats", "interval over n repeats;", "interval over $n$ repeats (no"),
    ("with_best_trial", "interval over n runs (the best search trial and its retrainings, pooled as the reality "
                        "check's published report did);", "interval over $n$ runs (the best search trial"),
])
def test_the_legend_says_what_n_pools_as_the_manifest_records_it(pooling, phrase, tex):
    from benchmark.reporting.aggregate import aggregate

    m = manifest_for(folds=4, repeats=3, embedding_dim=128, recall_at=[[1]], far=None, pooling=pooling)
    agg = aggregate(fake_results(), m)
    assert phrase in render_table(agg, "cub200", metrics=("precision_at_1",))
    assert tex in render_table(agg, "cub200", fmt="latex", metrics=("precision_at_1",))
