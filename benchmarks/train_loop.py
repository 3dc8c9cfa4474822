"""Milliseconds per training iteration of the harness's loop against a bare PyTorch loop doing the same work.

    python benchmarks/train_loop.py [--method contrastive] [--iterations 100] [--rounds 7] [--amp bf16,fp16]

Both loops train fold 0 of the built-in dataset (the quick preset's dataset and settings, end to end:
the pretrained small CNN and the embedder on augmented 32 x 32 images, batch 32 = 8 classes x 4,
Adam with the trunk and the embedder in their own parameter groups, the preset's one CPU thread) from
the same initial model, with the same method object's loss, the same class-balanced batches (the
sampler with the same seed) and the same augmentation (the built-in dataset's training transform).
The harness is ``train_fold`` for one epoch of ``--iterations`` iterations, which augments each batch
as one tensor (its in-memory fast path); a bare loop is a ``for`` loop: next indices, the batch's
images augmented, forward, loss, ``zero_grad``, backward, step. Two bare loops are timed:
``bare/image`` augments image by image and stacks (what a plain PyTorch loop over a dataset does),
``bare/batch`` indexes the whole batch and augments it as one tensor with one generator (the harness's
data path written out by hand: the stricter baseline, whose ratio is the harness's own overhead).

**Validation is excluded from both**: the harness's one validation (at the end of its epoch) is
replaced by a stub that stops its clock, and the bare loop has none. Each loop's time includes its own
set-up (optimizer, sampler; the harness's checkpoint of the initial weights, its per-batch seeding of
the augmentation) and its first iteration. After one short warm-up run of each, the two are
interleaved ``--rounds`` times (harness, bare/image, bare/batch, harness, ...) so that a change in the
machine's load hits all alike; the figures are the medians over the rounds and each ratio is the median
of the rounds' harness / bare ratios.

On a GPU the comparison runs again with each ``--amp`` precision: the harness with ``training.amp``
set (and ``memory_format: auto``, channels-last on CUDA), the bare loop with the same autocast dtype,
grad scaler (fp16) and layout written out by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import os
import statistics
import time

import torch


def prepare(method_name: str, iterations: int):
    """(workbench, fold 0, training config, method spec, initial model) of the quick preset, end to end."""
    from benchmark.protocol.run_config import load_run_config
    from benchmark.methods import get_method
    from benchmark.protocol.workbench import Workbench

    cfg = load_run_config(preset="quick", overrides=["training.regime=end_to_end", "training.max_epochs=1",
                                                 f"training.iterations_per_epoch={iterations}"])
    bench = Workbench(cfg, progress=False)
    dcfg = cfg.datasets[0]
    data = bench.dataset(dcfg)
    return bench, data.folds[0], cfg.training_for(dcfg), get_method(method_name), data.models.new(0)


def new_method(spec, fold, bench, model):
    from benchmark.methods import MethodContext

    ctx = MethodContext(num_classes=fold.num_classes, embedding_dim=model.embedding_dim, device=bench.device)
    torch.manual_seed(1)
    return spec.create(ctx)


def harness(bench, fold, tcfg, spec, model) -> float:
    """Seconds of ``train_fold`` up to its validation (which is skipped)."""
    from benchmark.training import trainer

    clock = {}
    validate = trainer.validate

    def stop_clock(*args, **kwargs):
        if bench.device.type == "cuda":
            torch.cuda.synchronize()
        clock.setdefault("end", time.perf_counter())
        return 0.0

    method = new_method(spec, fold, bench, model)
    trainer.validate = stop_clock
    try:
        start = time.perf_counter()
        trainer.train_fold(model=model, method=method, train_set=fold.train, train_eval_set=fold.train_eval,
                           val_set=fold.val, cfg=tcfg, device=bench.device, seed=0,
                           m_per_class=min(spec.m_per_class, tcfg.m_per_class), progress=False)
    finally:
        trainer.validate = validate
    return clock["end"] - start


def bare(bench, fold, tcfg, spec, model, whole_batch: bool = False) -> float:
    """Seconds of a plain PyTorch loop doing the harness's work (module docstring); ``whole_batch``: the batch
    augmented as one tensor, else image by image."""
    from benchmark.training.precision import resolve_precision
    from benchmark.training.samplers import ClassBalancedBatches

    device, images = bench.device, fold.train
    setting = resolve_precision(tcfg, device)  # which dtype and layout; the loop below applies them by hand
    layout = torch.channels_last if setting.channels_last else torch.contiguous_format
    method = new_method(spec, fold, bench, model)
    start = time.perf_counter()
    torch.manual_seed(0)
    model = model.to(device, memory_format=layout)
    method = method.to(device)
    trunk = [p for p in model.trunk.parameters() if p.requires_grad]
    head = [p for p in model.embedder.parameters() if p.requires_grad]
    groups = [{"params": trunk, "lr": tcfg.lr_trunk}, {"params": head, "lr": tcfg.lr_embedder}]
    groups += method.optimizer_groups(tcfg.lr_embedder, tcfg.weight_decay)
    optimizer = torch.optim.Adam(groups, lr=tcfg.lr_embedder, weight_decay=tcfg.weight_decay)
    sampler = ClassBalancedBatches(images.labels, batch_size=tcfg.batch_size,
                                   m_per_class=min(spec.m_per_class, tcfg.m_per_class), seed=0)
    scaler = torch.amp.GradScaler(device.type) if setting.dtype == torch.float16 else None
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(tcfg.iterations_per_epoch):
        idx = next(sampler)
        if whole_batch:
            x = images.transform.batch(images.rows(idx, device), generator).contiguous(memory_format=layout)
        else:
            x = torch.stack([images[i][0] for i in idx]).to(device, non_blocking=True)
            x = x.contiguous(memory_format=layout)
        y = torch.as_tensor(images.labels[idx]).to(device, non_blocking=True)
        autocast = torch.autocast(device.type, dtype=setting.dtype) if setting.dtype else contextlib.nullcontext()
        with autocast:
            loss = method(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compare(prepared, rounds: int, amp: str) -> None:
    from benchmark.training.threads import torch_threads

    bench, fold, tcfg, spec, initial = prepared
    tcfg = dataclasses.replace(tcfg, amp=amp)
    n = tcfg.iterations_per_epoch
    loops = {"harness": harness, "bare/image": bare, "bare/batch": functools.partial(bare, whole_batch=True)}
    ms: dict[str, list[float]] = {name: [] for name in loops}
    with torch_threads(tcfg.threads):
        for loop in loops.values():  # warm-up: allocator, kernels, caches
            loop(bench, fold, dataclasses.replace(tcfg, iterations_per_epoch=5), spec, copy.deepcopy(initial))
        for _ in range(rounds):
            for name, loop in loops.items():
                ms[name].append(1000.0 * loop(bench, fold, tcfg, spec, copy.deepcopy(initial)) / n)
    print(f"{bench.device.type} amp={amp:<5} harness {statistics.median(ms['harness']):6.2f} ms/it", flush=True)
    for name in ("bare/image", "bare/batch"):
        ratios = [h / b for h, b in zip(ms["harness"], ms[name])]
        print(f"  {name} {statistics.median(ms[name]):6.2f} ms/it, harness/{name} {statistics.median(ratios):.3f} "
              f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)})", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="contrastive")
    p.add_argument("--iterations", type=int, default=100, help="iterations per timed run")
    p.add_argument("--rounds", type=int, default=7, help="interleaved harness/bare pairs")
    p.add_argument("--amp", default="bf16,fp16", help="mixed precisions also timed on a GPU")
    args = p.parse_args()
    prepared = prepare(args.method, args.iterations)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
          f"{args.method}, {args.iterations} iterations x {args.rounds} rounds, device {prepared[0].device}",
          flush=True)
    compare(prepared, args.rounds, "fp32")
    if prepared[0].device.type == "cuda":
        for amp in [a for a in args.amp.split(",") if a and a != "fp32"]:
            compare(prepared, args.rounds, amp)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
