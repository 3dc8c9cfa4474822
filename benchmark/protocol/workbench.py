"""Everything a unit of work needs, prepared once per process: datasets, folds, models, methods.

``Workbench.train_folds`` trains one configuration of one method on the folds of one dataset;
``evaluate`` runs the test evaluation (separated and concatenated). The protocol's units (search
trial, repeat, pretrained row) are thin layers over these two calls. In the frozen regime
(``training.regime: frozen``, or a ``features`` dataset) the dataset's images are replaced by cached
trunk outputs when it is prepared (``benchmark.protocol.frozen``), and its models by cached-trunk models.
With a ``checkpoint_root`` every unit's training is checkpointed there and resumed from it when the unit
is taken up again (``benchmark.protocol.unit_checkpoint``).
A paired dataset (a second modality) trains and tests two-tower models (``benchmark.protocol.cross_modal``).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from benchmark.config import BenchmarkConfig, DatasetConfig
from benchmark.constants import CONCATENATED
from benchmark.data.base import DataSource, ImageSet
from benchmark.data.paired import paired_of
from benchmark.data.splits import Splits, check_evaluable, make_splits
from benchmark.errors import DatasetError
from benchmark.evaluation.embed import TestEmbeddings, embed_test, score_embeddings
from benchmark.methods import MethodContext, get_method
from benchmark.methods.dataset_params import params_for
from benchmark.models.build import ModelFactory
from benchmark.models.raw_trunk import RawTrunk
from benchmark.protocol.faults import kill_point
from benchmark.protocol.cross_modal import (PairedData, PairedTest, evaluate_paired, paired_folds, train_paired_fold,
                                            two_tower)
from benchmark.protocol.frozen import prepare_frozen
from benchmark.protocol.seeds import derive_seed
from benchmark.training.threads import torch_threads
from benchmark.protocol.unit_checkpoint import UnitCheckpoint, unit_folder
from benchmark.training.trainer import DIVERGED, FoldResult, train_fold, trained_model


log = logging.getLogger(__name__)


class IterationCapReached(Exception):
    """``train_folds`` stopped at its ``max_iterations``: a fold was cut short, or one was left untrained."""


def relabel(images: ImageSet) -> ImageSet:
    """A copy of ``images`` with labels mapped to 0..C-1 (proxy losses index their proxies by label)."""
    out = images.subset(np.arange(len(images)))
    out.labels = np.unique(images.labels, return_inverse=True)[1].astype(np.int64)
    return out


@dataclass
class FoldData:
    train: ImageSet
    train_eval: ImageSet
    val: ImageSet
    num_classes: int


@dataclass
class PreparedDataset:
    config: DatasetConfig
    source: DataSource
    splits: Splits
    folds: list[FoldData]
    #: Builds the fold models: ``new(seed)`` (the trunk and embedder, or a cached trunk in the frozen regime).
    models: object = None
    #: The dataset as loaded from its files (``source`` before the frozen regime replaced its images).
    files: Optional[DataSource] = None
    #: The images, where the frozen regime replaced them by cached trunk outputs in ``source`` (else None): the
    #: raw-trunk row runs the trunk itself on them.
    images: Optional[DataSource] = None
    #: A paired dataset's second modality, split by the folds (``benchmark.protocol.cross_modal``); else None.
    paired: Optional[PairedData] = None


def _where(source: DataSource, dcfg: DatasetConfig) -> str:
    """How an error names the dataset: its file and key for a features dataset, else its name."""
    if source.info.get("features"):
        return f"{source.info['path']}: key {'labels_a' if paired_of(source) else 'labels'!r}"
    return f"dataset {dcfg.key!r}"


def _check_batches(splits: Splits, training) -> None:
    """Every fold's training classes fill a class-balanced batch (batch_size / m_per_class classes); checked
    before the frozen regime computes anything from the dataset."""
    needed = training.batch_size // training.m_per_class
    fewest = min(len(f.train_classes) for f in splits.folds)
    if fewest < needed:
        raise DatasetError(f"a fold trains on only {fewest} classes, but a batch of {training.batch_size} with "
                           f"m_per_class={training.m_per_class} needs {needed} (expected fewer folds, or fewer "
                           f"classes per batch)")


def _replay(on_validation: Optional[Callable[[int, int, float], None]], curve: list) -> None:
    """Report the validations of a fold's earlier attempt again (to a new trial: its pruner and records)."""
    if on_validation is not None:
        for epoch, iteration, value in curve:
            on_validation(int(epoch), int(iteration), float(value))


