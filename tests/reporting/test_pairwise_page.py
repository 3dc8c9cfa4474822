"""The report page's pairwise tables say exactly what ``tables/<dataset>_pairwise.csv`` says.

The page turns each pair so that the column's best method is A. A bug there once showed
impossible intervals ("A − B 0.83, 95% CI [−15.74, −15.74]") whenever the best method was B in the
CSV: the CSV was right, the page people read was wrong. This test meets it as a user does: a run
folder on disk (unequal n, the best method on both sides of the CSV's pairs), the real ``report``
command, then every number of every pairwise row of ``report.html`` against the CSV read back from
disk, turned by hand.
"""

from __future__ import annotations

import math
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

from benchmark.cli import main
from benchmark.constants import RESULT_COLUMNS
from benchmark.manifest import manifest_for, write_manifest

#: Concatenated MAP@R per repeat. "zeta" is the best and comes last, so it is method_b of every pair
#: it is in (the case that broke the page); on the fold model "alpha" leads, method_b against
#: Pretrained and method_a against the rest. n differs between every method.
VALUES = {
    "alpha": [0.301, 0.322, 0.309],
    "mid": [0.280, 0.291, 0.276, 0.288, 0.283],
    "low": [0.20, 0.23, 0.21, 0.22, 0.19, 0.215],
    "zeta": [0.331, 0.318, 0.342, 0.327],
}
DISPLAY = {"alpha": "Alpha", "mid": "Mid", "zeta": "Zeta", "low": "Low", "pretrained": "Pretrained"}


def write_folder(run: Path) -> Path:
    run.mkdir(parents=True)
    write_manifest(run, manifest_for(folds=1, repeats=6, embedding_dim=64, recall_at=[[1]], far=None))
    rows = [("pretrained", "Pretrained", "cub200", 0, emb, "map_at_r", v) for emb, v in (("concatenated", 0.15),
                                                                                       ("fold0", 0.14))]
    for method, values in VALUES.items():
        for r, v in enumerate(values):
            rows.append((method, DISPLAY[method], "cub200", r, "concatenated", "map_at_r", v))
            # on the fold model alpha leads (method_a of all its pairs)
            rows.append((method, DISPLAY[method], "cub200", r, "fold0", "map_at_r",
                         v + (0.05 if method == "alpha" else 0.0)))
    pd.DataFrame(rows, columns=list(RESULT_COLUMNS)).to_csv(run / "results.csv", index=False)
    return run


