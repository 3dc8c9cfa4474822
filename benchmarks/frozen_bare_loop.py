"""The frozen regime's training loop in the harness against a bare loop doing the same work: their wall-time ratio.

    python benchmarks/frozen_bare_loop.py [--method contrastive] [--iterations 2000] [--rounds 6]

Both train fold 0 of the quick preset's built-in dataset (frozen regime: the embedder on cached trunk outputs,
one random view per sample) with the same embedder, loss, optimizer, batches and views, from the same seed:

* **harness**: ``trainer.train_fold`` with the preset's training settings, one epoch of ``--iterations``
  iterations; timed from the call to the start of its (only) validation, so model set-up, the optimizer, the
  sampler and every iteration count, the validation does not;
* **bare**: the loop a researcher writes by hand: ``ClassBalancedBatches`` for the indices, ``ViewSet.batch``
  for the views, then ``loss = method(model(x), y, idx)``, ``zero_grad``, ``backward``, ``step`` with the same
  optimizer groups; nothing else.

The two are run in turn (harness, bare, then bare, harness, ...), each round in this process with the same
threads (``training.threads`` of the preset); the figure is the ratio of the summed times, and the final
weights of the two loops are compared (they must be identical: the same work).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def _setup(method: str, iterations: int):
    from benchmark.protocol.run_config import load_run_config
    from benchmark.protocol.workbench import Workbench

    cfg = load_run_config(preset="quick", overrides=["training.max_epochs=1",
                                                     f"training.iterations_per_epoch={iterations}"])
    bench = Workbench(cfg, progress=False)
    dcfg = cfg.datasets[0]
    data = bench.dataset(dcfg)
    return cfg, bench, data, data.folds[0], cfg.training_for(dcfg)


def harness(cfg, bench, data, fold, tcfg, method: str, seed: int) -> tuple[float, dict]:
    """Seconds of ``train_fold`` up to its validation, and the trained model's weights."""
    from benchmark.methods import MethodContext, get_method
    from benchmark.training import trainer

    spec = get_method(method)
    model = data.models.new(0)
    ctx = MethodContext(num_classes=fold.num_classes, embedding_dim=cfg.model.embedding_dim, device=bench.device)
    created = spec.create(ctx)
    mark: dict = {}
    validate = trainer.validate

    def timed_validate(*args, **kwargs):  # the loop ends where the (only) validation starts
        mark.setdefault("end", time.perf_counter())
        mark.setdefault("state", {k: v.clone() for k, v in args[0].state_dict().items()})
        return validate(*args, **kwargs)

    trainer.validate = timed_validate
    try:
        start = time.perf_counter()
        trainer.train_fold(model=model, method=created, train_set=fold.train, train_eval_set=fold.train_eval,
                           val_set=fold.val, cfg=tcfg, device=bench.device, seed=seed,
                           m_per_class=spec.m_per_class, progress=False)
    finally:
        trainer.validate = validate
    return mark["end"] - start, mark["state"]


def bare(cfg, bench, data, fold, tcfg, method: str, seed: int) -> tuple[float, dict]:
    """Seconds of a hand-written loop doing the same work, and the trained model's weights."""
    from benchmark.methods import MethodContext, get_method
    from benchmark.training.optim import make_optimizer
    from benchmark.training.samplers import ClassBalancedBatches
    from benchmark.training.trainer import seed_everything

    spec = get_method(method)
    model = data.models.new(0)
    ctx = MethodContext(num_classes=fold.num_classes, embedding_dim=cfg.model.embedding_dim, device=bench.device)
    loss_fn = spec.create(ctx)
    views = fold.train
    start = time.perf_counter()
    seed_everything(seed)
    model = loss_fn.configure_model(model)
    model.train()
    loss_fn.train()
    optimizer = make_optimizer(model, loss_fn, tcfg)
    sampler = ClassBalancedBatches(views.labels, batch_size=tcfg.batch_size, m_per_class=spec.m_per_class,
                                   seed=seed)
    rng = np.random.default_rng([seed % (2**63), 1])  # the views' generator, as the harness seeds it
    for _ in range(tcfg.iterations_per_epoch):
        idx = next(sampler)
        x, y = views.batch(idx, rng), torch.as_tensor(views.labels[idx])
        loss = loss_fn(model(x), y, torch.as_tensor(idx))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    return seconds, {k: v.clone() for k, v in model.state_dict().items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="contrastive")
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=6)
    args = p.parse_args()
    from benchmark.training.threads import torch_threads

    cfg, bench, data, fold, tcfg = _setup(args.method, args.iterations)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"{args.method}, {args.iterations} iterations, batch {tcfg.batch_size}, threads {tcfg.threads}")
    totals = {"harness": 0.0, "bare": 0.0}
    loops = {"harness": harness, "bare": bare}
    same = True
    with torch_threads(tcfg.threads):
        for r in range(args.rounds):
            order = ("harness", "bare") if r % 2 == 0 else ("bare", "harness")
            states = {}
            for name in order:
                seconds, states[name] = loops[name](cfg, bench, data, fold, tcfg, args.method, seed=r)
                totals[name] += seconds
                print(f"round {r}: {name:>7} {seconds:7.3f} s ({1000 * seconds / args.iterations:.3f} ms/iteration)")
            same &= all(torch.equal(states["harness"][k], states["bare"][k]) for k in states["bare"])
    ratio = totals["harness"] / totals["bare"]
    print(f"harness {totals['harness']:.3f} s, bare {totals['bare']:.3f} s: harness/bare = {ratio:.3f}; "
          f"final weights {'identical' if same else 'DIFFER'}")


if __name__ == "__main__":
    main()
