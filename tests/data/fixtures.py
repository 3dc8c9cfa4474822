"""Tiny datasets in the exact official on-disk layouts, written into a temporary folder.

Used by the data-loader tests and reusable by end-to-end tests: each ``make_*`` writes a few
classes of small generated JPEG images plus the official list/annotation files and returns the
path to pass as the dataset's ``root`` (for ``make_csv``: the CSV file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

#: Size (width, height) of the generated images: small, and not square, like real photos.
IMAGE_SIZE = (40, 32)
#: Fields of Cars196's ``annotations`` struct array, in the official file's order.
CARS_FIELDS = ("relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test")
SOP_CATEGORIES = ("bicycle", "cabinet", "chair", "coffee_maker", "fan", "kettle", "lamp", "mug",
                  "sofa", "stapler", "table", "toaster")


def write_image(path: Path, index: int = 0) -> Path:
    """A small solid-colour image (JPEG or PNG from the suffix), its colour derived from ``index``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    color = tuple(int(v) for v in np.random.default_rng(index).integers(0, 256, 3))
    Image.new("RGB", IMAGE_SIZE, color).save(path)
    return path


def write_corrupt_image(path: Path) -> Path:
    """Overwrite ``path`` with bytes that no image reader accepts."""
    path.write_bytes(b"this is not a jpeg\x00\x01\x02" * 4)
    return path


def make_cub(root: Path, n_classes: int = 4, per_class: int = 3, *, official_files: bool = True) -> Path:
    """``root/CUB_200_2011/`` with ``images/<NNN.Name>/*.jpg`` and (if ``official_files``) the
    official ``images.txt``, ``image_class_labels.txt``, ``classes.txt``, ``train_test_split.txt``."""
    base = root / "CUB_200_2011"
    images, labels, classes, split = [], [], [], []
    image_id = 0
    for c in range(1, n_classes + 1):
        folder = f"{c:03d}.Bird_{c}"
        classes.append(f"{c} {folder}")
        for j in range(per_class):
            image_id += 1
            rel = f"{folder}/Bird_{c}_{j:04d}_{image_id}.jpg"
            write_image(base / "images" / rel, image_id)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {c}")
            split.append(f"{image_id} {j % 2}")
    if official_files:
        for name, lines in (("images.txt", images), ("image_class_labels.txt", labels),
                            ("classes.txt", classes), ("train_test_split.txt", split)):
            (base / name).write_text("\n".join(lines) + "\n")
    return root


def write_cars_annos(path: Path, relpaths: list[str], labels: list[int], *,
                     drop_fields: tuple[str, ...] = ()) -> Path:
    """``cars_annos.mat`` as the official file stores it: a 1 x N struct array ``annotations``
    (``drop_fields`` left out) and a 1 x C cell array ``class_names``."""
    fields = [f for f in CARS_FIELDS if f not in drop_fields]
    ann = np.zeros((1, len(relpaths)), dtype=[(f, "O") for f in fields])
    for i, (rel, label) in enumerate(zip(relpaths, labels)):
        values = {"relative_im_path": rel, "bbox_x1": 1, "bbox_y1": 2, "bbox_x2": 38, "bbox_y2": 30,
                  "class": label, "test": i % 2}
        for f in fields:
            v = values[f]
            ann[0, i][f] = v if isinstance(v, str) else np.array([[v]], dtype=np.uint8)
    class_names = np.empty((1, max(labels, default=0)), dtype=object)
    for c in range(class_names.shape[1]):
        class_names[0, c] = f"Car Model {c + 1} 2012"
    scipy.io.savemat(str(path), {"annotations": ann, "class_names": class_names})
    return path


def make_cars196(root: Path, n_classes: int = 4, per_class: int = 3) -> Path:
    """``root/cars_annos.mat`` and ``root/car_ims/000001.jpg, ...`` (images interleaved by class)."""
    relpaths, labels = [], []
    for i in range(n_classes * per_class):
        rel = f"car_ims/{i + 1:06d}.jpg"
        write_image(root / rel, i)
        relpaths.append(rel)
        labels.append(i % n_classes + 1)
    write_cars_annos(root / "cars_annos.mat", relpaths, labels)
    return root


#: Fields of the devkit's ``cars_train_annos.mat`` / ``cars_test_annos_withlabels.mat``, in the official order.
CARS_DEVKIT_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")