def source_is_features(dcfg: DatasetConfig) -> bool:
    """A features file (one modality or two): vectors with no trunk to run."""
    return dcfg.name in ("features", "paired_features")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Workbench:
    """Datasets, model factory and device of one worker process."""

    def __init__(self, cfg: BenchmarkConfig, *, progress: bool = True) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.progress = progress
        self.models = ModelFactory(cfg.model, progress=progress)
        self._datasets: dict[str, PreparedDataset] = {}
        #: Where units keep their checkpoints (``benchmark.protocol.unit_checkpoint``); None: no checkpoints.
        self.checkpoint_root: Optional[Path] = None

    def dataset(self, dcfg: DatasetConfig) -> PreparedDataset:
        if dcfg.key not in self._datasets:
            from benchmark.data.catalog import load_dataset
            from benchmark.data.integrity import check_file_dataset
            from benchmark.data.split_manifest import verify_loaded

            source = load_dataset(dcfg.name, root=dcfg.root, image_root=dcfg.image_root,
                                  class_split=dcfg.class_split, **dcfg.options)
            # every image file readable before anything is computed from them (the frozen regime's cache)
            check_file_dataset(source, progress=self.progress, desc=dcfg.key)
            if dcfg.verify_split:  # a mirror trusted or refused (benchmark.data.split_manifest)
                verify_loaded(source, dataset=dcfg.name, key=dcfg.key, manifest=dcfg.split_manifest)
            files = source
            p = self.cfg.protocol
            try:
                splits = make_splits(source.train.labels, source.test.labels, n_folds=p.n_folds,
                                     mode=p.fold_mode, seed=self.cfg.seed)
                check_evaluable(splits, source.train.labels,
                                np.concatenate([source.query.labels, source.gallery.labels])
                                if source.has_query_gallery else source.test.labels)
                _check_batches(splits, self.cfg.training_for(dcfg))
            except DatasetError as exc:
                raise DatasetError(f"{_where(source, dcfg)}: {exc}") from None
            models, train_views, images = self.models, None, None
            if self.is_frozen(dcfg):
                images = None if source.info.get("features") else source
                frozen = prepare_frozen(source, dcfg, self.cfg, self.models.trunk, device=self.device,
                                        batch_size=self.cfg.training_for(dcfg).eval_batch_size,
                                        progress=self.progress)
                source, train_views, models = frozen.source, frozen.train_views, frozen.models
            folds = []
            for fold in splits.folds:
                train = relabel(source.train.subset(fold.train_indices))
                augmented = (relabel(train_views.subset(fold.train_indices)) if train_views is not None
                             else train.with_transform(source.train_transform))
                folds.append(FoldData(train=augmented,
                                      train_eval=train.with_transform(source.eval_transform),
                                      val=source.train.subset(fold.val_indices).with_transform(source.eval_transform),
                                      num_classes=len(fold.train_classes)))
            paired = paired_folds(source, splits, _where(source, dcfg))
            self._datasets[dcfg.key] = PreparedDataset(dcfg, source, splits, folds, models, files, images, paired)
        return self._datasets[dcfg.key]

    def is_frozen(self, dcfg: DatasetConfig) -> bool:
        """True when ``dcfg`` trains in the frozen regime (its config says so, or it is a features dataset)."""
        return self.cfg.is_frozen(dcfg)

    def load_all(self) -> None:
        """Load and split every dataset of the config now (bad data fails here, before any work)."""
        for dcfg in self.cfg.datasets:
            self.dataset(dcfg)  # (its folds are checked against the batch's classes there)

    def prepare(self) -> list[str]:
        """Everything a unit of work needs before it trains, done now, with progress bars: every dataset generated
        or checked and split (``load_all``), the trunk's pretrained weights (the small CNN pretrained and cached,
        checkpointed as it goes), and the frozen regime's trunk outputs cached. One line per item, for the user.
        ``dml-bench prepare`` calls it alone; ``run`` calls it before its first unit."""
        self.load_all()
        lines = []
        for dcfg in self.cfg.datasets:
            data = self.dataset(dcfg)
            cached = ", trunk outputs cached" if self.is_frozen(dcfg) and not source_is_features(dcfg) else ""
            lines.append(f"dataset {dcfg.key}: {len(data.source.train)} training and {len(data.source.test)} test "
                         f"samples checked, {len(data.folds)} folds{cached}")
        if not all(source_is_features(d) for d in self.cfg.datasets):
            self.models.trunk()
            m = self.cfg.model
            state = "pretrained weights ready" if m.pretrained else "untrained (model.pretrained: false)"
            lines.append(f"trunk {m.trunk}: {state}")
        return lines

    def train_folds(self, method_name: str, params: dict, dcfg: DatasetConfig, seed_key: tuple, *,
                    on_fold_end: Optional[Callable[[int, FoldResult], None]] = None,
                    on_validation: Optional[Callable[[int, int, int, float], None]] = None,
                    max_iterations: Optional[int] = None,
                    heartbeat: Optional[Callable[[], None]] = None, desc: str = "") -> list:
        """Train ``method_name`` with ``params`` on every fold; return ``[(model, FoldResult), ...]``.

        ``on_fold_end(fold_index, result)`` and ``on_validation(fold_index, epoch, iteration, value)``
        (after every validation) may raise (e.g. ``optuna.TrialPruned``) to stop early.
        ``max_iterations`` caps the training iterations of all folds together: each fold's
        ``max_epochs`` is cut to the whole epochs left; when a fold ran to such a cut, or less than an
        epoch is left for the next fold, ``IterationCapReached`` is raised (after ``on_fold_end``).
        """
        with torch_threads(self.cfg.training_for(dcfg).threads):
            return self._train_folds(method_name, params, dcfg, seed_key, on_fold_end=on_fold_end,
                                     on_validation=on_validation, max_iterations=max_iterations,
                                     heartbeat=heartbeat, desc=desc)

    def _train_folds(self, method_name: str, params: dict, dcfg: DatasetConfig, seed_key: tuple, *,
                     on_fold_end: Optional[Callable[[int, FoldResult], None]],
                     on_validation: Optional[Callable[[int, int, int, float], None]],
                     max_iterations: Optional[int], heartbeat: Optional[Callable[[], None]], desc: str) -> list:
        spec = get_method(method_name)
        data = self.dataset(dcfg)
        tcfg = self.cfg.training_for(dcfg)
        unit = None if data.paired is not None else self._checkpoint(method_name, params, dcfg, seed_key,
                                                                     max_iterations)
        resuming = unit is not None and unit.open()
        out, used = [], 0
        for i, fold in enumerate(data.folds):
            fold_cfg = tcfg
            if max_iterations is not None:
                epochs = min(tcfg.max_epochs, (max_iterations - used) // tcfg.iterations_per_epoch)
                if epochs < 1:
                    raise IterationCapReached(f"less than an epoch of the {max_iterations} iterations is left "
                                              f"for fold {i}")
                fold_cfg = dataclasses.replace(tcfg, max_epochs=epochs)
            seed = derive_seed(self.cfg.seed, *seed_key, "fold", i)
            model = data.models.new(derive_seed(seed, "init"))
            ctx = MethodContext(num_classes=fold.num_classes, embedding_dim=self.cfg.model.embedding_dim,
                                device=self.device)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derive_seed(seed, "method"))
                method = spec.create(ctx, params_for(method_name, dcfg.method_params, params, dcfg.name))
            validated = None if on_validation is None else (
                lambda epoch, iteration, value, i=i: on_validation(i, epoch, iteration, value))
            done = unit.finished(i, self.device) if resuming else None
            resume = unit.training(i, self.device) if resuming and done is None else None
            if done is not None:  # finished in an earlier attempt: its model rebuilt, its validations replayed
                weights, result = done
                log.info("%s fold %d: finished in an earlier attempt, taken from its checkpoint", desc, i)
                model = trained_model(model=model, method=method, cfg=fold_cfg, device=self.device, weights=weights)
                _replay(validated, result.curve)
            elif data.paired is not None:  # a two-tower model on a paired dataset (not checkpointed)
                model, result = train_paired_fold(
                    data.paired, i, model=model, spec=spec, method=method, fold=fold, cfg=self.cfg, fold_cfg=fold_cfg,
                    device=self.device, seed=seed, m_per_class=min(spec.m_per_class, tcfg.m_per_class),
                    desc=f"{desc} fold {i}", progress=self.progress, heartbeat=heartbeat, on_validation=validated)
            else:
                if resume is not None:
                    log.info("%s fold %d: resumed from its checkpoint at epoch %d, iteration %d", desc, i,
                             resume.epoch, resume.iteration)
                    _replay(validated, resume.curve)
                save = None if unit is None else (lambda state, i=i: self._save_state(unit, i, state))
                model, result = train_fold(
                    model=model, method=method, train_set=fold.train, train_eval_set=fold.train_eval,
                    val_set=fold.val, cfg=fold_cfg, device=self.device, seed=seed,
                    m_per_class=min(spec.m_per_class, tcfg.m_per_class), warmup_epochs=spec.warmup_epochs,
                    desc=f"{desc} fold {i}", progress=self.progress, heartbeat=heartbeat, on_validation=validated,
                    save_state=save, resume=resume)
                if unit is not None:
                    unit.save_finished(i, model.state_dict(), result)
                    kill_point("unit.fold_saved")
            used += result.iterations
            out.append((model, result))
            if on_fold_end is not None:
                on_fold_end(i, result)
            ran_to_cut = result.iterations == fold_cfg.max_epochs * tcfg.iterations_per_epoch
            if fold_cfg.max_epochs < tcfg.max_epochs and ran_to_cut and result.status != DIVERGED:
                raise IterationCapReached(f"fold {i} was cut to {fold_cfg.max_epochs} of its {tcfg.max_epochs} epochs "
                                          f"by the cap of {max_iterations} iterations")
        return out

    @staticmethod
    def _save_state(unit: UnitCheckpoint, fold: int, state) -> None:
        unit.save_training(fold, state)
        kill_point("unit.state_saved")

    def _checkpoint(self, method_name: str, params: dict, dcfg: DatasetConfig, seed_key: tuple,
                    max_iterations: Optional[int]) -> Optional[UnitCheckpoint]:
        """The unit's checkpoint (None without a ``checkpoint_root`` or for a seed key that is not a unit's)."""
        if self.checkpoint_root is None or len(seed_key) != 3 or seed_key[0] not in ("search", "repeat"):
            return None
        description = {"method": method_name, "params": params, "seed_key": list(seed_key), "seed": self.cfg.seed,
                       "max_iterations": max_iterations, "training": dataclasses.asdict(self.cfg.training_for(dcfg)),
                       "model": dataclasses.asdict(self.cfg.model), "dataset": dataclasses.asdict(dcfg),
                       "folds": [self.cfg.protocol.n_folds, self.cfg.protocol.fold_mode]}
        return UnitCheckpoint(unit_folder(self.checkpoint_root, seed_key), description)

    def untrained_models(self, dcfg: DatasetConfig, seed_key: tuple) -> list:
        """One model per fold with the pretrained trunk and an untrained embedder (the "Pretrained" row)."""
        data = self.dataset(dcfg)
        models = []
        for i in range(len(data.folds)):
            seed = derive_seed(self.cfg.seed, *seed_key, "fold", i, "init")
            model = data.models.new(seed)
            if data.paired is not None:  # the untrained two-tower model
                model = two_tower(model, data.paired, self.cfg, seed)
            models.append(model.to(self.device).eval())
        return models

    def raw_trunk_embeddings(self, dcfg: DatasetConfig) -> Optional[TestEmbeddings]:
        """The test embeddings of the trunk as it is, its pooled output without an embedder (the "Raw trunk" row),
        named ``concatenated``: a features dataset's features as given; in the frozen regime the trunk itself on
        the test images (its own pooling, not the cached grid's), else the model's trunk. None for a paired
        dataset (its two modalities' raw outputs share no space: the untrained towers are its Pretrained row)."""
        data = self.dataset(dcfg)
        if data.paired is not None:
            return None
        if data.images is not None:
            trunk, source = copy.deepcopy(self.models.trunk()), data.images
        else:
            trunk, source = data.models.new(0).trunk, data.source
        tcfg = self.cfg.training_for(dcfg)
        with torch_threads(tcfg.threads):
            return embed_test([RawTrunk(trunk).to(self.device)], source, device=self.device,
                              batch_size=tcfg.eval_batch_size, num_workers=tcfg.num_workers, val_sets=None,
                              far=self.cfg.evaluation.verification_far, seed=self.cfg.seed, names=[CONCATENATED])

    def evaluate(self, models: list, dcfg: DatasetConfig) -> dict:
        """Test metrics ``{fold{i} | concatenated: {metric: value}}`` (the test set is used only here)."""
        return self.score(self.embed_test(models, dcfg), dcfg)

    def embed_test(self, models: list, dcfg: DatasetConfig) -> TestEmbeddings | PairedTest:
        """The test embeddings of ``models`` (and each fold model's verification threshold on its validation
        classes), which ``score`` turns into the test metrics and ``--save embeddings`` keeps; on a paired
        dataset the models themselves, embedded in both directions by ``score``."""
        data = self.dataset(dcfg)
        if data.paired is not None:
            return PairedTest(list(models))
        tcfg = self.cfg.training_for(dcfg)
        with torch_threads(tcfg.threads):
            return embed_test(models, data.source, device=self.device, batch_size=tcfg.eval_batch_size,
                              num_workers=tcfg.num_workers,
                              val_sets=[f.val for f in data.folds],
                              far=self.cfg.evaluation.verification_far, seed=self.cfg.seed)

    def score(self, emb: TestEmbeddings | PairedTest, dcfg: DatasetConfig) -> dict:
        """The test metrics of ``emb`` under this config (its Recall@K, verification FAR, clustering); of a
        paired dataset, per direction (``evaluate_paired``)."""
        tcfg = self.cfg.training_for(dcfg)
        with torch_threads(tcfg.threads):
            if isinstance(emb, PairedTest):
                data = self.dataset(dcfg)
                return evaluate_paired(emb.models, data.source, data.paired, device=self.device,
                                       recall_at=self.cfg.recall_at_for(dcfg), batch_size=tcfg.eval_batch_size)
            return score_embeddings(emb, recall_at=self.cfg.recall_at_for(dcfg),
                                    far=self.cfg.evaluation.verification_far, seed=self.cfg.seed,
                                    clustering=self.cfg.evaluation.clustering)
