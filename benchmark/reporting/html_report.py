"""``report.html``: one self-contained page per run (tables, figures, diagnostics, warnings).

A table of contents links its sections: findings; per dataset the retrieval (P@1, RP, MAP@R),
Recall@K and other-metrics tables with their bars and the best method against each other one;
ranks across datasets with the headline critical-difference diagram (concatenated MAP@R; the
others linked, or one line where fewer than three methods are ranked); search diagnostics with
the optimisation histories; cost; validation curves.

The page is rendered from the run's CSV files only, through :class:`~benchmark.reporting.findings.RunAnalysis`;
figures are PNGs embedded as base64 data URIs and the style sheet is inline, so the page needs no
network and no other file. Figures are taken from ``plots/`` when the report just wrote them,
otherwise drawn into a temporary folder.
"""

from __future__ import annotations

import base64
import html
import math
import os
import tempfile
from pathlib import Path

import pandas as pd

from benchmark.constants import BASELINES, CONCATENATED, METRICS
from benchmark.io import atomic_write_text
from benchmark.reporting.aggregate import SEPARATED, metric_labels, read_curves, read_trials
from benchmark.reporting.cd_diagram import HEADLINE, MIN_CD_METHODS, cd_diagram_stems, cd_stem, write_cd_diagrams
from benchmark.reporting.findings import TARGET_DIFFERENCE, RunAnalysis, analyse_run, summary_lines
from benchmark.metric_catalog import recall_key
from benchmark.reporting.plots import (
    safe_stem,
    plot_metric_bars,
    plot_optimisation_history,
    plot_validation_curves,
)
from benchmark.reporting.power import POWER
from benchmark.reporting.significance import ALPHA, TEST_LEGEND, oriented
from benchmark.reporting.tables import (
    DATASET_DISPLAY,
    POOLING_LEGEND,
    empty_columns,
    empty_columns_note,
    other_metrics,
    recall_ks,
)

