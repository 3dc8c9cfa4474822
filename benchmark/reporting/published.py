"""Published numbers (transcribed tables in ``results/published/``) and comparison with ours.

Each published file is a CSV with ``#`` comment lines (source, units, legibility notes) and the
columns ``method_display, embedding, metric, mean, half_width``: values in percent exactly as
printed, ``half_width`` empty where the paper prints no ``±``, ``embedding`` empty where the paper
reports one model (then it is compared with all of our embeddings). :func:`load_published` adds
``source``, ``dataset``, ``method_key`` (the display name without a trailing "(Ours)" or a
one-letter variant subscript such as the DRO table's ``_M`` / ``_B``, used for matching) and
``decimals`` (the printed precision).

:func:`compare_with_published` matches our aggregated rows to published ones by display name
(after that normalisation) and dataset (our names: cub200, cars196, sop, inshop) and gives ours,
published and the difference in percentage points, with each side's embedding dimension: ours from
the run's manifest (through the aggregate's rows), the paper's where its table says it
(:attr:`PublishedTable.dims`), so that a 2-fold run's 256-d concatenation is not read as the
papers' 512-d one.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.reporting.aggregate import read_csv_checked

#: Where the transcribed tables live (the repository's ``results/published``).
PUBLISHED_DIR = Path(__file__).resolve().parents[2] / "results" / "published"
#: Columns of a published CSV file.
PUBLISHED_FILE_COLUMNS = ("method_display", "embedding", "metric", "mean", "half_width")
#: Columns of the frame returned by :func:`load_published`.
PUBLISHED_COLUMNS = ("source", "dataset", "method_display", "method_key", "embedding", "metric",
                     "mean", "half_width", "decimals")
#: Columns of the frame returned by :func:`compare_with_published` (numbers in percent).
COMPARISON_COLUMNS = ("method", "display_name", "dataset", "embedding", "metric", "label", "ours",
                      "ours_half_width", "n", "published", "published_half_width",
                      "published_decimals", "difference", "source", "published_method", "dim",
                      "published_dim")


@dataclass(frozen=True)
class PublishedTable:
    """One transcribed table: file stem, dataset, citation, whether it is the default, and the
    dimension of each embedding it reports (empty where the paper does not say)."""

    name: str
    dataset: str
    citation: str
    primary: bool = True
    dims: Mapping[str, int] = field(default_factory=dict)


#: The DCML tables follow the reality check: 4 fold models of 128, concatenated to 512.
_REALITY_CHECK_DIMS = {"concatenated": 512, "separated": 128}
#: Every transcribed table. ``load_published(dataset)`` loads the primary ones of a dataset.
PUBLISHED_TABLES: dict[str, PublishedTable] = {t.name: t for t in (
    PublishedTable("dcml_icml2022_cub200", "cub200",
                   "Deng & Zhang, Deep Causal Metric Learning, ICML 2022, Table 1", dims=_REALITY_CHECK_DIMS),
    PublishedTable("dcml_icml2022_cars196", "cars196",
                   "Deng & Zhang, Deep Causal Metric Learning, ICML 2022, Table 2", dims=_REALITY_CHECK_DIMS),
    PublishedTable("dcml_icml2022_sop", "sop",
                   "Deng & Zhang, Deep Causal Metric Learning, ICML 2022, Table 3", dims=_REALITY_CHECK_DIMS),
    PublishedTable("dro_eccv2020_inshop", "inshop",
                   "Qi et al., A Simple and Effective Framework for Pairwise Deep Metric "
                   "Learning, ECCV 2020, table 'Recall@k on In-Shop'"),
    PublishedTable("dro_eccv2020_inshop_ms_ls", "inshop",
                   "Qi et al., ECCV 2020, table 'Recover of MS loss and LS loss on In-Shop'",
                   primary=False),
)}

_OURS_RE = re.compile(r"\s*\((?:ours|Ours|OURS)\)\s*$")
#: A one-letter subscript printed after a method's name for a variant of it: the DRO In-shop table's
#: ``DRO-TopK_M (Ours)`` and ``DRO-TopK_B (Ours)`` are both DRO-TopK (the paper's poster does not say
#: what M and B stand for), so our DRO-TopK row is set beside both (the tables show the first, M).
_VARIANT_RE = re.compile(r"_[A-Za-z]$")


def method_key(display_name: str) -> str:
    """The matching key of a display name: "(Ours)" and a one-letter variant subscript (``_M``)
    dropped, whitespace collapsed, casefolded.

    ``method_key("DCML (Ours)") == method_key("DCML") == "dcml"``;
    ``method_key("DRO-TopK-PN_B (Ours)") == method_key("DRO-TopK-PN") == "dro-topk-pn"``.
    """
    name = _VARIANT_RE.sub("", _OURS_RE.sub("", str(display_name)).strip())
    return " ".join(name.split()).casefold()


def _decimals(text: str) -> int:
    text = str(text).strip()
    return len(text.split(".", 1)[1]) if "." in text else 0


def _load_file(table: PublishedTable, directory: Path) -> pd.DataFrame:
    path = directory / f"{table.name}.csv"
    if not path.exists():
        raise BenchmarkError(f"published table {path} does not exist")
    raw = read_csv_checked(path, PUBLISHED_FILE_COLUMNS, what="published table", comment="#")
    # Re-read as text to keep the printed precision of every number.
    text = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False)
    out = pd.DataFrame({
        "source": table.name,
        "dataset": table.dataset,
        "method_display": text["method_display"].str.strip(),
        "method_key": text["method_display"].map(method_key),
        "embedding": text["embedding"].str.strip().replace("", pd.NA),
        "metric": text["metric"].str.strip(),
        "mean": pd.to_numeric(text["mean"], errors="coerce").astype("float64"),
        "half_width": pd.to_numeric(text["half_width"].replace("", pd.NA),
                                    errors="coerce").astype("float64"),
        "decimals": text["mean"].map(_decimals).astype("int64"),
    })
    if len(out) != len(raw) or out["mean"].isna().any():
        raise BenchmarkError(f"published table {path}: every row needs a numeric mean")
    return out.loc[:, list(PUBLISHED_COLUMNS)]


def load_published(name_or_dataset: str, *,
                   directory: str | os.PathLike | None = None) -> pd.DataFrame:
    """Load a transcribed table by file stem (``"dcml_icml2022_cub200"``) or by dataset name.

    A dataset name (``"cub200"``, ``"cars196"``, ``"sop"``, ``"inshop"``) loads its primary
    tables; ``"all"`` loads every primary table. Values are in percent, as printed. Columns:
    ``PUBLISHED_COLUMNS``. Unknown names raise :class:`BenchmarkError`.
    """
    directory = Path(directory) if directory is not None else PUBLISHED_DIR
    key = str(name_or_dataset).strip()
    key = key.removesuffix(".csv")
    if key in PUBLISHED_TABLES:
        tables = [PUBLISHED_TABLES[key]]
    elif key == "all":
        tables = [t for t in PUBLISHED_TABLES.values() if t.primary]
    else:
        tables = [t for t in PUBLISHED_TABLES.values() if t.dataset == key and t.primary]
    if not tables:
        known = sorted(set(PUBLISHED_TABLES) | {t.dataset for t in PUBLISHED_TABLES.values()})
        raise BenchmarkError(f"no published table named or for dataset {name_or_dataset!r}; "
                             f"known: {', '.join(known)}, all")
    return pd.concat([_load_file(t, directory) for t in tables], ignore_index=True)


def published_datasets() -> list[str]:
    """Datasets that have a primary published table."""
    return list(dict.fromkeys(t.dataset for t in PUBLISHED_TABLES.values() if t.primary))


PublishedArg = pd.DataFrame | str | None


def compare_with_published(agg: pd.DataFrame, published: PublishedArg = None) -> pd.DataFrame:
    """Match ``agg`` (from :func:`~benchmark.reporting.aggregate.aggregate`) to published numbers.

    ``published`` is a frame from :func:`load_published`, a name for it, or None (the primary
    tables of every dataset in ``agg`` that has one). Rows match on dataset, metric, the display
    names' :func:`method_key` and the embedding (a published row with no embedding matches all of
    ours). Returns ``COMPARISON_COLUMNS``, in percent: ``ours``, ``ours_half_width``,
    ``published``, ``published_half_width`` and ``difference = ours - published`` (percentage
    points), ``label`` and ``dim`` (ours, from the aggregate's rows) and ``published_dim`` (NaN where the
    table does not say). Only matched rows are returned, in ``agg``'s order. If several published rows match
    one of ours (two tables), the first loaded comes first.
    """
    if published is None:
        names = [d for d in pd.unique(agg["dataset"]) if d in published_datasets()]
        if not names:
            return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
        published = pd.concat([load_published(d) for d in names], ignore_index=True)
    elif isinstance(published, str):
        published = load_published(published)
    missing = [c for c in ("dataset", "method_display", "metric", "mean") if c not in published]
    if missing:
        raise BenchmarkError(f"published frame lacks column(s) {missing}")
    pub = published.copy()
    if "method_key" not in pub:
        pub["method_key"] = pub["method_display"].map(method_key)
    for col, default in (("embedding", pd.NA), ("half_width", math.nan), ("source", ""),
                         ("decimals", 2)):
        if col not in pub:
            pub[col] = default
    pub = pub.reset_index(drop=True).assign(_pub_order=lambda f: range(len(f)))

    def published_dim(row: pd.Series) -> float:
        table = PUBLISHED_TABLES.get(str(row["source"]))
        return float(table.dims.get(row["embedding"], math.nan)) if table is not None else math.nan

    ours = agg.reset_index(drop=True).assign(
        _order=lambda f: range(len(f)), method_key=lambda f: f["display_name"].map(method_key))
    with_emb = pub[pub["embedding"].notna()]
    without_emb = pub[pub["embedding"].isna()].drop(columns=["embedding"])
    keys = ["dataset", "metric", "method_key"]
    parts = [ours.merge(with_emb, on=keys + ["embedding"], suffixes=("", "_pub"))]
    if not without_emb.empty:
        parts.append(ours.merge(without_emb, on=keys, suffixes=("", "_pub")))
    merged = pd.concat(parts, ignore_index=True).sort_values(["_order", "_pub_order"])
    out = pd.DataFrame({
        "method": merged["method"],
        "display_name": merged["display_name"],
        "dataset": merged["dataset"],
        "embedding": merged["embedding"],
        "metric": merged["metric"],
        "label": merged["label"],
        "ours": merged["mean"] * 100.0,
        "ours_half_width": merged["half_width"] * 100.0,
        "n": merged["n"],
        "published": merged["mean_pub"],
        "published_half_width": merged["half_width_pub"],
        "published_decimals": merged["decimals"],
        "difference": merged["mean"] * 100.0 - merged["mean_pub"],
        "source": merged["source"],
        "published_method": merged["method_display"],
        "dim": merged["dim"],
        "published_dim": merged.apply(published_dim, axis=1) if len(merged) else pd.Series(dtype=float),
    })
    return out.reset_index(drop=True).loc[:, list(COMPARISON_COLUMNS)]
