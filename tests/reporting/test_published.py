"""Published tables: transcription checks and the comparison with our aggregate."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from benchmark.errors import BenchmarkError
from benchmark.reporting.published import (
    COMPARISON_COLUMNS,
    PUBLISHED_COLUMNS,
    compare_with_published,
    load_published,
    method_key,
)
from benchmark.reporting.tables import render_recall_table
from tests.reporting.helpers import make_agg, paper_like_agg

CUB_METHODS = ["Pretrained", "Contrastive", "Triplet", "NT-Xent", "ProxyNCA", "Margin",
               "Margin/class", "N. Softmax", "COS", "ArcFace", "FastAP", "SNR", "MS", "MS+Miner",
               "SoftTriple", "ProxyNCA++", "ContXBM", "Proxy-Anchor", "DCML (Ours)"]
#: The sources' table lines, kept in the repository beside the transcriptions (results/published/README.md).
SOURCE = Path(__file__).resolve().parents[2] / "results" / "published" / "source"
SEED_DCML = SOURCE / "dcml_icml2022_slides_tables.txt"
SEED_DRO = SOURCE / "dro_eccv2020_poster_tables.txt"


def _value(df: pd.DataFrame, method: str, emb: str | None, metric: str) -> pd.Series:
    sel = df[(df["method_display"] == method) & (df["metric"] == metric)]
    sel = sel[sel["embedding"].isna()] if emb is None else sel[sel["embedding"] == emb]
    assert len(sel) == 1
    return sel.iloc[0]


def test_cub_table_complete():
    cub = load_published("cub200")
    assert tuple(cub.columns) == PUBLISHED_COLUMNS
    assert list(dict.fromkeys(cub["method_display"])) == CUB_METHODS
    assert len(cub) == 19 * 6
    row = _value(cub, "Contrastive", "concatenated", "map_at_r")
    assert (row["mean"], row["half_width"]) == (26.53, 0.29)
    row = _value(cub, "DCML (Ours)", "separated", "precision_at_1")
    assert (row["mean"], row["half_width"]) == (62.28, 0.30)
    assert math.isnan(_value(cub, "Pretrained", "concatenated", "precision_at_1")["half_width"])
    assert cub.loc[cub["method_display"] != "Pretrained", "half_width"].notna().all()


def test_cars_sop_inshop_tables():
    cars = load_published("cars196")
    assert cars["method_display"].nunique() == 19 and len(cars) == 114
    assert _value(cars, "Proxy-Anchor", "separated", "precision_at_1")["mean"] == 76.85
    sop = load_published("dcml_icml2022_sop.csv")
    assert sop["method_display"].nunique() == 17 and len(sop) == 102
    assert not {"Margin/class", "ContXBM"} & set(sop["method_display"])
    assert _value(sop, "ArcFace", "separated", "precision_at_1")["half_width"] == 1.51
    inshop = load_published("inshop")
    assert inshop["method_display"].nunique() == 11 and len(inshop) == 66
    assert inshop["embedding"].isna().all()
    ms = _value(inshop, "MS", None, "recall_at_1")
    assert (ms["mean"], ms["decimals"]) == (89.7, 1)
    ablation = load_published("dro_eccv2020_inshop_ms_ls")
    assert _value(ablation, "MS", None, "recall_at_1")["mean"] == 79.8
    with pytest.raises(BenchmarkError, match="known"):
        load_published("imagenet")


def test_dcml_files_match_seed_text():
    """Every table line of the source, rebuilt from the CSV files, appears verbatim."""
    text = SEED_DCML.read_text(encoding="utf-8").replace("\\pm", "±")
    for dataset in ("cub200", "cars196", "sop"):
        df = load_published(dataset)
        for method, grp in df.groupby("method_display", sort=False):
            cells = [f"{r.mean:.2f}" + ("" if math.isnan(r.half_width)
                                        else f" ± {r.half_width:.2f}")
                     for r in grp.itertuples()]
            assert "\t".join([method, *cells]) + "\n" in text, (dataset, method)


def test_dro_files_match_seed_text():
    rows = []
    for line in SEED_DRO.read_text(encoding="utf-8").splitlines():
        nums = re.findall(r"(?<![\w=.])(\d+\.\d)(?!\d)", line)
        if len(nums) >= 6:
            rows.append(nums[-6:])
    ours = []
    for name in ("dro_eccv2020_inshop_ms_ls", "dro_eccv2020_inshop"):
        df = load_published(name)
        ours += [[f"{v:.1f}" for v in grp["mean"]]
                 for _, grp in df.groupby("method_display", sort=False)]
    assert ours == rows


def test_method_key():
    assert method_key("DCML (Ours)") == method_key("DCML") == "dcml"
    assert method_key("N.  Softmax ") == "n. softmax"
    assert method_key("DRO-TopK_M (Ours)") == method_key("DRO-TopK_B (Ours)") == method_key("DRO-TopK")
    assert method_key("DRO-TopK-PN_M (Ours)") == method_key("DRO-TopK-PN") != method_key("DRO-TopK")
    assert method_key("DRO-KL-G-γ=0.01") != method_key("DRO-KL")


def test_our_dro_rows_pair_with_the_inshop_table():
    """Our DRO methods, by their registered display names, meet the In-shop table's `_M` / `_B` rows."""
    from benchmark.methods import get_method

    names = {m: get_method(m).display_name for m in ("dro_topk", "dro_topk_pn", "dro_kl")}
    agg = make_agg([(m, d, "concatenated", f"recall_at_{k}", 90.0, 0.5, 3) for m, d in names.items()
                    for k in (1, 10)], dataset="inshop")
    comp = compare_with_published(agg)
    paired = {}
    for r in comp.itertuples():
        paired.setdefault((r.method, r.metric), r)  # the first published row, as the tables show it
    assert set(comp["published_method"]) == {"DRO-TopK_M (Ours)", "DRO-TopK_B (Ours)", "DRO-TopK-PN_M (Ours)",
                                             "DRO-TopK-PN_B (Ours)", "DRO-KL_M (Ours)"}
    assert list(comp.loc[(comp["method"] == "dro_topk") & (comp["metric"] == "recall_at_1"),
                         "published_method"]) == ["DRO-TopK_M (Ours)", "DRO-TopK_B (Ours)"]
    assert paired[("dro_topk", "recall_at_1")].published == 91.0
    assert paired[("dro_topk_pn", "recall_at_10")].published == 98.0
    assert paired[("dro_kl", "recall_at_1")].difference == pytest.approx(90.0 - 90.8)
    # the table shows the first published row (the M variant) beside ours
    table = render_recall_table(agg, "inshop", ks=(1, 10), compare=True)
    assert "91.0 (−1.00)" in table and "91.3 (−1.30)" in table and "90.8 (−0.80)" in table
    # the ablation table's DRO-KL-G rows are another method (a generalised KL): never paired
    assert compare_with_published(agg, "dro_eccv2020_inshop_ms_ls").empty


