"""Datasets of the benchmark: loaders for CUB-200-2011, Cars196, Stanford Online Products, In-shop Clothes,
the user's own folder, CSV or open-metric-learning df.csv and the built-in generated dataset (``load_dataset``),
the ``DataSource`` they return, and the class-disjoint train/validation/test splits (``make_splits``).
"""

from __future__ import annotations

from benchmark.data.base import DataSource
from benchmark.data.catalog import load_dataset
from benchmark.data.splits import make_splits

__all__ = ["DataSource", "load_dataset", "make_splits"]
