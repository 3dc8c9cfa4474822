"""One table per paired (cross-modal) dataset with both retrieval directions side by side.

A cross-modal run reports each direction as its own dataset (``<dataset>.<a>-to-<b>``, see
``benchmark.protocol.cross_modal``), so every single-dataset table, test and plot is made per direction. This
table puts the two directions of one paired dataset together: a column group per direction (its concatenated
embedding) with MAP@R, P@1 and the zero-shot accuracy, in every format, LaTeX included
(``tables/<dataset>_cross_modal.{md,txt,tex}``). Its cells, bold marks and significance groups are the
per-direction tables' own (the same aggregate rows, rendered by ``benchmark.reporting.tables.render_table``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from benchmark.constants import CONCATENATED
from benchmark.io import atomic_write_text
from benchmark.protocol.cross_modal import paired_directions
from benchmark.reporting.tables import EXTENSIONS, render_table

#: The combined table's metrics, per direction.
COLUMNS = ("map_at_r", "precision_at_1", "zero_shot_accuracy")


def directions_frame(agg: pd.DataFrame, dataset: str, directions: tuple[str, str]) -> pd.DataFrame:
    """The concatenated rows of both directions of ``dataset``, with ``embedding`` naming the direction (the
    table's column groups) and ``dataset`` the paired dataset."""
    rows = agg[agg["dataset"].isin(directions) & (agg["embedding"] == CONCATENATED)].copy()
    rows["embedding"] = [d.rpartition(".")[2] for d in rows["dataset"]]
    rows["dataset"] = dataset
    rows.attrs = dict(agg.attrs)
    return rows


def cross_modal_table(agg: pd.DataFrame, dataset: str, directions: tuple[str, str], fmt: str,
                      latex_width: str = "column") -> str:
    frame = directions_frame(agg, dataset, directions)
    return render_table(frame, dataset, fmt=fmt, metrics=COLUMNS,
                        embeddings=tuple(d.rpartition(".")[2] for d in directions), latex_width=latex_width,
                        what="Cross-modal retrieval (both directions, concatenated embeddings) and zero-shot accuracy")


def write_cross_modal_tables(agg: pd.DataFrame, out_dir: str | os.PathLike, formats: Sequence[str],
                             latex_width: str = "column") -> list[Path]:
    """``<dataset>_cross_modal`` in each format for every paired dataset of ``agg``; the paths written."""
    written = []
    for dataset, directions in paired_directions(pd.unique(agg["dataset"])).items():
        for fmt in formats:
            text = cross_modal_table(agg, dataset, directions, fmt, latex_width)
            written.append(atomic_write_text(Path(out_dir) / f"{dataset}_cross_modal{EXTENSIONS[fmt]}", text))
    return written
