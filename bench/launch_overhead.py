"""Host time of one eager backward call, Triton kernels against the Hopper (Gluon) ones, at a shape
whose GPU work is negligible: where the time a call takes comes from when nothing waits on the GPU.

    python3 bench/launch_overhead.py [--calls N] [--profile]   # on an H100/H200

Prints microseconds a call (wall clock over N calls, synchronized once at the end) for window
attention's and GDPA's backward each way, and with --profile the top of cProfile's table for the
Hopper calls (where the host time goes: descriptors, the launcher, checks).
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time

import torch

from compile_kernels import kernel_module as load


def per_call_us(fn, calls: int) -> float:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 1
    from torch._library.triton import set_wrap_triton_enabled
    wa, gdpa = load("window_attention"), load("gdpa")
    set_wrap_triton_enabled(False)   # as a custom op launches them in eager mode
    B, H, T, D = 2, 2, 64, 128
    bf16 = dict(device="cuda", dtype=torch.bfloat16)
    q, k, v, do = (torch.randn(B, H, T, D, **bf16) for _ in range(4))
    lengths = torch.full((B,), T, device="cuda")
    o, lse = wa.window_attention_forward(q, k, v, lengths, 16, True, 0.1)
    q64, kv, do64 = (torch.randn(B, H, T, 64, **bf16) for _ in range(3))   # GDPA's Hopper kernels run at D 64
    runs = {"window D128": (wa, lambda: wa.window_attention_backward(do, q, k, v, o, lse, lengths, 16, True, 0.1)),
            "gdpa D64": (gdpa, lambda: gdpa.gdpa_backward(do64, q64, kv, kv, lengths, None, "gelu_tanh", 0.1))}
    for name, (module, fn) in runs.items():
        times = {}
        for hopper in (False, True):
            module._HOPPER_BWD = hopper
            times[hopper] = per_call_us(fn, args.calls)
        print(f"{name} backward: Triton {times[False]:.1f} us a call, Hopper {times[True]:.1f} us "
              f"({times[True] - times[False]:+.1f})", flush=True)
        if args.profile:
            module._HOPPER_BWD = True
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(100):
                fn()
            profiler.disable()
            torch.cuda.synchronize()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(14)
    return 0


if __name__ == "__main__":
    sys.exit(main())
