"""Launch each attention kernel once inside a CUDA profiler range, for Nsight Compute.

    ncu --profile-from-start off --clock-control none --section SpeedOfLight \\
        --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section Occupancy \\
        --section SchedulerStats --section WarpStateStats --section LaunchStats \\
        python3 bench/ncu_kernels.py [--only seed_fwd,gdpa_fwd,...] [--layout padded|packed]
    bash bench/gpu_run.sh ncu           # the same, its report under $OUT (NCU_ARGS="--layout packed")

Why. The kernels' speed targets are missed by 5-30% and every cheaper guess at the cause has been
timed and dropped (BENCHMARKS.md). The hardware counters say what a kernel waits on: the share of
each pipe (tensor, FMA, MUFU, ALU) and of the memory system it keeps busy, the issue slots used, and
the warps' stall reasons. Each case below is a kernel file's own host function, at the shapes the
models and the benchmarks run (bf16; full lengths padded, or with --layout packed the models'
jagged rows back to back), called a few times first (the autotuner
picks its config then, outside the profiled range) and once inside it.

On the CPU (Triton's interpreter) the same cases run at a tiny shape without a profiler range:
tests/test_ncu_kernels.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "templates" / "kernels"
sys.path.insert(0, str(ROOT / "tests"))   # opsload: a file imported by path
from opsload import import_file  # noqa: E402

# The shapes: seed pooling at bench_seed_pooling.py's first shape (64 seeds), GDPA and window
# attention at kunlun_60g's click tower (its PFFN: 512 generated K/V tokens; window 256 each side).
GPU_SHAPES = dict(seed=dict(B=1024, H=4, T=1024, D=64, S=64),
                  gdpa=dict(B=256, H=8, T=2048, S=512, D=64),
                  window=dict(B=256, H=8, T=2048, D=64, W=256))
CPU_SHAPES = dict(seed=dict(B=3, H=2, T=70, D=16, S=5),
                  gdpa=dict(B=2, H=2, T=40, S=24, D=16),
                  window=dict(B=2, H=2, T=40, D=16, W=8))
CASES = ("seed_fwd", "seed_bwd", "gdpa_fwd", "gdpa_bwd", "window_fwd", "window_bwd")


def build(case: str, shapes: dict, device: str, dtype: torch.dtype, packed: bool = False):
    """A no-argument function that runs one case's kernels once. `packed`: the sequences as the
    models lay them out, jagged rows back to back ([N, H, D], lengths uniform in [0, T], each
    example's first row in `starts`), instead of full lengths padded ([B, H, T, D])."""
    gen = torch.Generator(device="cpu").manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    family = case.split("_")[0]
    s = shapes[family]
    B, H, T, D = s["B"], s["H"], s["T"], s["D"]
    if packed:
        lengths = torch.randint(0, T + 1, (B,), generator=gen).to(device=device, dtype=torch.int32)
        starts = (torch.cumsum(lengths, 0) - lengths).to(torch.int32)
        seq = dict(starts=starts, max_len=T)
        shape = (int(lengths.sum()), H, D)
    else:
        lengths = torch.full((B,), T, dtype=torch.int32, device=device)
        seq, shape = {}, (B, H, T, D)
    if family == "seed":
        sp = import_file(KERNELS / "seed_pooling.py", "ncu_seed_pooling")
        seeds, kv = rand(H, s["S"], D), rand(*shape)
        scale = D ** -0.5
        if case == "seed_fwd":
            return lambda: sp.seed_pooling_forward(seeds, kv, kv, lengths, scale, **seq)
        o, lse = sp.seed_pooling_forward(seeds, kv, kv, lengths, scale, **seq)
        grad = rand(*o.shape)
        return lambda: sp.seed_pooling_backward_shared_kv(grad, seeds, kv, o, lse, lengths, scale, **seq)
    if family == "gdpa":
        g = import_file(KERNELS / "gdpa.py", "ncu_gdpa")
        q = rand(*shape)
        k, v = rand(B, H, s["S"], D), rand(B, H, s["S"], D)
        act, scale = ",".join(["gelu_tanh"] * H), 1.0 / s["S"]
        qseq = {"q_starts": seq["starts"], "max_len": T} if packed else {}
        if case == "gdpa_fwd":
            return lambda: g.gdpa_forward(q, k, v, lengths, None, act, scale, **qseq)
        grad = rand(*q.shape)
        return lambda: g.gdpa_backward(grad, q, k, v, lengths, None, act, scale, **qseq)
    w = import_file(KERNELS / "window_attention.py", "ncu_window")
    q, k, v = (rand(*shape) for _ in range(3))
    scale = D ** -0.5
    if case == "window_fwd":
        return lambda: w.window_attention_forward(q, k, v, lengths, s["W"], False, scale, **seq)
    o, lse = w.window_attention_forward(q, k, v, lengths, s["W"], False, scale, **seq)
    grad = rand(*q.shape)
    return lambda: w.window_attention_backward(grad, q, k, v, o, lse, lengths, s["W"], False, scale, **seq)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(CASES), help="comma-separated cases: " + ", ".join(CASES))
    p.add_argument("--warmup", type=int, default=3, help="calls before the profiled one (autotuning)")
    p.add_argument("--layout", choices=("padded", "packed"), default="padded",
                   help="padded: full lengths; packed: jagged rows back to back, the models' layout")
    args = p.parse_args(argv)
    cases = [c for c in args.only.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    shapes = GPU_SHAPES if cuda else CPU_SHAPES
    runs = {c: build(c, shapes, device, dtype, packed=args.layout == "packed") for c in cases}
    for case, fn in runs.items():
        for _ in range(args.warmup):
            fn()
        print(f"warmed up {case}: {shapes[case.split('_')[0]]}", flush=True)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.cudart().cudaProfilerStart()
    for case, fn in runs.items():
        if cuda:
            torch.cuda.nvtx.range_push(case)
        fn()
        if cuda:
            torch.cuda.nvtx.range_pop()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.cudart().cudaProfilerStop()
    print("profiled: " + ", ".join(cases), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
