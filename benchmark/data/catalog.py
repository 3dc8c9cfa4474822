"""The dataset catalog: one name per dataset, ``load_dataset(name, root=..., **options)`` for each.

``cub200``, ``cars196``, ``sop``, ``inshop``: the four benchmark datasets in their official
on-disk layouts; ``folder`` and ``csv``: the user's own images; ``features``: the user's own precomputed
embeddings (the frozen regime implied); ``builtin``: the generated dataset
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
from benchmark.data.sop import load_sop
from benchmark.errors import ConfigError

#: Datasets read from disk: loader (called as ``loader(root, **options)``) and what ``root`` is.
_FILE_DATASETS: dict[str, tuple[Callable[..., DataSource], str]] = {
    "cub200": (load_cub200, "the folder holding CUB_200_2011/ (expected <root>/CUB_200_2011/images)"),
    "cars196": (load_cars196, "the folder holding cars_annos.mat and car_ims/"),
    "sop": (load_sop, "the Stanford_Online_Products folder holding Ebay_train.txt and Ebay_test.txt"),
    "inshop": (load_inshop, "the In-shop folder holding list_eval_partition.txt and img/"),
    "folder": (load_image_folder, "a folder with one sub-folder of images per class"),
    "csv": (load_csv, "a CSV file with header path,label and an optional split column"),
    "features": (load_features, "an .npz file (or a folder of .npy files) with features, labels and optional split"),
}
DATASETS = (*_FILE_DATASETS, "builtin")


def _check_options(name: str, loader: Callable[..., Any], options: dict, *, skip_first: bool) -> None:
    params = list(inspect.signature(loader).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    if skip_first:
        params = params[1:]
    known = [p.name for p in params
             if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for key in options:
        if key not in known:
            raise ConfigError(f"unknown option {key!r} for dataset {name!r} "
                              f"(known options: {', '.join(known) or 'none'})")


def load_dataset(name: str, *, root: str | Path | None = None, **options: Any) -> DataSource:
    """Load dataset ``name`` (one of ``DATASETS``) from ``root`` with the loader's ``options``.

    Raises ``ConfigError`` for an unknown name or option, or a file dataset without ``root``;
    the loaders raise ``DatasetError`` for a missing or malformed dataset on disk.
    """
    if name == "builtin":
        from benchmark.data.builtin import load_builtin

        if root is not None:
            raise ConfigError(f"dataset 'builtin' is generated and takes no root (found root {str(root)!r}; "
                              f"remove the dataset's root key)")
        _check_options(name, load_builtin, options, skip_first=False)
        return load_builtin(**options)
    if name not in _FILE_DATASETS:
        raise ConfigError(f"unknown dataset {name!r} (known datasets: {', '.join(DATASETS)})")
    loader, what = _FILE_DATASETS[name]
    if root is None or str(root) == "":
        raise ConfigError(f"dataset {name!r} needs a location: set its root key (datasets[].root) to {what}")
    _check_options(name, loader, options, skip_first=True)
    return loader(Path(root).expanduser(), **options)
