"""Result tables in the papers' layout (Markdown, plain text, LaTeX), rendered from the aggregate.

Rows are methods (display names, in the aggregate's order: Pretrained first); columns are grouped
by embedding, e.g. "Concatenated (512-dim)" and "Separated (128-dim)" for 4 folds of 128 (the
dimensions, metric labels and directions are those the run's manifest gives the aggregate's rows),
each with P@1, RP and MAP@R as ``mean ± half-width`` in percent with two decimals (the half-width of the Student-t 95%
confidence interval over the repeats; a single evaluation, such as Pretrained, has no ``±``).
A Recall@K layout serves query/gallery datasets (In-shop).

Only the aggregated frame (:func:`benchmark.reporting.aggregate.aggregate`) is read; published
numbers, when asked for, form a block of rows below ours, each cell the paper's value and ours minus
it, ``26.70 (−0.17)``. A column no method has a value for (the concatenation's TAR@FAR) is left out,
with a note giving the reason :func:`benchmark.metric_catalog.missing_reason` states. LaTeX tables
fit a column or the page (``LATEX_WIDTHS``): shrunk to ``\\linewidth`` when wider, the embeddings
stacked as row blocks above a number of columns.
The best mean of each column (the lowest for a lower-is-better metric such as a false-accept
rate) is bold (Markdown, LaTeX). A dagger (``†``, LaTeX ``$^\\dagger$``)
marks, in every format, the column's significance group: the best method tested (at least two
repeats) and the methods not significantly worse than it (two-sided Welch t-test over repeats,
Holm-corrected over all pairs of the column, α = 0.05; see
:mod:`~benchmark.reporting.significance`). Methods with a single evaluation are not tested.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from tabulate import tabulate

from benchmark.constants import CONCATENATED, DIVERGED_METRIC, LATEX_WIDTHS, METRICS, RAW_TRUNK
from benchmark.errors import BenchmarkError
from benchmark.io import atomic_write, atomic_write_text
from benchmark.metric_catalog import FRACTION, missing_reason, split_category
from benchmark.reporting.aggregate import (
    SEPARATED,
    aggregate_run,
    aggregate_to_csv_frame,
    metric_labels,
)
from benchmark.reporting.published import compare_with_published, published_datasets
from benchmark.reporting.significance import TEST_LEGEND, significance_group

Fmt = Literal["markdown", "text", "latex"]
#: ``compare`` argument: a comparison frame (from ``compare_with_published``), a published frame
#: (from ``load_published``), a published table or dataset name, True (the dataset's default
#: published table), or None/False (no comparison).
CompareArg = pd.DataFrame | str | bool | None

FORMATS: tuple[str, ...] = ("markdown", "text", "latex")
#: File extension of each format in ``tables/``.
EXTENSIONS = {"markdown": ".md", "text": ".txt", "latex": ".tex"}
#: Datasets' names as the papers print them.
DATASET_DISPLAY = {"cub200": "CUB-200-2011", "cars196": "Cars196",
                   "sop": "Stanford Online Products", "inshop": "In-shop Clothes"}
_GROUP_NAMES = {CONCATENATED: ("Concatenated", "Concat."), SEPARATED: ("Separated", "Sep.")}
_RECALL_RE = re.compile(r"^recall_at_(\d+)$")
_MISSING = {"markdown": "—", "text": "—", "latex": "---"}
#: Per LaTeX width, the most value columns set side by side: a wider table with the same metrics per
#: embedding is stacked instead (one block of rows per embedding).
_MAX_SIDE_BY_SIDE = {"column": 3, "page": 6, "none": 10**6}
#: The significance-group marker per format.
DIVERGED_MARK = {"markdown": " ‡", "text": " ‡", "latex": "$^\\ddagger$"}
DIVERGED_LEGEND = ("‡: training diverged (non-finite loss) in some folds of this method's repeats; those folds "
                   "kept their best checkpoint before it (see trials.csv and the run's last lines).")
RAW_TRUNK_LEGEND = ("Raw trunk: the trunk's pooled output as it is (a features file's features as given), no "
                    "embedder and no training, evaluated once as a whole embedding (its dimension in brackets), "
                    "so it fills the concatenated columns only.")
GROUP_MARK = {"markdown": " †", "text": " †", "latex": "$^\\dagger$"}
#: What n counts in a legend, by the run's ``protocol.pooling`` (the aggregate's ``attrs["pooling"]``).
POOLING_LEGEND = {"repeats": "n repeats",
                  "with_best_trial": "n runs (the best search trial and its retrainings, pooled as the reality "
                                     "check's published report did)"}
GROUP_LEGEND = ("†: the significance group, i.e. the best method with at least two repeats and "
                f"those not significantly worse than it ({TEST_LEGEND}); single evaluations "
                "are not tested.")


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    repl = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
            "^": r"\textasciicircum{}"}
    return "".join(repl.get(ch, ch) for ch in str(text))


@dataclass(frozen=True)
class _Cell:
    mean: float
    half_width: float
    n: int
    values: tuple = ()


def _cells(agg: pd.DataFrame, dataset: str) -> tuple[list[tuple[str, str]],
                                                      dict[tuple[str, str, str], _Cell]]:
    sub = agg[agg["dataset"] == dataset]
    methods = list(dict.fromkeys(zip(sub["method"], sub["display_name"])))
    cells = {(r.method, r.embedding, r.metric): _Cell(float(r.mean), float(r.half_width), int(r.n),
                                                      tuple(r.values))
             for r in sub.itertuples(index=False)}
    return methods, cells


def _comparison(agg: pd.DataFrame, dataset: str,
                compare: CompareArg) -> dict[tuple[str, str, str], pd.Series]:
    if compare is None or compare is False:
        return {}
    sub = agg[agg["dataset"] == dataset]
    if isinstance(compare, pd.DataFrame) and "difference" in compare.columns:
        comp = compare
    else:
        comp = compare_with_published(sub, None if compare is True else compare)
    comp = comp[comp["dataset"] == dataset]
    out: dict[tuple[str, str, str], pd.Series] = {}
    for _, row in comp.iterrows():
        out.setdefault((row["method"], row["embedding"], row["metric"]), row)
    return out


def _signed(x: float, fmt: str) -> str:
    text = f"{abs(x):.2f}"
    if fmt == "latex":
        return f"$-${text}" if x < 0 and text != "0.00" else f"$+${text}"
    return f"\u2212{text}" if x < 0 and text != "0.00" else f"+{text}"


def _value_text(cell: _Cell, fmt: str) -> str:
    mean = f"{100 * cell.mean:.2f}"
    if math.isnan(cell.half_width):
        return mean
    pm = " $\\pm$ " if fmt == "latex" else " ± "
    return f"{mean}{pm}{100 * cell.half_width:.2f}"


def _compare_text(row: pd.Series, fmt: str) -> str:
    decimals = int(row["published_decimals"]) if pd.notna(row["published_decimals"]) else 2
    pub = f"{float(row['published']):.{decimals}f}"
    diff = _signed(float(row["difference"]), fmt)
    return f"{pub} ({diff})"


def _best_and_group(values: dict[str, _Cell], higher: bool) -> tuple[set[str], set[str]]:
    """Methods with the best displayed mean (the highest, or the lowest when not ``higher``), and the
    column's significance group."""
    finite = {m: c for m, c in values.items() if not math.isnan(c.mean)}
    if not finite:
        return set(), set()
    sign = 1.0 if higher else -1.0
    shown = {m: round(100 * c.mean, 2) for m, c in finite.items()}
    target = max(sign * v for v in shown.values())
    best = {m for m, v in shown.items() if sign * v == target}
    _, group = significance_group({m: c.values for m, c in finite.items()}, higher=higher)
    return best, group