def test_compare_with_published_differences():
    agg = paper_like_agg()
    agg.loc[(agg["method"] == "contrastive") & (agg["embedding"] == "concatenated")
            & (agg["metric"] == "map_at_r"), "mean"] = 0.2640
    extra = make_agg([("dcml", "DCML", "separated", "precision_at_1", 62.00, 0.25, 10),
                      ("mine", "Mine", "separated", "precision_at_1", 50.0, 1.0, 10)])
    comp = compare_with_published(pd.concat([agg, extra], ignore_index=True), "cub200")
    assert tuple(comp.columns) == COMPARISON_COLUMNS
    assert len(comp) == 3 * 6 + 1  # "Mine" has no published row
    row = comp[(comp["method"] == "contrastive") & (comp["embedding"] == "concatenated")
               & (comp["metric"] == "map_at_r")].iloc[0]
    assert row["ours"] == pytest.approx(26.40)
    assert row["published"] == 26.53
    assert row["difference"] == pytest.approx(-0.13)
    assert row["ours_half_width"] == pytest.approx(0.29)
    dcml = comp[comp["method"] == "dcml"].iloc[0]
    assert dcml["published_method"] == "DCML (Ours)"
    assert dcml["difference"] == pytest.approx(62.00 - 62.28)
    assert list(dict.fromkeys(comp["method"])) == ["pretrained", "contrastive",
                                                   "multi_similarity", "dcml"]


def test_compare_other_dataset_and_single_model_rows():
    agg = make_agg([("ms", "MS", emb, "recall_at_10", 95.0, 0.1, 3)
                    for emb in ("concatenated", "separated")], dataset="inshop")
    comp = compare_with_published(agg)
    assert list(comp["embedding"]) == ["concatenated", "separated"]
    assert comp["difference"].tolist() == pytest.approx([95.0 - 97.9] * 2)
    assert compare_with_published(paper_like_agg(dataset="cars196"), "cub200").empty


def test_comparison_carries_each_sides_dimension():
    """A 2-fold run's 256-d concatenation beside the DCML table's 512-d one is said, not hidden."""
    from benchmark.manifest import manifest_for
    from benchmark.reporting.tables import render_table

    two_folds = manifest_for(folds=2, repeats=10, embedding_dim=128, recall_at=[[1]], far=1e-3)
    comp = compare_with_published(paper_like_agg(manifest=two_folds), "cub200")
    concat = comp[comp["embedding"] == "concatenated"]
    assert set(concat["dim"]) == {256} and set(concat["published_dim"]) == {512.0}
    assert set(comp.loc[comp["embedding"] == "separated", "dim"]) == {128}
    assert set(comp["label"]) == {"P@1", "RP", "MAP@R"}
    md = render_table(paper_like_agg(manifest=two_folds), "cub200", compare="cub200")
    assert "Not the same embeddings: concatenated ours 256-dim, published 512-dim." in md
    assert "Not the same embeddings" not in render_table(paper_like_agg(), "cub200", compare="cub200")
    inshop = make_agg([("ms", "MS", "concatenated", "recall_at_1", 90.0, 0.1, 3)], dataset="inshop")
    assert compare_with_published(inshop)["published_dim"].isna().all()  # the DRO poster gives none