class _Tables(HTMLParser):
    """Every <table> of a page as (headers, rows of cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[list[str], list[list[str]]]] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(([], []))
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            headers, rows = self.tables[-1]
            if self._in_head:
                headers.extend(self._row)
            else:
                rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def pairwise_tables(page: str) -> list[list[dict[str, str]]]:
    parser = _Tables()
    parser.feed(page)
    return [[dict(zip(headers, row)) for row in rows] for headers, rows in parser.tables
            if "A" in headers and "B" in headers and any(h.startswith("A − B") for h in headers)]


def numbers(cell: str) -> list[float]:
    """The numbers of a cell such as "-1.23 [-2.5, 0.04]" (n/a -> NaN)."""
    if cell.strip() == "n/a":
        return [math.nan]
    text = cell.replace("−", "-").replace("[", " ").replace("]", " ").replace(",", " ").replace("/", " ")
    return [float(t) for t in text.split()]


def close(page_values: list[float], expected: list[float], tol: float) -> bool:
    if page_values == [math.nan] or (len(page_values) == 1 and math.isnan(page_values[0])):
        return all(math.isnan(e) for e in expected)  # "n/a" stands for the whole cell
    return len(page_values) == len(expected) and all(
        (math.isnan(p) and math.isnan(e)) or abs(p - e) <= tol for p, e in zip(page_values, expected))


def turned(row: pd.Series, best: str) -> dict[str, list[float]]:
    """The CSV row as the page must show it, A = ``best`` (written out by hand, not the package's code)."""
    if row["method_a"] == best:
        return {"n": [row["n_a"], row["n_b"]],
                "diff": [100 * row["difference"]],
                "ci": [100 * row["difference_low"], 100 * row["difference_high"]],
                "g": [row["hedges_g"], row["hedges_g_low"], row["hedges_g_high"]],
                "p": [row["p_value"]], "holm": [row["p_holm"]], "beats": [row["p_a_beats_b"]]}
    return {"n": [row["n_b"], row["n_a"]],
            "diff": [-100 * row["difference"]],
            "ci": [-100 * row["difference_high"], -100 * row["difference_low"]],
            "g": [-row["hedges_g"], -row["hedges_g_high"], -row["hedges_g_low"]],
            "p": [row["p_value"]], "holm": [row["p_holm"]], "beats": [1 - row["p_a_beats_b"]]}


def test_every_pairwise_number_on_the_page_equals_the_csv(tmp_path):
    run = write_folder(tmp_path / "run")
    assert main(["report", str(run), "--no-plots"]) == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    csv = pd.read_csv(run / "tables" / "cub200_pairwise.csv")
    by_display = {v: k for k, v in DISPLAY.items()}
    tables = pairwise_tables(page)
    columns = list(dict.fromkeys(zip(csv["embedding"], csv["metric"])))  # the page's order of sections
    assert len(tables) == len(columns) == 2  # concatenated and separated MAP@R
    sides = set()
    checked = 0
    for (embedding, metric), table in zip(columns, tables):
        column = csv[(csv["embedding"] == embedding) & (csv["metric"] == metric)]
        bests = {by_display[r["A"]] for r in table}
        assert len(bests) == 1, bests  # one column, one best method, always A
        best = bests.pop()
        for r in table:
            other = by_display[r["B"]]
            match = column[((column["method_a"] == best) & (column["method_b"] == other))
                           | ((column["method_a"] == other) & (column["method_b"] == best))]
            assert len(match) == 1, (best, other, r)
            row = match.iloc[0]
            sides.add(row["method_a"] == best)
            want = turned(row, best)
            ci_header = next(h for h in r if h.startswith("95% CI"))
            g_header = next(h for h in r if h.startswith("Hedges"))
            diff_header = next(h for h in r if h.startswith("A − B"))
            assert close(numbers(r["n"]), want["n"], 0), (r["n"], want["n"])
            assert close(numbers(r[diff_header]), want["diff"], 0.0051), (r[diff_header], want["diff"])
            assert close(numbers(r[ci_header]), want["ci"], 0.0051), (best, other, r[ci_header], want["ci"])
            assert close(numbers(r[g_header]), want["g"], 0.0051), (best, other, r[g_header], want["g"])
            if not math.isnan(want["ci"][0]):
                low, high = numbers(r[ci_header])
                assert low < numbers(r[diff_header])[0] < high, (best, other, r[ci_header])
            assert close(numbers(r["p (Welch)"]), want["p"], 0.0005 + 5e-3 * want["p"][0])
            assert close(numbers(r["p (Holm)"]), want["holm"], 0.0005 + 5e-3 * want["holm"][0])
            assert close(numbers(r["P(A beats B)"]), want["beats"], 0.0051)
            checked += 1
    assert checked == 2 * len(VALUES)  # each table: every other method and Pretrained
    assert sides == {True, False}, "the best method must be method_a in some pairs and method_b in others"
    concatenated = csv[csv["embedding"] == "concatenated"]
    assert (concatenated["method_b"] == "zeta").sum() == len(VALUES)  # B in all its pairs


def test_the_fixture_puts_the_best_method_on_both_sides():
    """Guards the test above: it only means something if the best method is B in every pair of a column."""
    assert list(VALUES)[-1] == "zeta" and max(VALUES, key=lambda m: sum(VALUES[m]) / len(VALUES[m])) == "zeta"
    assert len({len(v) for v in VALUES.values()}) == len(VALUES)

