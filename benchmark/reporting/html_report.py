"""``report.html``: one self-contained page per run (tables, figures, diagnostics, warnings).

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

from benchmark.constants import CONCATENATED, METRICS
from benchmark.io import atomic_write_text
from benchmark.reporting.aggregate import SEPARATED, metric_labels, read_curves, read_trials
from benchmark.reporting.cd_diagram import cd_diagram_stems, write_cd_diagrams
from benchmark.reporting.findings import TARGET_DIFFERENCE, RunAnalysis, analyse_run, summary_lines
from benchmark.reporting.plots import (
    safe_stem,
    plot_metric_bars,
    plot_optimisation_history,
    plot_validation_curves,
)
from benchmark.reporting.power import POWER
from benchmark.reporting.significance import ALPHA, TEST_LEGEND, oriented
from benchmark.reporting.tables import DATASET_DISPLAY

_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1150px}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ccd;padding-bottom:4px;margin-top:1.6em}
table{border-collapse:collapse;margin:8px 0 16px;font-size:.85em}
th,td{border:1px solid #ccd;padding:3px 7px;text-align:right}th{background:#eef}
td:first-child,th:first-child{text-align:left}
tr.group td{background:#eaf6ea}.warn{color:#a40}.note{color:#555;font-size:.9em}
ul.findings li{margin:2px 0}img{max-width:100%;border:1px solid #eee;margin:6px 0}
.legend{font-size:.85em;color:#444}
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


def _results_table(a: RunAnalysis, dataset: str) -> str:
    sub = a.agg[a.agg["dataset"] == dataset]
    metrics = [m for m in METRICS if m in set(sub["metric"])] or list(pd.unique(sub["metric"]))
    columns = [(e, m) for e in (CONCATENATED, SEPARATED) for m in metrics
               if ((sub["embedding"] == e) & (sub["metric"] == m)).any()]
    groups = {(r.embedding, r.metric): set(r.group)
              for r in a.groups[a.groups["dataset"] == dataset].itertuples(index=False)}
    labels = metric_labels(sub)
    best: dict[tuple[str, str], float] = {}
    for emb, metric in columns:
        column = sub[(sub["embedding"] == emb) & (sub["metric"] == metric)]
        means = column["mean"].dropna()
        if len(means):
            best[(emb, metric)] = means.max() if column["higher_is_better"].iloc[0] else means.min()
    dims = dict(zip(sub["embedding"], sub["dim"]))
    headers = ["Method"] + [f"{'Concat.' if e == CONCATENATED else 'Sep.'} ({dims[e]}-d) {_esc(labels[m])}"
                            for e, m in columns] + ["n"]
    rows = []
    for method, display in dict.fromkeys(zip(sub["method"], sub["display_name"])):
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
    return _table(headers, rows)


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
        return _page(run_dir, a, figs)


def _page(run_dir: Path, a: RunAnalysis, figs: Path) -> str:
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
           f"<title>dml-bench report: {_esc(run_dir.name)}</title><style>{_STYLE}</style></head><body>",
           f"<h1>dml-bench report: {_esc(run_dir.name)}</h1>",
           "<p class='legend'>Values in percent: mean ± half-width of the 95% Student-t interval "
           "over n repeats (a single evaluation, such as Pretrained, has no ±). <b>Bold</b>: best "
           f"mean of the column. †: the significance group, the best method with at least two "
           f"repeats and those not significantly worse than it ({_esc(TEST_LEGEND)}).</p>",
           "<h2>Findings</h2><ul class='findings'>"]
    for line in summary_lines(a):
        cls = " class='warn'" if line.startswith("search ") or "not recorded" in line else ""
        out.append(f"<li{cls}>{_esc(line)}</li>")
    out.append("</ul>")

    for dataset in [str(d) for d in pd.unique(a.agg["dataset"])]:
        name = DATASET_DISPLAY.get(dataset, dataset)
        out.append(f"<h2>{_esc(name)}</h2>")
        out.append(_results_table(a, dataset))
        png = figs / f"{safe_stem(dataset)}_metrics.png"
        if png.exists():
            out.append(_img(png, f"{dataset} metrics"))
        sub = a.pairwise[a.pairwise["dataset"] == dataset]
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

    out.append("<h2>Ranks across datasets</h2>")
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
        for stem in cd_diagram_stems(a.agg):
            png = figs / f"{stem}.png"
            if png.exists():
                out.append(_img(png, stem))

    out.append("<h2>Search diagnostics</h2>")
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

    out.append("<h2>Cost</h2>")
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
        out.append("<h2>Validation curves</h2>")
        out += [_img(png, png.stem) for png in curves]
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_html_report(run_dir: str | os.PathLike, analysis: RunAnalysis | None = None, *,
                      plot_dir: str | os.PathLike | None = None) -> Path:
    """Write ``run_dir/report.html`` (atomically); return its path."""
    run_dir = Path(run_dir)
    return atomic_write_text(run_dir / "report.html",
                             render_html(run_dir, analysis, plot_dir=plot_dir))