def empty_columns(agg: pd.DataFrame, dataset: str,
                  columns: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (embedding, metric) of ``columns`` for which no method of ``dataset`` has a finite mean, among
    the embeddings and metrics the dataset has (one a run does not make is not a column at all)."""
    sub = agg[agg["dataset"] == dataset]
    embeddings, metrics = set(sub["embedding"]), set(sub["metric"])
    present = set(zip(sub.loc[sub["mean"].notna(), "embedding"], sub.loc[sub["mean"].notna(), "metric"]))
    return [c for c in columns if c not in present and c[0] in embeddings and c[1] in metrics]


def empty_columns_note(columns: Sequence[tuple[str, str]], labels: Mapping[str, str],
                       dims: Mapping[str, int]) -> str:
    """One sentence per reason saying which ``columns`` (embedding, metric) are left out and why:
    the metric catalog's reason (:func:`benchmark.metric_catalog.missing_reason`) or, for a column
    the harness should have filled, that ``results.csv`` has no value for it."""
    by_reason: dict[str, list[str]] = {}
    for emb, metric in columns:
        by_reason.setdefault(missing_reason(emb, metric) or "", []).append(
            f"{_group_title(emb, dims)} {labels.get(metric, metric)}")
    sentences = []
    for reason, names in by_reason.items():
        what = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        sentences.append(f"Not shown (no method has a value): {what}: {reason}." if reason else
                         f"Not shown (no method has a value in results.csv): {what}.")
    return " ".join(sentences)


def _render(agg: pd.DataFrame, dataset: str, columns: Sequence[tuple[str, str]], *, fmt: str,
            compare: CompareArg, show_n: bool, notes: bool, caption: str | None, label: str | None,
            what: str, latex_width: str = "column") -> str:
    if fmt not in FORMATS:
        raise BenchmarkError(f"unknown table format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if latex_width not in LATEX_WIDTHS:
        raise BenchmarkError(f"unknown LaTeX width {latex_width!r}; expected one of {', '.join(LATEX_WIDTHS)}")
    if dataset not in set(agg["dataset"]):
        raise BenchmarkError(f"no results for dataset {dataset!r} (datasets: "
                             f"{', '.join(map(str, pd.unique(agg['dataset'])))})")
    sub = agg[agg["dataset"] == dataset]
    dims = dict(zip(sub["embedding"], sub["dim"]))
    labels = metric_labels(sub)
    higher = dict(zip(sub["metric"], sub["higher_is_better"]))
    methods, cells = _cells(agg, dataset)
    methods = [(m, d) for m, d in methods if any((m, e, k) in cells for e, k in columns)]
    if not methods:
        raise BenchmarkError(f"dataset {dataset!r} has none of the requested columns "
                             f"{[f'{e}/{k}' for e, k in columns]}")
    # an embedding or a metric the run does not have is not a column; a column no method has a value for
    # (the concatenation's TAR@FAR, which the separated embedding has) is left out, with a note saying why
    columns = [c for c in columns if c[0] in set(sub["embedding"]) and c[1] in set(sub["metric"])] or list(columns)
    empty = empty_columns(agg, dataset, columns)
    if len(empty) < len(columns):
        columns = [c for c in columns if c not in empty]
    else:
        empty = []
    empty_note = empty_columns_note(empty, labels, dims) if empty else ""
    shown = set(columns)
    comparison = {key: row for key, row in _comparison(agg, dataset, compare).items()
                  if (key[1], key[2]) in shown}

    marks: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    for emb, metric in columns:
        vals = {m: cells[(m, emb, metric)] for m, _ in methods if (m, emb, metric) in cells}
        marks[(emb, metric)] = _best_and_group(vals, bool(higher.get(metric, True)))

    def name_cell(display: str) -> str:
        return (latex_escape(display) if fmt == "latex" else display.replace("|", "\\|")
                if fmt == "markdown" else display)

    diverged = {m for m, _ in methods if any(c.mean > 0 for (cm, _, k), c in cells.items()
                                             if cm == m and k == DIVERGED_METRIC)}
    body: list[list[str]] = []
    for method, display in methods:
        row = [name_cell(display)]
        if method in diverged:
            row[0] += DIVERGED_MARK[fmt]
        for emb, metric in columns:
            cell = cells.get((method, emb, metric))
            if cell is None or math.isnan(cell.mean):
                row.append(_MISSING[fmt])
                continue
            text = _value_text(cell, fmt)
            best, group = marks[(emb, metric)]
            if method in best and fmt != "text":
                text = f"\\textbf{{{text}}}" if fmt == "latex" else f"**{text}**"
            if method in group:
                text += GROUP_MARK[fmt]
            row.append(text)
        if show_n:
            ns = [cells[(method, e, k)].n for e, k in columns if (method, e, k) in cells]
            row.append(str(max(ns)) if ns else _MISSING[fmt])
        body.append(row)
    # the published numbers: a block of rows below ours (the paper's name, its value and our difference)
    published: list[list[str]] = []
    for method, _ in methods:
        rows = [comparison.get((method, e, k)) for e, k in columns]
        if all(r is None for r in rows):
            continue
        first = next(r for r in rows if r is not None)
        published.append([name_cell(str(first["published_method"]))]
                         + [_MISSING[fmt] if r is None else _compare_text(r, fmt) for r in rows]
                         + ([""] if show_n else []))

    groups = list(dict.fromkeys(emb for emb, _ in columns))
    conf = agg.attrs.get("confidence", 0.95)
    conf_text = f"{100 * conf:g}%"
    over_n = POOLING_LEGEND[agg.attrs.get("pooling", "repeats")]
    sources = sorted({str(r["source"]) for r in comparison.values() if str(r["source"])})
    other_dims = sorted({(str(r["embedding"]), int(r["dim"]), int(r["published_dim"])) for r in comparison.values()
                         if pd.notna(r["published_dim"]) and int(r["published_dim"]) != int(r["dim"])})
    # e.g. a 2-fold run's 256-d concatenation beside the papers' 512-d one
    dims_note = ("Not the same embeddings: " + "; ".join(f"{e} ours {d}-dim, published {p}-dim"
                                                          for e, d, p in other_dims) + ".") if other_dims else ""
    lower = sorted({labels.get(k, k) for _, k in columns if not higher.get(k, True)})
    best_note = "Bold: best mean per column" + (f" (the lowest for {', '.join(lower)})" if lower else "") + "."
    name = DATASET_DISPLAY.get(dataset, dataset)

    if fmt == "latex":
        return _latex(body, columns, groups, dims, labels, show_n=show_n, dataset=dataset, name=name,
                      conf_text=conf_text, over_n=over_n, caption=caption, label=label, what=what,
                      published=published, sources=sources, dims_note=dims_note, best_note=best_note,
                      empty_note=empty_note, width=latex_width,
                      raw_trunk=any(m == RAW_TRUNK for m, _ in methods))

    headers = ["Method"] + [f"{_GROUP_NAMES.get(e, (e, e))[1]} {labels.get(k, k)}"
                            if len(groups) > 1 else labels.get(k, k) for e, k in columns]
    if show_n:
        headers.append("n")
    rows = body
    if published:
        title = "*Published*" if fmt == "markdown" else "Published:"
        rows = body + [[title] + [""] * (len(headers) - 1)] + published
    table = tabulate(rows, headers=headers, tablefmt="github" if fmt == "markdown" else "simple",
                     disable_numparse=True,
                     colalign=("left",) + ("right",) * (len(headers) - 1))
    if not notes:
        return table
    lines = [(f"{what} (%) on {name}: mean ± half-width of the {conf_text} Student-t confidence "
             f"interval over {over_n}; a single evaluation (n = 1, e.g. Pretrained) has no ±.")]
    if len(groups) > 1:
        lines.append("; ".join(f"{_GROUP_NAMES.get(e, (e, e))[1]} = "
                               f"{_group_title(e, dims).lower()}" for e in groups) + ".")
    else:
        lines.append(f"Embedding: {_group_title(groups[0], dims).lower()}.")
    if fmt == "markdown":
        lines.append(best_note)
    if any(group for _, group in marks.values()):
        lines.append(GROUP_LEGEND)
    if diverged:
        lines.append(DIVERGED_LEGEND)
    if any(m == RAW_TRUNK for m, _ in methods):
        lines.append(RAW_TRUNK_LEGEND)
    if published:
        lines.append("Published: the value each paper prints and, in brackets, ours minus it in percentage "
                     "points" + (f" (from {', '.join(sources)}; every matched row with its ± in "
                                 f"tables/{dataset}_vs_published.csv)" if sources else "") + "."
                     + (f" {dims_note}" if dims_note else ""))
    if empty_note:
        lines.append(empty_note)
    joiner = "\n\n" if fmt == "markdown" else "\n"
    return table + "\n\n" + joiner.join(lines) + "\n"


def _group_title(emb: str, dims: Mapping[str, int]) -> str:
    title = _GROUP_NAMES.get(emb, (emb, emb))[0]
    return f"{title} ({dims[emb]}-dim)" if emb in dims else title


def _latex(body: list[list[str]], columns: Sequence[tuple[str, str]], groups: list[str],
           dims: Mapping[str, int], labels: Mapping[str, str], *, show_n: bool, dataset: str, name: str, conf_text: str,
           over_n: str = POOLING_LEGEND["repeats"],
           caption: str | None, label: str | None, what: str, published: list[list[str]],
           sources: list[str], dims_note: str = "", best_note: str = "Bold: best mean per column.",
           empty_note: str = "", width: str = "column", raw_trunk: bool = False) -> str:
    ncols = len(columns)
    spec = "l" + "c" * ncols + ("c" if show_n else "")
    conf_tex = conf_text.replace("%", r"\%")
    if caption is None:
        caption = (f"{what} (\\%) on {latex_escape(name)}: mean $\\pm$ half-width of the "
                   f"{conf_tex} Student-$t$ confidence interval over $n${latex_escape(over_n)[1:]} (no $\\pm$ "
                   f"for a single evaluation). {latex_escape(best_note[:-1])}; $^\\dagger$: the "
                   "best method with at least two repeats and those not significantly worse "
                   "than it (two-sided Welch $t$-test over repeats, Holm-corrected over all "
                   "pairs of the column, $\\alpha = 0.05$).")
        if published:
            caption += (" Published: the value each paper prints and, in brackets, ours minus it in "
                        "percentage points" + (f" ({latex_escape(', '.join(sources))})" if sources else "")
                        + "." + (f" {latex_escape(dims_note)}" if dims_note else ""))
        if empty_note:
            caption += " " + latex_escape(empty_note)
        if raw_trunk:
            caption += " " + latex_escape(RAW_TRUNK_LEGEND)
    label = label or f"tab:dml-bench-{re.sub(r'[^A-Za-z0-9-]+', '-', dataset)}"
    env = "table*" if width == "page" else "table"
    needs = "\\usepackage{booktabs}" + ("" if width == "none" else " and \\usepackage{graphicx}")
    lines = [
        f"% dml-bench: {what} on {dataset} (generated; needs {needs}).",
        "% Bold: best mean per column; dagger: not significantly worse than the best (Welch, Holm, 0.05).",
        f"\\begin{{{env}}}[t]",
        "\\centering",
        "\\small",
        f"\\caption{{{caption}}}",
        f"\\label{{{label}}}",
    ]
    if width != "none":  # measured in box 0, shrunk to the line width only when wider
        lines += [f"% report --latex-width {width}: shrunk to \\linewidth when wider (graphicx's \\resizebox).",
                  "\\setbox0=\\hbox{%"]
    metric_sets = [[k for e, k in columns if e == g] for g in groups]
    stacked = (len(groups) > 1 and all(m == metric_sets[0] for m in metric_sets)
               and len(columns) > _MAX_SIDE_BY_SIDE[width])
    if stacked:  # one block of rows per embedding: half as wide
        spec = "l" + "c" * len(metric_sets[0]) + ("c" if show_n else "")
    lines += [f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
    if not stacked and (len(groups) > 1 or groups[0] in _GROUP_NAMES):
        spans: list[tuple[str, int, int]] = []
        col = 2
        for emb in groups:
            width_ = sum(1 for e, _ in columns if e == emb)
            spans.append((emb, col, col + width_ - 1))
            col += width_
        head = " & ".join(f"\\multicolumn{{{b - a + 1}}}{{c}}{{{latex_escape(_group_title(e, dims))}}}"
                          for e, a, b in spans)
        lines.append(" & " + head + (" & " if show_n else "") + " \\\\")
        lines.append(" ".join(f"\\cmidrule(lr){{{a}-{b}}}" for _, a, b in spans))
    shown = metric_sets[0] if stacked else [k for _, k in columns]
    sub = ["Method"] + [latex_escape(labels.get(k, k)) for k in shown] + (["$n$"] if show_n else [])
    lines.append(" & ".join(sub) + " \\\\")
    published_title = f"\\multicolumn{{{len(sub)}}}{{l}}{{\\emph{{Published}} (ours $-$ published)}} \\\\"
    if not stacked:
        lines.append("\\midrule")
        lines.extend(" & ".join(row) + " \\\\" for row in body)
        if published:
            lines += ["\\midrule", published_title]
            lines.extend(" & ".join(row) + " \\\\" for row in published)
    else:
        for g in groups:
            idx = [1 + i for i, (e, _) in enumerate(columns) if e == g] + ([len(columns) + 1] if show_n else [])
            lines += ["\\midrule",
                      f"\\multicolumn{{{len(sub)}}}{{l}}{{\\emph{{{latex_escape(_group_title(g, dims))}}}}} \\\\"]
            lines.extend(" & ".join([row[0]] + [row[i] for i in idx]) + " \\\\" for row in body)
            if published:
                lines.append(published_title)
                lines.extend(" & ".join([row[0]] + [row[i] for i in idx]) + " \\\\" for row in published)
    lines += ["\\bottomrule", "\\end{tabular}"]
    if width != "none":
        lines += ["}%", "\\ifdim\\wd0>\\linewidth\\resizebox{\\linewidth}{!}{\\box0}\\else\\box0\\fi"]
    lines.append(f"\\end{{{env}}}")
    return "\n".join(lines) + "\n"


def render_table(agg: pd.DataFrame, dataset: str, *, fmt: Fmt = "markdown",
                 metrics: Sequence[str] = METRICS,
                 embeddings: Sequence[str] = (CONCATENATED, SEPARATED),
                 compare: CompareArg = None, show_n: bool = True, notes: bool = True,
                 caption: str | None = None, label: str | None = None,
                 latex_width: str = "column", what: str = "Results") -> str:
    """The papers' table of ``dataset``: methods x (embedding group x metric), in percent.

    ``fmt`` is "markdown" (GitHub pipe table, best in bold), "text" (tabulate "simple") or
    "latex" (a booktabs ``table`` ready to ``\\input``: ``\\multicolumn`` group headers with
    ``\\cmidrule``, ``$\\pm$``, best mean per column in bold, the significance group marked
    with a dagger; ``latex_width`` one of :data:`LATEX_WIDTHS`). A column no method has a value
    for is left out, with a note (the caption in LaTeX) saying why. Published numbers form a
    block of rows below ours. Group headers give each embedding's dimension and columns each metric's
    label, as ``agg``'s rows have them from the run's manifest. ``compare`` adds published
    numbers (see ``CompareArg``). ``what`` names the table in its legend or caption. ``show_n`` adds the number
    of repeats; ``notes``
    (Markdown/text) adds the legend below the table. Raises
    :class:`BenchmarkError` for an unknown format or dataset.
    """
    columns = [(e, m) for e in embeddings for m in metrics]
    return _render(agg, dataset, columns, fmt=fmt, compare=compare, show_n=show_n,
                   notes=notes, caption=caption, label=label, what=what, latex_width=latex_width)


def recall_ks(agg: pd.DataFrame, dataset: str) -> list[int]:
    """The K of every ``recall_at_K`` metric of ``dataset`` in ``agg``, sorted."""
    metrics = pd.unique(agg.loc[agg["dataset"] == dataset, "metric"])
    return sorted(int(m.group(1)) for m in (_RECALL_RE.match(str(x)) for x in metrics) if m)


def render_recall_table(agg: pd.DataFrame, dataset: str,
                        ks: Sequence[int] = (1, 10, 20, 30, 40, 50), *, fmt: Fmt = "markdown",
                        embeddings: Sequence[str] = (CONCATENATED, SEPARATED),
                        compare: CompareArg = None, show_n: bool = True, notes: bool = True,
                        caption: str | None = None, label: str | None = None,
                        latex_width: str = "column") -> str:
    """Recall@K table (query/gallery datasets such as In-shop): methods x (embedding x R@K).

    Only the ``ks`` present in ``agg`` for ``dataset`` are shown; none present raises
    :class:`BenchmarkError`. Other arguments as in :func:`render_table`.
    """
    present = set(recall_ks(agg, dataset))
    shown = [k for k in ks if k in present]
    if not shown:
        raise BenchmarkError(f"dataset {dataset!r} has no recall_at_K metric for K in "
                             f"{tuple(ks)} (present: {sorted(present)})")
    columns = [(e, f"recall_at_{k}") for e in embeddings for k in shown]
    if label is None:
        label = f"tab:dml-bench-{re.sub(r'[^A-Za-z0-9-]+', '-', dataset)}-recall"
    return _render(agg, dataset, columns, fmt=fmt, compare=compare, show_n=show_n,
                   notes=notes, caption=caption, label=label, what="Recall@K", latex_width=latex_width)


def other_metrics(agg: pd.DataFrame, dataset: str) -> list[str]:
    """The dataset's fractions (printed in percent) other than the main and Recall@K metrics, e.g. the
    verification metrics; correlations and counts are not percentages and stay out."""
    sub = agg[(agg["dataset"] == dataset) & (agg["unit"] == FRACTION)]
    return [str(m) for m in pd.unique(sub["metric"])
            if m not in METRICS and not _RECALL_RE.match(str(m)) and m != DIVERGED_METRIC
            and split_category(str(m))[1] is None]


def category_metrics(agg: pd.DataFrame, dataset: str, metric: str = "map_at_r") -> list[str]:
    """The per-category names of ``metric`` of ``dataset`` (``map_at_r@bicycle``, ...), in the order of the run."""
    sub = agg[agg["dataset"] == dataset]
    return [str(m) for m in pd.unique(sub["metric"]) if split_category(str(m))[0] == metric
            and split_category(str(m))[1] is not None]


def dataset_comparison(agg: pd.DataFrame, dataset: str, compare: CompareArg) -> pd.DataFrame | None:
    """The matched published rows of ``dataset`` (see ``CompareArg``), or None when there are none.

    ``compare=True`` asks for the dataset's default published table, which a dataset may not have (None).
    """
    if compare is None or compare is False:
        return None
    if isinstance(compare, pd.DataFrame) and "difference" in compare.columns:
        comp = compare[compare["dataset"] == dataset]
    else:
        try:
            comp = compare_with_published(agg[agg["dataset"] == dataset], None if compare is True else compare)
        except BenchmarkError:
            if compare is not True and not isinstance(compare, pd.DataFrame):
                raise
            return None
    return comp if len(comp) else None


def comparison_note(agg: pd.DataFrame, dataset: str) -> str | None:
    """One line for ``--compare published`` when ``dataset`` has no published numbers to show (none
    transcribed, or none for this run's methods), naming what there is; None when there are some."""
    have = published_datasets()
    if dataset not in have:
        return (f"no published numbers for {dataset}: published tables exist for {', '.join(have)} "
                "(results/published/)")
    if dataset_comparison(agg, dataset, True) is None:
        return (f"no published numbers for this run's methods on {dataset} (the published tables name "
                "their methods by display name; see results/published/)")
    return None


def dataset_tables(agg: pd.DataFrame, dataset: str, fmt: str, *, compare: CompareArg = None,
                   latex_width: str = "column") -> list[tuple[str, str]]:
    """Every table of ``dataset`` in ``fmt``, as (file name under ``tables/``, text).

    Markdown and text: one file ``<dataset>.md`` / ``.txt`` with the main table (P@1, RP, MAP@R), the
    Recall@K table when the dataset has ``recall_at_K`` with K > 1, and a table of the other metrics the
    manifest gives as fractions (verification), and MAP@R per category where the dataset has categories (SOP's
    super-classes, a df.csv's ``category``). LaTeX: one ``table`` each, ``<dataset>.tex`` (the main
    table, or the first there is), ``<dataset>_recall.tex``, ``<dataset>_other.tex`` and
    ``<dataset>_categories.tex``. ``compare`` is a
    comparison frame for ``dataset`` (:func:`dataset_comparison`) or any ``CompareArg``.
    """
    sub = agg[agg["dataset"] == dataset]
    ks = recall_ks(agg, dataset)
    others = other_metrics(agg, dataset)
    kwargs = {"fmt": fmt, "compare": compare, "latex_width": latex_width}
    sections: list[tuple[str, str, str]] = []  # (file suffix, title, table)
    if set(METRICS) & set(sub["metric"]):
        sections.append(("", "Retrieval metrics", render_table(agg, dataset, **kwargs)))
    if any(k > 1 for k in ks):
        sections.append(("_recall", "Recall@K", render_recall_table(agg, dataset, ks, **kwargs)))
    if others:
        label = f"tab:dml-bench-{re.sub(r'[^A-Za-z0-9-]+', '-', dataset)}-other"
        sections.append(("_other", "Other metrics",
                         render_table(agg, dataset, metrics=others, label=label, what="Other metrics", **kwargs)))
    per_category = category_metrics(agg, dataset)
    if per_category:
        label = f"tab:dml-bench-{re.sub(r'[^A-Za-z0-9-]+', '-', dataset)}-categories"
        sections.append(("_categories", "MAP@R per category",
                         render_table(agg, dataset, metrics=per_category, label=label, what="MAP@R per category",
                                      embeddings=(CONCATENATED,) if (sub["embedding"] == CONCATENATED).any()
                                      else (SEPARATED,), **kwargs)))
    if not sections:
        return []
    if fmt == "latex":
        return [(f"{dataset}{suffix if i else ''}.tex", body) for i, (suffix, _, body) in enumerate(sections)]
    name = DATASET_DISPLAY.get(dataset, dataset)
    if fmt == "markdown":
        text = f"# {name}\n\n" + "\n".join(f"## {title}\n\n{body}" for _, title, body in sections)
    else:
        text = f"{name}\n{'=' * len(name)}\n\n" + "\n".join(
            f"{title}\n{'-' * len(title)}\n{body}" for _, title, body in sections)
    return [(f"{dataset}{EXTENSIONS[fmt]}", text)]


def write_reports(run_dir: str | os.PathLike, *, formats: Sequence[str] = FORMATS,
                  compare: CompareArg = None, latex_width: str = "column",
                  agg: pd.DataFrame | None = None) -> list[Path]:
    """Aggregate ``run_dir/results.csv`` (or take ``agg``, its :func:`aggregate_run`) and write
    ``run_dir/tables/``; return the paths written.

    Per dataset and format, the files of :func:`dataset_tables`. With ``compare`` (True: each
    dataset's default published table), ``<dataset>_vs_published.csv`` lists the matched rows.
    ``aggregate.csv`` holds the whole aggregate. Writes are atomic.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise BenchmarkError(f"unknown table format(s) {bad}; expected some of {FORMATS}")
    if latex_width not in LATEX_WIDTHS:
        raise BenchmarkError(f"unknown LaTeX width {latex_width!r}; expected one of {', '.join(LATEX_WIDTHS)}")
    run_dir = Path(run_dir)
    if agg is None:
        agg = aggregate_run(run_dir)
    out_dir = run_dir / "tables"
    written = [atomic_write(out_dir / "aggregate.csv",
                            lambda p: aggregate_to_csv_frame(agg).to_csv(p, index=False))]
    for dataset in pd.unique(agg["dataset"]):
        dataset = str(dataset)
        comp = dataset_comparison(agg, dataset, compare)
        if comp is not None:
            written.append(atomic_write(out_dir / f"{dataset}_vs_published.csv",
                                        lambda p, f=comp: f.to_csv(p, index=False)))
        for fmt in formats:
            for name, text in dataset_tables(agg, dataset, fmt, compare=comp, latex_width=latex_width):
                written.append(atomic_write_text(out_dir / name, text))
    return written
