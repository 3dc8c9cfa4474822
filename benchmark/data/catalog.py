"""The dataset catalog: one name per dataset, ``load_dataset(name, root=..., **options)`` for each.

``cub200``, ``cars196``, ``sop``, ``inshop``: the four benchmark datasets in their official
on-disk layouts; ``folder`` and ``csv``: the user's own images; ``oml``: open-metric-learning's ``df.csv``;
``features``: the user's own precomputed embeddings (the frozen regime implied); ``paired_features``: two
modalities' precomputed embeddings (cross-modal retrieval, ``benchmark.data.paired_features``); ``builtin``:
the generated dataset
that needs no download. ``root`` and ``options`` are a dataset entry's ``root`` and ``options``
config keys; every option is checked against the loader's keyword arguments.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.data.base import DataSource
from benchmark.data.cars196 import load_cars196
from benchmark.data.cub import load_cub200
from benchmark.data.custom import load_csv, load_image_folder
from benchmark.data.features import load_features
from benchmark.data.inshop import load_inshop
from benchmark.data.oml import CLASS_SPLITS, load_oml
from benchmark.data.paired_features import PAIRED_FEATURES_LAYOUT, load_paired_features
from benchmark.data.sop import load_sop
from benchmark.errors import ConfigError

#: Datasets read from disk: loader (called as ``loader(root, **options)``) and what ``root`` is.
_FILE_DATASETS: dict[str, tuple[Callable[..., DataSource], str]] = {
    "cub200": (load_cub200, "the folder holding CUB_200_2011/ (expected <root>/CUB_200_2011/images)"),
    "cars196": (load_cars196, "the folder holding cars_annos.mat and car_ims/, or the devkit layout (cars_train/, "
                "cars_test/, devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat)"),
    "sop": (load_sop, "the Stanford_Online_Products folder holding Ebay_train.txt and Ebay_test.txt"),
    "inshop": (load_inshop, "the In-shop folder holding list_eval_partition.txt and img/"),
    "folder": (load_image_folder, "a folder with one sub-folder of images per class"),
    "csv": (load_csv, "a CSV file with header path,label and an optional split column"),
    "oml": (load_oml, "open-metric-learning's df.csv (columns label, path, split, is_query, is_gallery, optional "
                      "category)"),
    "features": (load_features, "an .npz file (or a folder of .npy files) with features, labels and optional split"),
    "paired_features": (load_paired_features, PAIRED_FEATURES_LAYOUT),
}
DATASETS = (*_FILE_DATASETS, "builtin")
#: Datasets read from a list file the user wrote: they take ``image_root`` and ``class_split``.
LIST_DATASETS = ("csv", "oml")
#: Keyword arguments of the list loaders that are dataset keys of their own, not ``options``.
LIST_KEYS = ("image_root", "class_split")


def _check_options(name: str, loader: Callable[..., Any], options: dict, *, skip_first: bool,
                   where: str = "") -> None:
    params = list(inspect.signature(loader).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    if skip_first:
        params = params[1:]
    known = [p.name for p in params if p.name not in LIST_KEYS
             and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for key in options:
        if key not in known:
            at = f"config key '{where}.options.{key}': " if where else ""
            raise ConfigError(f"{at}unknown option {key!r} for dataset {name!r} "
                              f"(known options: {', '.join(known) or 'none'})")


#: The built-in dataset's options for its second modality (``benchmark.data.builtin_paired``).
_PAIRED_OPTIONS = ("second_modality", "second_per_class")
#: Options every file dataset's loader takes: output size and the resize before cropping (pixels).
MAX_IMAGE_OPTION = 4096


def check_list_keys(name: object, where: str, *, image_root: object = None, class_split: object = "file") -> None:
    """``image_root`` and ``class_split`` are for list files only (``LIST_DATASETS``), of the right type and value."""
    for key, value, default in (("image_root", image_root, None), ("class_split", class_split, "file")):
        if value != default and name not in LIST_DATASETS:
            raise ConfigError(f"config key '{where}.{key}': only a list-file dataset ({', '.join(LIST_DATASETS)}) "
                              f"takes it, not {name!r} (remove the key)")
    if image_root is not None and (not isinstance(image_root, str) or not image_root.strip()):
        raise ConfigError(f"config key '{where}.image_root' must be a folder, got {image_root!r}")
    if class_split not in CLASS_SPLITS:
        raise ConfigError(f"config key '{where}.class_split' must be one of {', '.join(CLASS_SPLITS)}, "
                          f"got {class_split!r}")


def check_dataset_entry(name: object, root: object, options: dict, where: str, *, image_root: object = None,
                        class_split: object = "file", split_manifest: object = None) -> None:
    """Check one ``datasets[i]`` entry without reading anything: a known name, a root exactly when
    the dataset is read from disk, known options of the right type and range, ``image_root`` and ``class_split``
    for list files only, ``split_manifest`` for image files only. ``ConfigError`` names the dotted key (``where``
    is e.g. ``datasets[0]``)."""
    if name not in DATASETS:
        raise ConfigError(f"config key '{where}.name': unknown dataset {name!r} (known datasets: "
                          f"{', '.join(DATASETS)})")
    check_list_keys(name, where, image_root=image_root, class_split=class_split)
    if split_manifest is not None and (name in ("builtin", "features") or not isinstance(split_manifest, str)
                                       or not split_manifest.strip()):
        raise ConfigError(f"config key '{where}.split_manifest': expected a manifest file written by dml-bench "
                          f"prepare --write-manifest for a dataset of image files, got {split_manifest!r} for "
                          f"dataset {name!r}")
    if name == "builtin":
        if root is not None:
            raise ConfigError(f"config key '{where}.root': dataset 'builtin' is generated and takes no root "
                              f"(found {str(root)!r}; remove the key)")
        from benchmark.data.builtin import load_builtin
        from benchmark.data.builtin_paired import check_paired_options

        _check_options(name, load_builtin, {k: v for k, v in options.items() if k not in _PAIRED_OPTIONS},
                       skip_first=False, where=where)
        check_paired_options(options, where=f"{where}.options")
        return
    loader, what = _FILE_DATASETS[name]
    if root is None or not str(root).strip():
        raise ConfigError(f"config key '{where}.root': dataset {name!r} needs a location: {what} (in the config "
                          f"file, or --set {where}.root=PATH)")
    if name == "cub200" and "second_modality" in options:
        from benchmark.data.cub_attributes import CUB_ATTRIBUTE_MODALITIES

        if options["second_modality"] not in CUB_ATTRIBUTE_MODALITIES:
            raise ConfigError(f"config key '{where}.options.second_modality' must be one of "
                              f"{', '.join(CUB_ATTRIBUTE_MODALITIES)} for cub200, got {options['second_modality']!r}")
        options = {k: v for k, v in options.items() if k != "second_modality"}
    _check_options(name, loader, options, skip_first=True, where=where)
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_IMAGE_OPTION:
            raise ConfigError(f"config key '{where}.options.{key}' must be an integer in [1, {MAX_IMAGE_OPTION}] "
                              f"(pixels), got {value!r}")


def load_dataset(name: str, *, root: str | Path | None = None, image_root: str | Path | None = None,
                 class_split: str = "file", **options: Any) -> DataSource:
    """Load dataset ``name`` (one of ``DATASETS``) from ``root`` with the loader's ``options``; a list file
    (``LIST_DATASETS``) also takes ``image_root`` and ``class_split``.

    Raises ``ConfigError`` for an unknown name or option, or a file dataset without ``root``;
    the loaders raise ``DatasetError`` for a missing or malformed dataset on disk.
    """
    check_list_keys(name, "dataset", image_root=image_root, class_split=class_split)
    if name == "builtin":
        from benchmark.data.builtin import load_builtin
        from benchmark.data.builtin_paired import load_builtin_paired

        if root is not None:
            raise ConfigError(f"dataset 'builtin' is generated and takes no root (found root {str(root)!r}; "
                              f"remove the dataset's root key)")
        _check_options(name, load_builtin, {k: v for k, v in options.items() if k not in _PAIRED_OPTIONS},
                       skip_first=False)
        if options.get("second_modality") is not None:
            return load_builtin_paired(**options)
        return load_builtin(**options)
    if name not in _FILE_DATASETS:
        raise ConfigError(f"unknown dataset {name!r} (known datasets: {', '.join(DATASETS)})")
    loader, what = _FILE_DATASETS[name]
    if root is None or str(root) == "":
        raise ConfigError(f"dataset {name!r} needs a location: set its root key (datasets[].root) to {what}")
    if name == "cub200" and "second_modality" in options:  # CUB's attribute files as a second modality
        from benchmark.data.cub_attributes import load_cub200_paired

        rest = {k: v for k, v in options.items() if k != "second_modality"}
        _check_options(name, loader, rest, skip_first=True)
        return load_cub200_paired(Path(root).expanduser(), second_modality=options["second_modality"], **rest)
    _check_options(name, loader, options, skip_first=True)
    if name in LIST_DATASETS:
        options = {**options, "image_root": image_root, "class_split": class_split}
    return loader(Path(root).expanduser(), **options)