_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1150px}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ccd;padding-bottom:4px;margin-top:1.6em}
table{border-collapse:collapse;margin:8px 0 16px;font-size:.85em}
th,td{border:1px solid #ccd;padding:3px 7px;text-align:right}th{background:#eef}
td:first-child,th:first-child{text-align:left}
tr.group td{background:#eaf6ea}.warn{color:#a40}.note{color:#555;font-size:.9em}
ul.findings li{margin:2px 0}img{max-width:100%;border:1px solid #eee;margin:6px 0}
.legend{font-size:.85em;color:#444}
nav.toc{background:#f6f6fa;border:1px solid #dde;padding:6px 14px;font-size:.9em;display:inline-block}
nav.toc ul{margin:2px 0;padding-left:18px}
"""


def _esc(x: object) -> str:
    return html.escape(str(x))


def _pct(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def _num(x: float, fmt: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "&gt; 10000"
    return format(x, fmt)


def _recorded(x: float, fmt: str = ",.0f") -> str:
    return "not recorded" if pd.isna(x) else format(x, fmt)


def _table(headers: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(
        f"<tr{f' class={chr(34)}{classes[i]}{chr(34)}' if classes and classes[i] else ''}>"
        + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for i, row in enumerate(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _results_table(a: RunAnalysis, dataset: str, metrics: list[str]) -> str:
    """The table of ``metrics`` on ``dataset`` (both embeddings); a column no method has a value for is
    left out with a note saying why (as in the Markdown, text and LaTeX tables)."""
    sub = a.agg[a.agg["dataset"] == dataset]
    labels = metric_labels(sub)
    dims = dict(zip(sub["embedding"], sub["dim"]))
    candidates = [(e, m) for e in (CONCATENATED, SEPARATED) for m in metrics
                  if e in set(sub["embedding"])]
    empty = empty_columns(a.agg, dataset, candidates)
    columns = [c for c in candidates if c not in empty]
    groups = {(r.embedding, r.metric): set(r.group)
              for r in a.groups[a.groups["dataset"] == dataset].itertuples(index=False)}
    best: dict[tuple[str, str], float] = {}
    for emb, metric in columns:
        column = sub[(sub["embedding"] == emb) & (sub["metric"] == metric)]
        means = column["mean"].dropna()
        if len(means):
            best[(emb, metric)] = means.max() if column["higher_is_better"].iloc[0] else means.min()
    headers = ["Method"] + [f"{'Concat.' if e == CONCATENATED else 'Sep.'} ({dims[e]}-d) {_esc(labels[m])}"
                            for e, m in columns] + ["n"]
    rows = []
    for method, display in dict.fromkeys(zip(sub["method"], sub["display_name"])):
        if not ((sub["method"] == method) & sub["metric"].isin(metrics)).any():
            continue
        row = [_esc(display)]
        ns = []
        for emb, metric in columns:
            cell = sub[(sub["method"] == method) & (sub["embedding"] == emb)
                       & (sub["metric"] == metric)]
            if cell.empty or pd.isna(cell["mean"].iloc[0]):
                row.append("—")
                continue
            mean, hw, n = cell["mean"].iloc[0], cell["half_width"].iloc[0], int(cell["n"].iloc[0])
            ns.append(n)
            text = _pct(mean) + ("" if pd.isna(hw) else f" ± {_pct(hw)}")
            if round(100 * mean, 2) == round(100 * best.get((emb, metric), math.nan), 2):
                text = f"<b>{text}</b>"
            if method in groups.get((emb, metric), set()):
                text += " †"
            row.append(text)
        row.append(str(max(ns)) if ns else "—")
        rows.append(row)
    note = f"<p class='note'>{_esc(empty_columns_note(empty, labels, dims))}</p>" if empty else ""
    return _table(headers, rows) + note


def _pairwise_table(a: RunAnalysis, dataset: str, emb: str, metric: str) -> str:
    d = a.display
    sub = a.pairwise[(a.pairwise["dataset"] == dataset) & (a.pairwise["embedding"] == emb)
                     & (a.pairwise["metric"] == metric)]
    best = a.groups[(a.groups["dataset"] == dataset) & (a.groups["embedding"] == emb)
                    & (a.groups["metric"] == metric)]["best"]
    if best.empty or best.iloc[0] is None:
        return "<p class='note'>No method has two repeats: nothing tested.</p>"
    sub = oriented(sub, best.iloc[0])
    rows, classes = [], []
    for r in sub.itertuples(index=False):
        rows.append([
            _esc(d.get(r.method_a, r.method_a)), _esc(d.get(r.method_b, r.method_b)),
            f"{r.n_a} / {r.n_b}", _pct(r.difference),
            "n/a" if pd.isna(r.difference_low) else f"[{_pct(r.difference_low)}, {_pct(r.difference_high)}]",
            "n/a" if pd.isna(r.hedges_g) else f"{r.hedges_g:.2f} [{r.hedges_g_low:.2f}, {r.hedges_g_high:.2f}]",
            _num(r.p_value), _num(r.p_holm),
            "n/a" if pd.isna(r.significant) else ("yes" if r.significant else "no"),
            _num(r.p_a_beats_b, ".2f"), _pct(r.min_detectable_difference),
            _num(r.repeats_needed, ".0f")])
        classes.append("" if pd.isna(r.significant) or r.significant else "group")
    headers = ["A", "B", "n", "A − B (pp)", "95% CI (pp)", "Hedges' g [95% CI]", "p (Welch)",
               "p (Holm)", "significant", "P(A beats B)", f"MDD at {POWER:.0%} power (pp)",
               f"repeats for {100 * TARGET_DIFFERENCE:g} pp"]
    return _table(headers, rows, classes)


def _frame_table(frame: pd.DataFrame, formats: dict[str, callable]) -> str:
    rows = [[formats.get(c, _esc)(v) for c, v in zip(frame.columns, rec)]
            for rec in frame.itertuples(index=False)]
    return _table([_esc(c) for c in frame.columns], rows)


def _figures(run_dir: Path, a: RunAnalysis, plot_dir: Path | None, tmp: Path) -> Path:
    if plot_dir is not None and plot_dir.is_dir():
        return plot_dir
    datasets = [str(d) for d in pd.unique(a.agg["dataset"])]
    for dataset in datasets:
        plot_metric_bars(a.agg, dataset, tmp)
        ks = recall_ks(a.agg, dataset)
        if any(k > 1 for k in ks):
            plot_metric_bars(a.agg, dataset, tmp, name="recall", metrics=[recall_key(k) for k in ks])
    labels = {k: m.label for k, m in a.manifest.metrics.items()}
    write_cd_diagrams(a.agg, tmp)
    if (run_dir / "trials.csv").exists():
        plot_optimisation_history(read_trials(run_dir / "trials.csv"), tmp, display_names=a.display)
    if (run_dir / "curves.csv").exists():
        plot_validation_curves(read_curves(run_dir / "curves.csv"), tmp, labels=labels, display_names=a.display)
    return tmp


def render_html(run_dir: str | os.PathLike, analysis: RunAnalysis | None = None, *,
                plot_dir: str | os.PathLike | None = None) -> str:
    """The page's HTML for ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir)
    a = analysis or analyse_run(run_dir)
    with tempfile.TemporaryDirectory() as tmp_name:
        figs = _figures(run_dir, a, Path(plot_dir) if plot_dir else None, Path(tmp_name))
        # figures kept beside the page (plots/) can be linked; drawn into a temporary folder, they cannot
        return _page(run_dir, a, figs, linkable=figs != Path(tmp_name))


def _anchor(*parts: str) -> str:
    return "-".join(safe_stem(p).lower() for p in parts)


def _page(run_dir: Path, a: RunAnalysis, figs: Path, *, linkable: bool = False) -> str:
    toc: list[tuple[int, str, str]] = [(1, "findings", "Findings")]  # (level, anchor, title)
    out = ["<h2 id='findings'>Findings</h2><ul class='findings'>"]
    for line in summary_lines(a):
        cls = " class='warn'" if line.startswith("search ") or "not recorded" in line else ""
        out.append(f"<li{cls}>{_esc(line)}</li>")
    out.append("</ul>")

    for dataset in [str(d) for d in pd.unique(a.agg["dataset"])]:
        name = DATASET_DISPLAY.get(dataset, dataset)
        toc.append((1, _anchor("dataset", dataset), name))
        out.append(f"<a id='{_anchor('dataset', dataset)}'></a><h2>{_esc(name)}</h2>")
        present = set(a.agg.loc[a.agg["dataset"] == dataset, "metric"])
        main = [m for m in METRICS if m in present]
        ks = recall_ks(a.agg, dataset)
        sections = []
        if main:
            sections.append(("retrieval", "Retrieval metrics", main, f"{safe_stem(dataset)}_metrics.png"))
        if any(k > 1 for k in ks):
            sections.append(("recall", "Recall@K", [recall_key(k) for k in ks], f"{safe_stem(dataset)}_recall.png"))
        others = other_metrics(a.agg, dataset)
        if others:
            sections.append(("other", "Other metrics", others, None))
        if not sections:  # none of the known kinds: every metric in one table
            sections.append(("retrieval", "Results", sorted(present), f"{safe_stem(dataset)}_metrics.png"))
        for key, title, metrics, png_name in sections:
            toc.append((2, _anchor(dataset, key), title))
            out.append(f"<h3 id='{_anchor(dataset, key)}'>{_esc(title)}</h3>")
            out.append(_results_table(a, dataset, metrics))
            png = figs / png_name if png_name else None
            if png is not None and png.exists():
                out.append(_img(png, f"{dataset} {title}"))
        sub = a.pairwise[a.pairwise["dataset"] == dataset]
        toc.append((2, _anchor(dataset, "pairs"), "The best against each other method"))
        out.append(f"<a id='{_anchor(dataset, 'pairs')}'></a>")
        for emb, metric in dict.fromkeys(zip(sub["embedding"], sub["metric"])):
            if metric not in METRICS and set(METRICS) & set(sub["metric"]):
                continue
            out.append(f"<h3>The best against each other method: {_esc(emb)} "
                       f"{_esc(metric_labels(a.agg)[metric])}</h3>")
            out.append(_pairwise_table(a, dataset, emb, metric))
        out.append(f"<p class='note'>A: the column's best method with at least two repeats. "
                   f"Green rows: pairs not significantly different (Holm over all pairs, α = "
                   f"{ALPHA:g}). MDD: the smallest true difference the pair's repeats detect "
                   f"with {POWER:.0%} power (two-sided Welch test, α = {ALPHA:g}, uncorrected); "
                   f"repeats: per method, to detect {100 * TARGET_DIFFERENCE:g} percentage point "
                   f"at that power. Every metric's pairs: <code>tables/{_esc(dataset)}_pairwise.csv"
                   "</code>.</p>")

    toc.append((1, "ranks", "Ranks across datasets"))
    out.append("<h2 id='ranks'>Ranks across datasets</h2>")
    if a.ranks.empty:
        out.append("<p>No method was ranked.</p>")
    else:
        main = a.ranks[a.ranks["metric"].isin(METRICS)] if a.ranks["metric"].isin(METRICS).any() else a.ranks
        piv = main.pivot_table(index="display_name", columns=["embedding", "metric"],
                               values="average_rank", sort=False)
        labels = metric_labels(a.agg)
        headers = ["Method"] + [f"{e} {_esc(labels[m])}" for e, m in piv.columns]
        rows = [[_esc(i)] + [_num(v, ".2f") for v in piv.loc[i]] for i in piv.index]
        out.append(_table(headers, rows))
        fr = a.friedman[a.friedman["metric"].isin(set(main["metric"]))]
        if (fr["note"] != "").all():
            out += [f"<p class='note'>{_esc(n)}.</p>" for n in dict.fromkeys(fr["note"])]
        else:
            fr = fr[["embedding", "metric", "k", "n_datasets", "chi2", "p_value",
                     "iman_davenport_p", "critical_difference", "note"]]
            out.append(_frame_table(fr, {"chi2": lambda v: _num(v, ".2f"), "p_value": _num,
                                         "iman_davenport_p": _num,
                                         "critical_difference": lambda v: _num(v, ".2f")}))
        out.append(_cd_section(run_dir, a, figs, linkable=linkable))

    toc.append((1, "search", "Search diagnostics"))
    out.append("<h2 id='search'>Search diagnostics</h2>")
    if a.diagnostics is None:
        out.append("<p class='note'>trials.csv not recorded: no search diagnostics.</p>")
    else:
        d = a.diagnostics.assign(method=a.diagnostics["method"].map(lambda m: a.display.get(m, m)))
        out.append(_frame_table(d, {"best_value": lambda v: _pct(v), "best_trial": lambda v: _num(v, ".0f"),
                                    "best_position": lambda v: _num(v, ".0f"),
                                    "warnings": lambda v: f"<span class='warn'>{_esc(v)}</span>"}))
        out.append("<p class='note'>best_value: validation MAP@R (%) of the best trial; a best "
                   "found in the last fifth of the budget, or a best parameter within 5% of its "
                   "range's end (log space for log parameters), is a warning.</p>")
        for dataset in pd.unique(a.diagnostics["dataset"]):
            png = figs / f"{safe_stem(str(dataset))}_optimisation.png"
            if png.exists():
                out.append(_img(png, png.stem))

    toc.append((1, "cost", "Cost"))
    out.append("<h2 id='cost'>Cost</h2>")
    if a.cost.empty:
        out.append("<p class='note'>Cost not recorded.</p>")
    else:
        c = a.cost.assign(method=a.cost["method"].map(lambda m: a.display.get(m, m)))
        out.append(_frame_table(c, {"wall_seconds": lambda v: _recorded(v, ",.1f"),
                                    "iterations": _recorded, "images": _recorded}))
        out.append("<p class='note'>Summed over the stage's units; images = training iterations "
                   "× batch size. A total is shown only when every stage was recorded.</p>")
    for note in a.notes:
        out.append(f"<p class='note'>{_esc(note)}</p>")

    curves = [p for p in (figs / f"{safe_stem(str(d))}_validation.png"
                          for d in pd.unique(a.agg["dataset"])) if p.exists()]
    if curves:
        toc.append((1, "curves", "Validation curves"))
        out.append("<h2 id='curves'>Validation curves</h2>")
        out += [_img(png, png.stem) for png in curves]
    out.append("</body></html>")
    head = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>dml-bench report: {_esc(run_dir.name)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>dml-bench report: {_esc(run_dir.name)}</h1>",
            "<p class='legend'>Values in percent: mean ± half-width of the 95% Student-t interval "
            f"over {_esc(POOLING_LEGEND[a.manifest.pooling])} (a single evaluation, such as Pretrained, has "
            "no ±). <b>Bold</b>: best "
            f"mean of the column. †: the significance group, the best method with at least two "
            f"repeats and those not significantly worse than it ({_esc(TEST_LEGEND)}).</p>",
            _toc(toc)]
    return "\n".join(head + out) + "\n"


def _toc(entries: list[tuple[int, str, str]]) -> str:
    """A nested list of links to the page's sections (level 1: a section, level 2: inside the last one)."""
    html_ = ["<nav class='toc' id='contents'><b>Contents</b><ul>"]
    open_sub = False
    for level, anchor, title in entries:
        if level == 2 and not open_sub:
            html_[-1] = html_[-1].removesuffix("</li>")
            html_.append("<ul>")
            open_sub = True
        elif level == 1 and open_sub:
            html_.append("</ul></li>")
            open_sub = False
        html_.append(f"<li><a href='#{anchor}'>{_esc(title)}</a></li>")
    if open_sub:
        html_.append("</ul></li>")
    html_.append("</ul></nav>")
    return "".join(html_)


def _cd_section(run_dir: Path, a: RunAnalysis, figs: Path, *, linkable: bool) -> str:
    """The headline metric's critical-difference diagram, links to the others, or one line saying why
    there is none (fewer than ``MIN_CD_METHODS`` ranked methods)."""
    ranked = a.ranks[~a.ranks["method"].isin(BASELINES)]
    counts = ranked.groupby(["embedding", "metric"], sort=False)["method"].nunique()
    if counts.empty or counts.max() < MIN_CD_METHODS:
        n = int(counts.max()) if not counts.empty else 0
        return (f"<p class='note'>No critical-difference diagram: {n} method{'s' if n != 1 else ''} ranked "
                f"(Pretrained is not), and a diagram needs at least {MIN_CD_METHODS}; the pairwise tables "
                "above compare them.</p>")
    stems = [st for st in cd_diagram_stems(a.agg) if (figs / f"{st}.png").exists()]
    if not stems:
        return ""
    headline = cd_stem(*HEADLINE) if cd_stem(*HEADLINE) in stems else stems[0]
    out = [_img(figs / f"{headline}.png", headline)]
    others = [st for st in stems if st != headline]
    if others:
        if linkable:
            links = ", ".join(f"<a href='{_esc((figs / f'{st}.png').relative_to(run_dir).as_posix())}'>{_esc(st)}</a>"
                              if (figs / f"{st}.png").is_relative_to(run_dir) else _esc(st) for st in others)
            out.append(f"<p class='note'>Other critical-difference diagrams: {links} (PNG and PDF in plots/).</p>")
        else:
            out.append(f"<p class='note'>Other critical-difference diagrams ({', '.join(map(_esc, others))}) are "
                       "written to plots/ by <code>dml-bench report</code> without --no-plots.</p>")
    return "\n".join(out)


def write_html_report(run_dir: str | os.PathLike, analysis: RunAnalysis | None = None, *,
                      plot_dir: str | os.PathLike | None = None) -> Path:
    """Write ``run_dir/report.html`` (atomically); return its path."""
    run_dir = Path(run_dir)
    return atomic_write_text(run_dir / "report.html",
                             render_html(run_dir, analysis, plot_dir=plot_dir))
