"""Training one fold: the loop over epochs and iterations, built from small parts.

The trainer knows nothing about any particular loss: it calls the ``Method`` hooks
(``configure_model``, ``training_step``, ``on_epoch_start``, ``batch_sampler``,
``optimizer_groups``). The parts, one module each under ``benchmark.training``:

* ``batches``: the fold's batches (the method's sampler or class-balanced ones; cached views in the
  frozen regime, else images loaded and augmented, in worker processes when asked);
* ``step``: one iteration (loss under autocast, backward, optimizer step), with ``precision``
  (mixed precision, memory layout, compilation) and ``divergence`` (when a fold counts as diverged);
* ``optim``: the optimizer's parameter groups; ``warmup``: the trunk frozen for the first epochs;
* ``validation``, ``checkpoint`` (the best-validation weights), ``schedule`` (when to validate, when
  patience runs out), ``progress`` (the bar);
* ``resume`` (the fold's whole training state, saved at each validation and on a stop request of
  ``interrupt``, from which a fold goes on with the same result).

A diverged fold ends with status ``diverged`` and the best checkpoint seen so far; it is not a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from benchmark.config import TrainingConfig
from benchmark.data.base import ImageSet
from benchmark.evaluation.embed import embed
from benchmark.methods.base import Method
from benchmark.models.embedding_model import TrunkModel
from benchmark.training.batches import fold_batches
from benchmark.training.checkpoint import BestCheckpoint
from benchmark.training.optim import make_optimizer
from benchmark.training.precision import Precision, resolve_precision
from benchmark.training import interrupt
from benchmark.training.progress import FoldProgress
from benchmark.training.resume import FoldState, rng_state, set_rng_state
from benchmark.training.schedule import end_epoch
from benchmark.training.step import TrainingStep
from benchmark.training.validation import validate
from benchmark.training.warmup import TrunkWarmup

__all__ = ["COMPLETED", "DIVERGED", "EARLY_STOPPED", "FoldResult", "FoldState", "TrainState", "make_optimizer",
           "seed_everything", "train_fold", "trained_model", "validate"]

COMPLETED, EARLY_STOPPED, DIVERGED = "completed", "early_stopped", "diverged"


@dataclass
class TrainState:
    """What ``Method.on_epoch_start`` may look at."""

    model: TrunkModel
    train_set: ImageSet
    train_eval_set: ImageSet
    device: torch.device
    seed: int
    cfg: TrainingConfig
    epoch: int = 0
    iteration: int = 0

    def embed_training_set(self) -> np.ndarray:
        """Embeddings of the fold's training images (eval transform, eval mode)."""
        return embed(self.model, self.train_eval_set, device=self.device, batch_size=self.cfg.eval_batch_size,
                     num_workers=self.cfg.num_workers)


