"""The run manifest, ``manifest.json`` beside ``results.csv``: what the result files hold, so reporting reads it.

Written (atomically) with every export of the result files; reporting — tables, plots, report.html and
the published comparison — takes the embeddings' dimensions and the metrics' labels, units and
directions from it instead of guessing them::

    {
      "format": 1,
      "folds": 2,
      "repeats": 5,
      "pooling": "repeats",
      "embeddings": {"fold0": 128, "fold1": 128, "concatenated": 256},
      "metrics": {"map_at_r": {"label": "MAP@R", "unit": "fraction", "better": "higher"},
                  "far_at_threshold": {"label": "test FAR (target 1e-3)", "unit": "fraction", "better": "lower"},
                  ...}
    }

``pooling`` says what a method's row pools (``protocol.pooling``): ``repeats``, its retrainings (``repeat``
0..repeats-1 in ``results.csv``), or ``with_best_trial``, those and the best search trial (``repeat`` -1), as the
reality check's published report did; a manifest without the key was written before the choice existed
(``repeats``). ``embeddings`` are the ``embedding`` values of ``results.csv`` with their dimension (each fold model's,
and the folds' embeddings concatenated); ``metrics`` describes every metric the run's evaluation can
report (:func:`benchmark.metric_catalog.describe_metrics`). A run folder written before manifests
existed has none: :func:`read_manifest` says so in one line (running the same ``dml-bench run`` again
rewrites the result files, manifest included, without redoing any finished unit).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from benchmark.constants import CONCATENATED, POOLINGS, fold_embedding
from benchmark.errors import BenchmarkError
from benchmark.io import atomic_write_json
from benchmark.metric_catalog import MetricInfo, describe_metrics, split_category

MANIFEST_NAME = "manifest.json"
FORMAT = 1
_BETTER = {True: "higher", False: "lower"}


@dataclass(frozen=True)
class RunManifest:
    """Folds, repeats, each embedding's dimension and each metric's description of one run."""

    folds: int
    repeats: int
    dims: Mapping[str, int]
    metrics: Mapping[str, MetricInfo]
    #: What a method's row pools (``POOLINGS``): its repeats, or those and the best search trial.
    pooling: str = POOLINGS[0]
    #: Where it was read from (named in errors).
    source: str = MANIFEST_NAME

    def dim(self, embedding: str) -> int:
        """The dimension of ``embedding`` (``fold<i>`` or ``concatenated``)."""
        if embedding not in self.dims:
            raise BenchmarkError(f"{self.source} gives no dimension for embedding {embedding!r} "
                                 f"(it describes: {', '.join(self.dims)})")
        return self.dims[embedding]

    def fold_dim(self) -> int:
        """The dimension of every fold model's embedding (the "separated" figure's)."""
        dims = {d for e, d in self.dims.items() if e != CONCATENATED}
        if len(dims) != 1:
            raise BenchmarkError(f"{self.source}: the fold models' dimensions differ or are missing: {self.dims}")
        return dims.pop()

    def metric(self, name: str) -> MetricInfo:
        """The description of metric ``name`` (a per-category metric, ``map_at_r@bicycle``, is described as its
        metric, labelled with the category)."""
        base, category = split_category(name)
        if name not in self.metrics and category is not None and base in self.metrics:
            info = self.metrics[base]
            return MetricInfo(f"{info.label} [{category}]", info.unit, info.higher_is_better)
        if name not in self.metrics:
            raise BenchmarkError(f"{self.source} does not describe metric {name!r} (it describes: "
                                 f"{', '.join(self.metrics)})")
        return self.metrics[name]

    def to_json(self) -> dict:
        return {"format": FORMAT, "folds": self.folds, "repeats": self.repeats, "pooling": self.pooling,
                "embeddings": dict(self.dims),
                "metrics": {k: {"label": m.label, "unit": m.unit, "better": _BETTER[m.higher_is_better]}
                            for k, m in self.metrics.items()}}

    @classmethod
    def from_json(cls, data: object, source: str) -> "RunManifest":
        """Parse :meth:`to_json`'s form; ``BenchmarkError`` naming ``source`` and the bad key otherwise."""
        def bad(what: str) -> BenchmarkError:
            return BenchmarkError(f"{source}: {what}")

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise bad(f"not a run manifest of format {FORMAT}")
        for key in ("folds", "repeats"):
            if not isinstance(data.get(key), int) or isinstance(data.get(key), bool) or data[key] < 1:
                raise bad(f"'{key}' must be a positive integer, got {data.get(key)!r}")
        pooling = data.get("pooling", POOLINGS[0])
        if pooling not in POOLINGS:
            raise bad(f"'pooling' must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        dims = data.get("embeddings")
        if not isinstance(dims, dict) or not dims or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in dims.values()):
            raise bad(f"'embeddings' must map each embedding to a positive dimension, got {dims!r}")
        raw = data.get("metrics")
        if not isinstance(raw, dict):
            raise bad(f"'metrics' must be a mapping, got {raw!r}")
        metrics = {}
        for name, m in raw.items():
            if (not isinstance(m, dict) or not isinstance(m.get("label"), str) or not isinstance(m.get("unit"), str)
                    or m.get("better") not in _BETTER.values()):
                raise bad(f"metric {name!r} needs a label, a unit and better: higher or lower, got {m!r}")
            try:
                metrics[name] = MetricInfo(m["label"], m["unit"], m["better"] == "higher")
            except BenchmarkError as exc:
                raise bad(f"metric {name!r}: {exc}") from None
        return cls(folds=data["folds"], repeats=data["repeats"], dims=dims, metrics=metrics, pooling=pooling,
                   source=source)


def manifest_for(*, folds: int, repeats: int, embedding_dim: int, recall_at: Iterable[Sequence[int]],
                 far: Optional[float], pooling: str = POOLINGS[0], clustering: bool = False) -> RunManifest:
    """The manifest of a run of ``folds`` fold models of ``embedding_dim`` each; ``recall_at`` holds
    each dataset's Recall@K list, ``far`` the verification false-accept rate (None: off), ``pooling`` what a
    method's row pools."""
    dims = {fold_embedding(i): embedding_dim for i in range(folds)}
    dims[CONCATENATED] = folds * embedding_dim
    ks = [k for per_dataset in recall_at for k in per_dataset]
    return RunManifest(folds=folds, repeats=repeats, dims=dims,
                       metrics=describe_metrics(recall_at=ks, far=far, clustering=clustering), pooling=pooling)


def write_manifest(run_dir: str | os.PathLike, manifest: RunManifest) -> Path:
    """Write ``run_dir/manifest.json`` atomically; return its path."""
    return atomic_write_json(Path(run_dir) / MANIFEST_NAME, manifest.to_json())


def read_manifest(run_dir: str | os.PathLike) -> RunManifest:
    """Read ``run_dir/manifest.json``; a missing or malformed file raises one ``BenchmarkError`` line."""
    path = Path(run_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchmarkError(f"{path} does not exist: the run folder predates run manifests (run the same "
                             f"'dml-bench run' command again to rewrite its result files with one)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"cannot read run manifest {path}: {exc}") from None
    return RunManifest.from_json(data, str(path))
