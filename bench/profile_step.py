"""Where a training step of a generated model spends its time: torch.profiler over real steps.

    python3 bench/profile_step.py PACKAGE [--batch-size N] [--steps N] [--backend auto] [--top 25]
                                  [--compile [MODE]] [--scope blocks|model] [--layout packed|padded]

PACKAGE is importable (e.g. with generated/ on PYTHONPATH). Prints each warm-up step's wall time
as it finishes (so a stall in autotuning or compilation shows), then the ops with the most CUDA
time and the most CPU time over the profiled steps, and the share of the step the GPU was busy.
"""
from __future__ import annotations

import argparse
import importlib
import time

import torch
from torch.profiler import ProfilerActivity, profile


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("package")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--backend", default="auto")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--compile", nargs="?", const="default", default=None,
                   help="torch.compile the model first (optionally a mode: reduce-overhead, ...)")
    p.add_argument("--scope", default="blocks", choices=("blocks", "model"),
                   help="with --compile: each block (Model.compile_blocks) or the whole forward")
    p.add_argument("--layout", default="packed", choices=("packed", "padded"),
                   help="the batch's events as packed rows (the bench's default) or padded to max_len")
    args = p.parse_args()
    package = importlib.import_module(args.package)
    batch_size = args.batch_size or package.Config().batch_size
    # the package's own training step: what `python -m <package> bench` times
    bench = importlib.import_module(f"{args.package}.bench")
    _, _, step = bench.training("cuda", batch_size, args.backend, args.compile or False, args.scope, args.layout)

    for i in range(args.warmup):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        print(f"warm-up step {i}: {time.perf_counter() - t0:.3f} s", flush=True)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    unprofiled = (time.perf_counter() - t0) / args.steps
    print(f"step without the profiler: {unprofiled * 1e3:.1f} ms wall", flush=True)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        torch.cuda.synchronize()
        wall = (time.perf_counter() - t0) / args.steps
    events = prof.key_averages()
    gpu_busy = bench.kernel_time_s(events) / args.steps
    n_ops = sum(e.count for e in events if e.key.startswith("aten::")) / args.steps
    print(f"\n{args.package} batch {batch_size}: step {wall * 1e3:.1f} ms wall, GPU kernels {gpu_busy * 1e3:.1f} ms "
          f"({gpu_busy / wall:.0%} busy), {n_ops:.0f} aten ops per step")
    print(events.table(sort_by="self_device_time_total", row_limit=args.top, max_name_column_width=60))
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.top, max_name_column_width=60))


if __name__ == "__main__":
    main()
