"""What a run keeps of what it learned (``protocol.save`` / ``dml-bench run --save``), and reading it back.

Per dataset, method and repeat, under the run folder::

    artifacts/<dataset>/<method>/repeat<k>/embeddings.npz      (save: embeddings or both)
    artifacts/<dataset>/<method>/repeat<k>/fold<i>.safetensors (save: models or both)

``embeddings.npz`` holds the test embeddings of that repeat, as float32, with their labels:
``labels`` (the test set's, or the query set's), ``fold<i>`` (fold model i's embeddings, as the model gives
them) and ``concatenated`` (the folds' L2-normalised embeddings joined, what the concatenated row is scored
on); a query/gallery dataset adds ``gallery_labels``, ``fold<i>_gallery`` and ``concatenated_gallery``, and
a dataset with categories ``query_categories`` (each query's, as text; for the per-category metrics).
``threshold_fold<i>`` is fold model i's verification threshold, chosen on its own validation classes (so that
TAR@FAR is re-scored as the run scored it), and ``meta`` a JSON string (dataset, method, repeat, seed, the
configuration's parameters). The Pretrained row (and the raw-trunk row) are kept as ``pretrained/repeat0``
(``raw_trunk/repeat0``) with embeddings only. ``dml-bench evaluate RUN`` re-scores them
(:mod:`benchmark.protocol.reevaluate`).

``fold<i>.safetensors`` is the fold model's ``state_dict`` at its best validation checkpoint (the weights the
test evaluation used), with metadata (method, parameters, fold, best validation MAP@R, trunk, embedding size);
in the frozen regime the model is the embedder on cached trunk outputs (and the trained last stage with
``frozen.cut: before_last``). Every file is written atomically (``benchmark.io``): it is complete or absent.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from benchmark.constants import CONCATENATED
from benchmark.errors import BenchmarkError
from benchmark.evaluation.embed import TestEmbeddings
from benchmark.io import atomic_write

#: ``protocol.save`` values.
SAVE_MODES = ("none", "embeddings", "models", "both")
ARTIFACTS_DIR = "artifacts"
EMBEDDINGS_FILE = "embeddings.npz"


def saves_embeddings(mode: str) -> bool:
    return mode in ("embeddings", "both")


def saves_models(mode: str) -> bool:
    return mode in ("models", "both")


def repeat_dir(run_dir: str | os.PathLike, dataset: str, method: str, repeat: int) -> Path:
    """The folder of one repeat's artifacts."""
    return Path(run_dir) / ARTIFACTS_DIR / dataset / method / f"repeat{int(repeat)}"


def embeddings_arrays(emb: TestEmbeddings, meta: dict) -> dict[str, np.ndarray]:
    """The arrays of ``embeddings.npz`` (see the module docstring)."""
    arrays: dict[str, np.ndarray] = {"labels": np.asarray(emb.query_labels)}
    for name, q in emb.query.items():
        arrays[name] = np.asarray(q, dtype=np.float32)
    if emb.has_gallery:
        arrays["gallery_labels"] = np.asarray(emb.gallery_labels)
        for name, g in emb.gallery.items():
            arrays[f"{name}_gallery"] = np.asarray(g, dtype=np.float32)
    if emb.query_categories is not None:  # (as text: loaded without pickle)
        arrays["query_categories"] = np.asarray(emb.query_categories, dtype=str)
    for name, t in emb.thresholds.items():
        arrays[f"threshold_{name}"] = np.asarray(float(t), dtype=np.float64)
    arrays["meta"] = np.asarray(json.dumps(meta, sort_keys=True, default=str))
    return arrays


def write_embeddings(path: Path, emb: TestEmbeddings, meta: dict) -> Path:
    """Write ``emb`` to ``path`` (an ``.npz``) atomically."""
    arrays = embeddings_arrays(emb, meta)

    def write(tmp: Path) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # (np.savez on a path would append .npz to the temporary file's name)
        tmp.write_bytes(buffer.getvalue())

    return atomic_write(path, write)


def read_embeddings(path: str | os.PathLike) -> tuple[TestEmbeddings, dict]:
    """The ``TestEmbeddings`` and metadata of an ``embeddings.npz``; one ``BenchmarkError`` line when it is
    missing, unreadable or lacks its arrays."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise BenchmarkError(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"cannot read {path}: {(str(exc).splitlines() or [type(exc).__name__])[0]} "
                             f"(expected an .npz written by dml-bench run --save embeddings)") from None
    if "labels" not in arrays:
        raise BenchmarkError(f"{path} has no array 'labels' (expected an .npz written by dml-bench run --save "
                             f"embeddings)")
    names = [k for k in arrays if k.startswith("fold") and not k.endswith("_gallery")]
    names.sort(key=lambda k: int(k[4:]) if k[4:].isdigit() else -1)
    if CONCATENATED in arrays:
        names.append(CONCATENATED)
    if not names:
        raise BenchmarkError(f"{path} holds no embedding (expected arrays fold<i> or concatenated)")
    gallery = "gallery_labels" in arrays
    for name in names:
        if gallery and f"{name}_gallery" not in arrays:
            raise BenchmarkError(f"{path} has gallery_labels but no array {name}_gallery")
    meta = json.loads(str(arrays["meta"])) if "meta" in arrays else {}
    emb = TestEmbeddings(query_labels=arrays["labels"], query={n: arrays[n] for n in names},
                         gallery_labels=arrays.get("gallery_labels"),
                         gallery={n: arrays[f"{n}_gallery"] for n in names} if gallery else {},
                         thresholds={k[len("threshold_"):]: float(v) for k, v in arrays.items()
                                     if k.startswith("threshold_")},
                         query_categories=arrays.get("query_categories"))
    return emb, meta


def write_model(path: Path, model, metadata: dict) -> Path:
    """Write ``model``'s ``state_dict`` to ``path`` (``.safetensors``) atomically, with ``metadata``
    (values as JSON strings, as safetensors keeps only strings)."""
    from safetensors.torch import save_model

    meta = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str) for k, v in metadata.items()}
    return atomic_write(path, lambda tmp: save_model(model, str(tmp), metadata=meta))


@dataclass(frozen=True)
class ArtifactStore:
    """Where a worker keeps its repeats' artifacts (``run_dir/artifacts``), and what it keeps (``mode``)."""

    run_dir: Path
    mode: str

    def __post_init__(self) -> None:
        if self.mode not in SAVE_MODES:
            raise BenchmarkError(f"--save must be one of {', '.join(SAVE_MODES)}, got {self.mode!r}")

    def save(self, *, dataset: str, method: str, repeat: int, emb: TestEmbeddings,
             models: Optional[Sequence] = None, meta: Optional[dict] = None,
             fold_meta: Optional[Sequence[dict]] = None) -> list[Path]:
        """Keep one repeat's embeddings and (when asked and given) its fold models; return the files written."""
        folder = repeat_dir(self.run_dir, dataset, method, repeat)
        meta = {"dataset": dataset, "method": method, "repeat": int(repeat), **(meta or {})}
        written = []
        if saves_embeddings(self.mode):
            written.append(write_embeddings(folder / EMBEDDINGS_FILE, emb, meta))
        if saves_models(self.mode) and models is not None:
            for i, model in enumerate(models):
                extra = fold_meta[i] if fold_meta is not None else {}
                written.append(write_model(folder / f"fold{i}.safetensors", model, {**meta, "fold": i, **extra}))
        return written