@dataclass
class FoldResult:
    """Outcome of one fold: best validation MAP@R, where it was reached, the curve and the status."""

    best_value: float
    best_epoch: int
    status: str
    iterations: int
    #: (epoch, iteration, validation MAP@R) at every validation.
    curve: list = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed torch and numpy for one fold (the batch sampler has its own generator)."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def train_fold(*, model: TrunkModel, method: Method, train_set: ImageSet, train_eval_set: ImageSet,
               val_set: ImageSet, cfg: TrainingConfig, device: torch.device, seed: int, m_per_class: int,
               warmup_epochs: int = 0, desc: str = "fold", progress: bool = True,
               heartbeat: Optional[Callable[[], None]] = None,
               on_validation: Optional[Callable[[int, int, float], None]] = None,
               save_state: Optional[Callable[[FoldState], None]] = None,
               resume: Optional[FoldState] = None) -> tuple[TrunkModel, FoldResult]:
    """Train ``model`` with ``method`` on ``train_set``; return the best-validation model and the result.

    ``train_set`` carries the training transform, ``train_eval_set`` the same images with the
    evaluation transform (for methods that embed the training set), ``val_set`` the validation
    classes with the evaluation transform. ``heartbeat()`` is called after every epoch,
    ``on_validation(epoch, iteration, value)`` after every validation (once the checkpoint is updated);
    either may raise to stop the fold: the exception propagates once the fold is cleaned up.

    ``save_state(state)`` receives the fold's whole training state (``FoldState``) after every validation
    that training goes on from, and before the fold stops for a request of ``benchmark.training.interrupt``
    (then the request's exception is raised). ``resume``, such a state of the same fold (``model`` and
    ``method`` freshly built as for its start), continues the fold where it was saved: the result is the
    one an uninterrupted fold gives.
    """
    seed_everything(seed)
    precision = resolve_precision(cfg, device)
    sampler = None
    if resume is not None:  # the method as it was, with its own sampler (pickled together)
        method, sampler = resume.method["method"], resume.method["sampler"]
    model = _model_to_train(method, model, device, precision)
    method.to(device)
    step = TrainingStep(method, make_optimizer(model, method, cfg), precision, device)
    if resume is not None:
        model.load_state_dict(resume.model)
        step.optimizer.load_state_dict(resume.optimizer)
        if step.scaler is not None and resume.scaler is not None:
            step.scaler.load_state_dict(resume.scaler)
    batches = fold_batches(method, train_set, batch_size=cfg.batch_size, m_per_class=m_per_class, seed=seed,
                           num_workers=cfg.num_workers, device=device,
                           state=resume.batches if resume is not None else None, sampler=sampler)
    state = TrainState(model=model, train_set=train_set, train_eval_set=train_eval_set, device=device,
                       seed=seed, cfg=cfg)
    best = BestCheckpoint(model)
    warmup = TrunkWarmup(model.trunk, warmup_epochs)
    bar = FoldProgress(cfg.max_epochs * cfg.iterations_per_epoch, desc, progress)
    status, iteration, curve, first_epoch, first_step = COMPLETED, 0, [], 1, 0
    if resume is not None:
        best.value, best.epoch, best.state = resume.best["value"], resume.best["epoch"], resume.best["state"]
        iteration, curve = resume.iteration, [tuple(c) for c in resume.curve]
        first_epoch = resume.epoch if resume.step is not None else resume.epoch + 1
        first_step = resume.step or 0
        bar.bar.update(iteration)
        set_rng_state(resume.rng)

    def snapshot(epoch: int, in_epoch: Optional[int], epoch_iteration: int) -> FoldState:
        return FoldState(epoch=epoch, step=in_epoch, iteration=iteration, epoch_iteration=epoch_iteration,
                         curve=list(curve), best={"value": best.value, "epoch": best.epoch, "state": best.state},
                         model=model.state_dict(), method={"method": method, "sampler": batches.sampler
                                                           if batches.own_sampler else None},
                         optimizer=step.optimizer.state_dict(),
                         scaler=step.scaler.state_dict() if step.scaler is not None else None,
                         batches=batches.state_dict(), rng=rng_state(device))

    loss: Optional[torch.Tensor] = None
    try:
        with interrupt.polling():
            for epoch in range(first_epoch, cfg.max_epochs + 1):
                skip = first_step if epoch == first_epoch and resume is not None and resume.step is not None else None
                if skip is None:
                    state.epoch, state.iteration = epoch, iteration
                    _start_epoch(model, method, warmup, state)
                else:  # resumed inside this epoch: its start already happened (the method's state says so)
                    state.epoch, state.iteration = epoch, resume.epoch_iteration
                    model.train()
                    method.train()
                    warmup.start_epoch(epoch)
                for done in range(skip or 0, cfg.iterations_per_epoch):
                    stop = interrupt.take()
                    if stop is not None:
                        if save_state is not None:
                            save_state(snapshot(epoch, done, state.iteration))
                        raise stop
                    loss = step(model, next(batches))
                    if loss is None:
                        break
                    iteration += 1
                    bar.step(iteration, loss, best.value)
                if loss is None:
                    status = DIVERGED
                    break
                validated, stop = end_epoch(epoch, iteration, loss, cfg=cfg, curve=curve, best=best, bar=bar,
                                            validate=lambda: validate(model, val_set, device, cfg),
                                            on_validation=on_validation, heartbeat=heartbeat)
                if stop:
                    status = EARLY_STOPPED
                    break
                if validated and save_state is not None and epoch < cfg.max_epochs:
                    save_state(snapshot(epoch, None, state.iteration))
    finally:
        bar.close()
        batches.close()  # ends the loader's workers
        warmup.restore()
    best.restore()
    model.eval()
    return model, FoldResult(best.score, best.epoch, status, iteration, curve)


def trained_model(*, model: TrunkModel, method: Method, cfg: TrainingConfig, device: torch.device,
                  weights: dict) -> TrunkModel:
    """A fold's trained model rebuilt from its best weights (what ``train_fold`` returned), without training:
    ``model`` and ``method`` freshly built as for the fold's start."""
    model = _model_to_train(method, model, device, resolve_precision(cfg, device))
    model.load_state_dict(weights)
    model.eval()
    return model


def _model_to_train(method: Method, model: TrunkModel, device: torch.device, precision: Precision) -> TrunkModel:
    """The method's model (``configure_model``) on ``device``, in the step's layout."""
    _check_trunk_model(model, "train_fold was given")
    model = method.configure_model(model)
    _check_trunk_model(model, f"{type(method).__name__}.configure_model returned")
    return precision.prepare(model.to(device))


def _check_trunk_model(model: object, what: str) -> None:
    if not isinstance(model, TrunkModel):
        raise TypeError(f"{what} a {type(model).__name__}, not a TrunkModel (a trunk and a head; "
                        f"see benchmark.models.embedding_model)")


def _start_epoch(model: TrunkModel, method: Method, warmup: TrunkWarmup, state: TrainState) -> None:
    """Training mode, the warm-up's trunk freeze, then the method's epoch hook (which may embed in eval mode)."""
    model.train()
    method.train()
    warmup.start_epoch(state.epoch)
    method.on_epoch_start(state.epoch, state)
    model.train()
