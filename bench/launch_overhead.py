"""Host time of one eager backward call, Triton kernels against the Hopper (Gluon) ones, at a shape
whose GPU work is negligible: where the time a call takes comes from when nothing waits on the GPU.

    python3 bench/launch_overhead.py [--calls N] [--profile] [--pieces]   # on an H100/H200

Prints microseconds a call (wall clock over N calls, synchronized once at the end) for window
attention's and GDPA's backward each way, and with --profile the top of cProfile's table for the
Hopper calls (where the host time goes: descriptors, the launcher, checks). --pieces times the
parts of one Hopper dK/dV launch apart (the window's, D 128): Triton's JIT launch path, its argument
binder alone, its cache-key step, the compiled kernel's launcher called directly, and the TMA
descriptors' construction.
"""
from __future__ import annotations

import argparse
import contextlib
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
    parser.add_argument("--pieces", action="store_true")
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
        with jit_launches(module):
            times["jit"] = per_call_us(fn, args.calls)
        print(f"{name} backward: Triton {times[False]:.1f} us a call, Hopper {times[True]:.1f} us "
              f"({times[True] - times[False]:+.1f}); Hopper through Triton's JIT launch every time "
              f"(before the bound launch): {times['jit']:.1f} us", flush=True)
        if args.profile:
            module._HOPPER_BWD = True
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(100):
                fn()
            profiler.disable()
            torch.cuda.synchronize()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(14)
    if args.pieces:
        pieces(wa, runs["window D128"][1], q, k, v, args.calls)
    return 0


@contextlib.contextmanager
def jit_launches(module):
    """The module's Hopper kernels launched through kernel[grid](...) every time, as before
    window_attention_hopper.launch bound them once."""
    hop = module._hopper_module()
    # (gdpa_hopper binds window_attention_hopper.launch as its _launch at import)
    places = [(hop._common, "launch"), (hop, "_launch")] if hasattr(hop, "_common") else [(hop, "launch")]
    saved = [getattr(obj, attr) for obj, attr in places]

    def jit(kernel, grid, args, constexprs):
        kernel[grid](*args, **constexprs)
    for obj, attr in places:
        setattr(obj, attr, jit)
    try:
        yield
    finally:
        for (obj, attr), value in zip(places, saved):
            setattr(obj, attr, value)


def pieces(wa, backward, q, k, v, calls: int) -> None:
    """The parts of one Hopper dK/dV launch, each timed alone (see the module docstring)."""
    from triton import knobs
    from triton.runtime.jit import compute_cache_key
    wa._HOPPER_BWD = True
    hop = wa._hopper_module()
    real, seen = hop._dkdv_kernel, {}

    class Recorder:   # captures the launch's grid and arguments, then launches as usual
        def __getitem__(self, grid):
            def launch(*a, **kw):
                seen.update(grid=grid, args=a, kwargs=kw)
                return real[grid](*a, **kw)
            return launch
    hop._dkdv_kernel = Recorder()
    try:
        backward()
    finally:
        hop._dkdv_kernel = real
    grid, a, kw = seen["grid"], seen["args"], seen["kwargs"]
    compiled = real[grid](*a, **kw)
    device = torch.cuda.current_device()
    binder = real.device_caches[device][4]
    key_cache = real.device_caches[device][1]
    bound, spec, options = binder(*a, **kw)
    values = tuple(bound.values())
    stream = torch.cuda.current_stream().cuda_stream

    gx, gy, gz = (*grid, 1, 1)[:3]

    def direct():
        compiled.run(gx, gy, gz, stream, compiled.function, compiled.packed_metadata,
                     None, knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook, *values)
    packed = False
    tensors = [(q, hop.CONFIGS["dkdv"][0]), (k, hop.CONFIGS["dkdv"][1]), (v, hop.CONFIGS["dkdv"][1]),
               (q, hop.CONFIGS["dkdv"][0]), (k, hop.CONFIGS["dkdv"][1]), (v, hop.CONFIGS["dkdv"][1])]
    rows = [
        ("whole backward (dQ Triton or Hopper, dK/dV Hopper)", backward),
        ("JIT launch: kernel[grid](...)", lambda: real[grid](*a, **kw)),
        ("  its binder alone (specialization of every argument)", lambda: binder(*a, **kw)),
        ("  its cache key (tuple and str of the options)", lambda: compute_cache_key(key_cache, spec, options)),
        ("compiled launcher called directly", direct),
        ("window_attention_hopper.launch (bound: key, then the launcher)", lambda: hop.launch(real, grid, a, kw)),
        ("six TMA descriptors", lambda: [hop._descriptor(x, packed, n) for x, n in tensors]),
        ("cuda stream lookup", lambda: torch.cuda.current_stream().cuda_stream),
    ]
    for name, fn in rows:
        print(f"  {name}: {per_call_us(fn, calls):.1f} us", flush=True)


if __name__ == "__main__":
    sys.exit(main())