def write_cars_devkit_annos(path: Path, fnames: list[str], labels: list[int]) -> Path:
    """A devkit annotation file: a 1 x N struct array ``annotations`` (``fname``, ``class`` and the boxes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ann = np.zeros((1, len(fnames)), dtype=[(f, "O") for f in CARS_DEVKIT_FIELDS])
    for i, (name, label) in enumerate(zip(fnames, labels)):
        values = {"bbox_x1": 1, "bbox_y1": 2, "bbox_x2": 38, "bbox_y2": 30, "class": label, "fname": name}
        for f in CARS_DEVKIT_FIELDS:
            v = values[f]
            ann[0, i][f] = v if isinstance(v, str) else np.array([[v]], dtype=np.uint8)
    scipy.io.savemat(str(path), {"annotations": ann})
    return path


def make_cars196_devkit(root: Path, n_classes: int = 4, per_class: int = 3, *, test_annos_in_devkit: bool = False
                        ) -> Path:
    """The devkit layout of the images ``make_cars196`` writes (same pixels, same classes): image ``i`` goes to
    ``cars_test/`` when its ``cars_annos.mat`` ``test`` flag (``i % 2``) is set, else to ``cars_train/``, numbered
    ``00001.jpg`` ... in each; ``devkit/cars_train_annos.mat``, ``devkit/cars_meta.mat`` and
    ``cars_test_annos_withlabels.mat`` (in ``devkit/`` with ``test_annos_in_devkit``), as the devkit ships them."""
    parts: dict[str, tuple[list[str], list[int]]] = {"cars_train": ([], []), "cars_test": ([], [])}
    for i in range(n_classes * per_class):
        folder = "cars_test" if i % 2 else "cars_train"
        names, labels = parts[folder]
        names.append(f"{len(names) + 1:05d}.jpg")
        labels.append(i % n_classes + 1)
        write_image(root / folder / names[-1], i)
    write_cars_devkit_annos(root / "devkit" / "cars_train_annos.mat", *parts["cars_train"])
    test_dir = root / "devkit" if test_annos_in_devkit else root
    write_cars_devkit_annos(test_dir / "cars_test_annos_withlabels.mat", *parts["cars_test"])
    class_names = np.empty((1, n_classes), dtype=object)
    for c in range(n_classes):
        class_names[0, c] = f"Car Model {c + 1} 2012"
    scipy.io.savemat(str(root / "devkit" / "cars_meta.mat"), {"class_names": class_names})
    return root


def make_sop(root: Path, n_train_classes: int = 3, n_test_classes: int = 3, per_class: int = 2) -> Path:
    """``root/Ebay_train.txt``, ``Ebay_test.txt``, ``Ebay_info.txt`` and ``<category>_final/*.JPG``.

    Train classes are ``1 .. n_train_classes``, test classes follow (as in the official files)."""
    rows: dict[str, list[str]] = {"train": [], "test": []}
    image_index = 0
    for c in range(1, n_train_classes + n_test_classes + 1):
        split = "train" if c <= n_train_classes else "test"
        super_id = (c - 1) % len(SOP_CATEGORIES) + 1
        for j in range(per_class):
            image_index += 1
            rel = f"{SOP_CATEGORIES[super_id - 1]}_final/{111085122800 + c}_{j}.JPG"
            write_image(root / rel, image_index)
            rows[split].append(f"{len(rows[split]) + 1} {c} {super_id} {rel}")
    header = "image_id class_id super_class_id path"
    for split, lines in rows.items():
        (root / f"Ebay_{split}.txt").write_text("\n".join([header, *lines]) + "\n")
    info = [f"{i} {line.split(' ', 1)[1]}" for i, line in enumerate(rows["train"] + rows["test"], 1)]
    (root / "Ebay_info.txt").write_text("\n".join([header, *info]) + "\n")
    return root


def make_inshop(root: Path, n_train_items: int = 3, n_test_items: int = 3, per_item: int = 3) -> Path:
    """``root/list_eval_partition.txt`` and ``root/img/<GENDER>/<Category>/id_XXXXXXXX/*.jpg``.

    Items ``id_00000001, id_00000003, ...`` (numbers with gaps, like the official ids); the first
    ``n_train_items`` are train; a test item's first image is a query, its others gallery."""
    rows = []
    for k in range(n_train_items + n_test_items):
        item_id = f"id_{2 * k + 1:08d}"
        gender, category = ("WOMEN", "Dresses") if k % 2 == 0 else ("MEN", "Denim")
        for j in range(per_item):
            rel = f"img/{gender}/{category}/{item_id}/{j + 1:02d}_{j % 4 + 1}_front.jpg"
            write_image(root / rel, len(rows))
            status = "train" if k < n_train_items else ("query" if j == 0 else "gallery")
            rows.append((rel, item_id, status))
    lines = [str(len(rows)), "image_name item_id evaluation_status"]
    lines += [f"{rel:<60}{item_id:<20}{status}" for rel, item_id, status in rows]
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def make_image_folder(root: Path, n_classes: int = 4, per_class: int = 3, *, split_dirs: bool = False) -> Path:
    """``root/<class>/*.jpg`` (class names ``class_a``, ``class_b``, ...), or with ``split_dirs``
    ``root/train/<class>/`` for the first half of the classes and ``root/test/<class>/`` for the rest."""
    for c in range(n_classes):
        name = f"class_{chr(ord('a') + c)}"
        folder = root / ("train" if c < n_classes // 2 else "test") / name if split_dirs else root / name
        for j in range(per_class):
            write_image(folder / f"{j}.{'png' if j % 2 else 'jpg'}", c * per_class + j)
    return root


def make_csv(path: Path, n_classes: int = 4, per_class: int = 2, *, split: bool = False,
             string_labels: bool = True) -> Path:
    """A CSV ``path,label[,split]`` next to an ``images/`` folder, relative paths; labels are
    names (``cat_0`` ...) or integers (``10, 20, ...``); with ``split`` the first half of the
    classes is train."""
    lines = ["path,label,split" if split else "path,label"]
    for c in range(n_classes):
        label = f"cat_{c}" if string_labels else str(10 * (c + 1))
        for j in range(per_class):
            rel = f"images/{c}_{j}.jpg"
            write_image(path.parent / rel, c * per_class + j)
            row = f"{rel},{label}"
            lines.append(row + (",train" if c < n_classes // 2 else ",test") * split)
    path.write_text("\n".join(lines) + "\n")
    return path


def make_oml(path: Path, n_classes: int = 6, per_class: int = 3, *, split: str = "dml", query_gallery: bool = True,
             categories: tuple[str, ...] = ("shoes", "bags"), absolute: bool = False,
             image_dir: Path | None = None, image_root: Path | None = None) -> Path:
    """open-metric-learning's ``df.csv`` as OML writes it (pandas ``to_csv``: ``True``/``False`` flags, empty cells
    where training rows have none, the box columns), with images under ``image_dir`` (default: ``images/`` beside
    the file), named relative to ``image_root`` (default: the file's folder), or by absolute path with ``absolute``.

    ``split="dml"``: the first half of the classes train, the rest validation; ``"classification"``: every class on
    both sides (OML's CUB and Cars converters). Validation rows: a class's first image a query and the others
    gallery with ``query_gallery``, else every row both (the test set against itself). Labels ``0 .. C-1``."""
    image_dir = image_dir if image_dir is not None else path.parent / "images"
    lines = ["label,path,split,is_query,is_gallery,category,x_1,x_2,y_1,y_2"]
    for c in range(n_classes):
        for j in range(per_class):
            image = write_image(image_dir / f"{c}_{j}.jpg", 100 + c * per_class + j)
            rel = str(image) if absolute else image.relative_to(image_root or path.parent).as_posix()
            train = c < n_classes // 2 if split == "dml" else j == 0
            if train:
                flags = ","
            elif query_gallery:
                flags = "True,False" if j == (0 if split == "dml" else 1) else "False,True"
            else:
                flags = "True,True"
            lines.append(f"{c},{rel},{'train' if train else 'validation'},{flags},{categories[c % len(categories)]},"
                         f"1,39,1,31")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def make_cub_attributes(root: Path, n_classes: int = 4, per_class: int = 3, n_attributes: int = 5) -> Path:
    """``make_cub`` plus CUB's official attribute files: ``attributes/attributes.txt``,
    ``attributes/class_attribute_labels_continuous.txt`` (percentages) and ``attributes/image_attribute_labels.txt``
    (``<image_id> <attribute_id> <is_present> <certainty_id> <time>``), values derived from the ids."""
    make_cub(root, n_classes, per_class)
    folder = root / "CUB_200_2011" / "attributes"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "attributes.txt").write_text("".join(f"{a} has_part::value_{a}\n" for a in range(1, n_attributes + 1)))
    rows = [" ".join(f"{(7.5 * c + 11.0 * a) % 100:.6f}" for a in range(1, n_attributes + 1))
            for c in range(1, n_classes + 1)]
    (folder / "class_attribute_labels_continuous.txt").write_text("\n".join(rows) + "\n")
    lines = [f"{i} {a} {(i + a) % 2} {1 + (i * a) % 4} {1.5 * a:.3f}"
             for i in range(1, n_classes * per_class + 1) for a in range(1, n_attributes + 1)]
    (folder / "image_attribute_labels.txt").write_text("\n".join(lines) + "\n")
    return root
