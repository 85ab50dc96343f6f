"""The Python an eager seed-pooling call runs before its kernel's launcher, timed on the CPU.

    python3 bench/host_python.py [--calls N] [--profile]     # anywhere: no GPU

A bound eager launch (templates/kernels/bound_launch.py) still runs the op's own host code on
every call: the checks, the allocations, the strides, the bound key of ~40 arguments. On the H200's
host a bound level-2 forward call took 76-82 µs (BENCHMARKS.md, seed pooling, twenty-sixth
session), of which the compiled kernel's launcher is a part this script cannot time. Here the call
runs on CPU tensors as an eager CUDA call would (`_direct` on, the bound kernel a stand-in whose
launcher does nothing), so what is timed is exactly the Python between the caller and the
launcher: microseconds a call over --calls calls, forward (pointer loads) and backward at
bench_seed_pooling.py's second-level shape but 4 examples (H 4, 64 keys, 8 seeds, D 64: the Python
does not depend on the batch, and the backward's closing sum of its dQ partials, a launch on the
GPU, runs here on the CPU), and with --profile the top of cProfile's table.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

os.environ.pop("TRITON_INTERPRET", None)      # the kernel file as a GPU process loads it
import torch  # noqa: E402

from compile_kernels import kernel_module  # noqa: E402


class _Compiled:
    """A compiled kernel whose launcher does nothing (what a launch costs past it is not ours)."""
    function = packed_metadata = None

    def launch_metadata(self, grid, stream, *values):
        return None

    def run(self, *args):
        return None


def stand_in(sp):
    """sp with eager CUDA launches on: the bound launcher's device and stream fixed, and any launch
    not yet bound bound at once to a do-nothing compiled kernel (as after a first real launch)."""
    bl = sp._bound_launch()
    bl._device = lambda: 0
    bl._stream = lambda device: 0
    sp._direct = lambda x: True
    sp._INTERPRET = True       # CPU tensors pass the op's checks (its tuner: the interpreter's one config)

    def bind_tuned(tuner, grid, args, constexprs):
        config = tuner.configs[0]
        bl._BOUND[bl._tuned_key(tuner, 0, args, constexprs)] = (
            config, bl._bind(tuner.fn, _Compiled(), {**constexprs, **config.kwargs}, len(args)), tuner.configs)

    def bind(kernel, grid, args, constexprs):
        bl._BOUND[bl._key(kernel, 0, args, constexprs)] = bl._bind(kernel, _Compiled(), constexprs, len(args))
    return bl, bind_tuned, bind


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    sp = kernel_module("seed_pooling")
    bl, bind_tuned, bind = stand_in(sp)
    B, H, T, D, S = 4, 4, 64, 64, 8
    kv = torch.randn(B, T, H * D, dtype=torch.bfloat16).view(B, T, H, D).transpose(1, 2)
    seeds = torch.randn(H, S, D, dtype=torch.bfloat16)
    lengths = torch.full((B,), T)
    o = torch.randn(B, H, S, D, dtype=torch.bfloat16)
    lse = torch.zeros(B, H, S)
    grad = torch.randn_like(o)
    calls = {"forward": lambda: sp.seed_pooling_forward(seeds, kv, kv, lengths, 0.125),
             "backward": lambda: sp.seed_pooling_backward_shared_kv(grad, seeds, kv, o, lse, lengths, 0.125)}
    real = bl.launch_tuned, bl.launch
    for name, fn in calls.items():
        bl.launch_tuned, bl.launch = bind_tuned, bind          # first call: bind
        fn()
        bl.launch_tuned, bl.launch = real                      # then: the bound path, every call
        fn()
        start = time.perf_counter()
        for _ in range(args.calls):
            fn()
        us = (time.perf_counter() - start) / args.calls * 1e6
        print(f"{name}: {us:.1f} us of Python a call before the launcher", flush=True)
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(lambda: [fn() for _ in range(args.calls)])
            pstats.Stats(prof).sort_stats("tottime").print_stats(12)
    return 0


if __name__ == "__main__":
    sys.exit(main())
