"""In-shop Clothes Retrieval (DeepFashion) loader: 7,982 items, 52,712 images, evaluated query ->
gallery. Train: 3,997 items; test: 3,985 items split into 14,218 query and 12,612 gallery images.

Reads ``<root>/list_eval_partition.txt`` (line 1: number of images; line 2: the header
``image_name item_id evaluation_status``; then one row per image with status train, query or
gallery) and the images under ``<root>/img/``. Item ``id_00000001`` gets the integer label 1.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from benchmark.data.base import DataSource
from benchmark.data.files import (
    check_header,
    check_images_exist,
    excerpt,
    files_source,
    read_text_lines,
    require_dir,
    require_file,
    split_rows,
    warn_if_not_published,
)
from benchmark.errors import DatasetError

INSHOP_COLUMNS = ("image_name", "item_id", "evaluation_status")
STATUSES = ("train", "query", "gallery")
INSHOP_CLASSES = 7_982
INSHOP_IMAGES = 52_712
_ITEM = re.compile(r"id_(\d+)")


def load_inshop(root: str | Path, *, image_size: int = 227, resize: int = 256) -> DataSource:
    """In-shop Clothes from ``root`` (holding ``list_eval_partition.txt`` and ``img/``).

    ``train`` is the official train items; ``query`` and ``gallery`` the official test images,
    ``test`` their concatenation (query first). Train items must not appear in query or gallery.
    A subset loads with a logged warning that its size differs from the published one.
    """
    root = Path(root)
    layout = f"{root}/list_eval_partition.txt and the images under {root}/img/"
    require_dir(root, layout)
    txt = require_file(root / "list_eval_partition.txt", f"the In-shop evaluation partition ({layout})")
    require_dir(root / "img", f"the In-shop image folder ({layout})")
    lines = read_text_lines(txt)
    count = lines[0].strip() if lines else ""
    if not count.isdigit():
        raise DatasetError(f"{txt}:1: expected the number of images, found {excerpt(count)}")
    check_header(txt, lines[1] if len(lines) > 1 else None, INSHOP_COLUMNS, lineno=2)
    rows = split_rows(txt, lines[2:], INSHOP_COLUMNS, first_lineno=3)
    if int(count) != len(rows):
        raise DatasetError(f"{txt}:1: the count line says {int(count)} images, but {len(rows)} rows follow")

    parts: dict[str, tuple[list[Path], list[int], list[int]]] = {s: ([], [], []) for s in STATUSES}
    for lineno, (name, item, status) in rows:
        match = _ITEM.fullmatch(item)
        if match is None:
            raise DatasetError(f"{txt}:{lineno}: expected an item_id like 'id_00000001', found {excerpt(item)}")
        if status not in STATUSES:
            raise DatasetError(f"{txt}:{lineno}: expected evaluation_status train, query or gallery, "
                               f"found {excerpt(status)}")
        paths, labels, linenos = parts[status]
        paths.append(root / name)
        labels.append(int(match.group(1)))
        linenos.append(lineno)
    for status, (paths, _, _) in parts.items():
        if not paths:
            raise DatasetError(f"{txt}: no rows with evaluation_status {status} "
                               "(expected train, query and gallery rows)")

    train_items = set(parts["train"][1])
    for status in ("query", "gallery"):
        for label, lineno in zip(parts[status][1], parts[status][2]):
            if label in train_items:
                train_line = parts["train"][2][parts["train"][1].index(label)]
                raise DatasetError(f"{txt}:{lineno}: {status} item id_{label:08d} is also a train item "
                                   f"(line {train_line}; expected disjoint train and test items)")
    for paths, _, linenos in parts.values():
        check_images_exist(paths, lambda i, linenos=linenos: f"{txt}:{linenos[i]}")

    n_items = len({label for _, labels, _ in parts.values() for label in labels})
    warn_if_not_published("In-shop Clothes", n_items, len(rows), INSHOP_CLASSES, INSHOP_IMAGES, root)
    query = (parts["query"][0], parts["query"][1])
    gallery = (parts["gallery"][0], parts["gallery"][1])
    test = (query[0] + gallery[0], np.concatenate([query[1], gallery[1]]).astype(np.int64))
    return files_source("inshop", (parts["train"][0], parts["train"][1]), test, query=query, gallery=gallery,
                        image_size=image_size, resize=resize,
                        info={"root": str(root), "n_query": len(query[0]), "n_gallery": len(gallery[0])})
