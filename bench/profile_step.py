"""Where a training step of a generated model spends its time: torch.profiler over real steps.

    python3 bench/profile_step.py PACKAGE [--batch-size N] [--steps N] [--backend auto] [--top 25]
                                  [--compile [MODE]] [--scope blocks|model] [--layout packed|padded]
                                  [--group wukong] [--stream fp32|compute] [--trace-copies]
                                  [--gemms] [--peak TFLOPS]

PACKAGE is importable (e.g. with generated/ on PYTHONPATH). Prints each warm-up step's wall time
as it finishes (so a stall in autotuning or compilation shows), then the ops with the most CUDA
time and the most CPU time over the profiled steps, and the share of the step the GPU was busy.

--group NAME profiles the forward and backward of that group's blocks alone (window_attention,
gdpa, seed_pooling, wukong, embeddings, rest) on inputs captured from one forward pass, as the
bench's per-block timing runs them: which kernels make up a group's GPU time, without the rest
of the step around them.

--trace-copies records input shapes and prints, for every copy in the profiled steps (aten::copy_,
aten::clone, cudaMemcpyAsync), the chain of ops that issued it and its shapes, counted: which
tensor a `Memcpy DtoD` row copies, and who asked for it.

--gemms records input shapes and prints every GEMM shape of the step (aten::mm, addmm, bmm,
baddbmm) with its calls and milliseconds a step, its FLOPs and the TFLOP/s and fraction of --peak
(default 989, the H100/H200 bf16 datasheet) it reached: which matmuls run far from the ceiling.
"""
from __future__ import annotations

import argparse
import collections
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
    p.add_argument("--group", help="profile this group's blocks alone (forward + backward)")
    p.add_argument("--stream", default="fp32", choices=("fp32", "compute"),
                   help="the towers' residual stream (Model's stream): the bench's bf16 variants use compute")
    p.add_argument("--trace-copies", action="store_true",
                   help="print the op chain and shapes behind every copy in the profiled steps")
    p.add_argument("--gemms", action="store_true",
                   help="print each GEMM shape's time a step and the TFLOP/s it reached")
    p.add_argument("--peak", type=float, default=989.0, help="TFLOP/s the --gemms table divides by")
    args = p.parse_args()
    package = importlib.import_module(args.package)
    batch_size = args.batch_size or package.Config().batch_size
    # the package's own training step: what `python -m <package> bench` times
    bench = importlib.import_module(f"{args.package}.bench")
    model, batches, step = bench.training("cuda", batch_size, args.backend, args.compile or False, args.scope,
                                          args.layout, stream=args.stream)
    if args.group:
        step = group_step(bench, model, batches[0], args.group)

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
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=args.trace_copies or args.gemms) as prof:
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
    if args.gemms:
        rows = gemm_rows(prof.key_averages(group_by_input_shape=True), args.steps, device=True)
        print(format_gemms(rows, args.peak, args.top))
    if args.trace_copies:
        print(f"\ncopies over {args.steps} profiled steps: count, issuing ops (innermost first), shapes")
        for (chain, shapes), n in copy_chains(prof.events()).most_common(args.top):
            print(f"{n:5d}  {' <- '.join(chain)}  {shapes}")


GEMMS = {"aten::mm": 0, "aten::addmm": 1, "aten::bmm": 0, "aten::baddbmm": 1}   # op: index of mat1


def gemm_flops(op: str, shapes: list) -> int:
    """2·(batch)·M·N·K of one GEMM call from its recorded input shapes (mat1 [.., M, K], mat2
    [.., K, N]); 0 where the shapes are not those of a GEMM."""
    i = GEMMS[op]
    if len(shapes) < i + 2 or len(shapes[i]) not in (2, 3) or len(shapes[i + 1]) != len(shapes[i]):
        return 0
    a, b = shapes[i], shapes[i + 1]
    batch = a[0] if len(a) == 3 else 1
    return 2 * batch * a[-2] * a[-1] * b[-1]


def gemm_rows(events, steps: int, device: bool = True) -> list[dict]:
    """One row per (GEMM op, input shapes) of key_averages(group_by_input_shape=True): calls and
    seconds a step (the op's device time, or its CPU time with device=False) and FLOPs a call."""
    rows = []
    for e in events:
        if e.key not in GEMMS:
            continue
        seconds = (e.self_device_time_total if device else e.self_cpu_time_total) / 1e6 / steps
        rows.append({"op": e.key, "shapes": e.input_shapes, "calls": e.count / steps, "s": seconds,
                     "flops": gemm_flops(e.key, e.input_shapes)})
    return sorted(rows, key=lambda r: -r["s"])


def format_gemms(rows: list[dict], peak_tflops: float, top: int) -> str:
    total = sum(r["s"] for r in rows)
    flops = sum(r["flops"] * r["calls"] for r in rows)
    rate = flops / total / 1e12 if total else 0.0
    lines = [f"\nGEMMs: {total * 1e3:.1f} ms a step, {flops / 1e12:.2f} TFLOP, {rate:.0f} TFLOP/s "
             f"({rate / peak_tflops:.0%} of {peak_tflops:.0f}); the {min(top, len(rows))} longest shapes:",
             f"{'ms/step':>8} {'calls':>6} {'TFLOP/s':>8} {'of peak':>8}  op, input shapes"]
    for r in rows[:top]:
        t = r["flops"] * r["calls"] / r["s"] / 1e12 if r["s"] else 0.0
        lines.append(f"{r['s'] * 1e3:8.2f} {r['calls']:6.0f} {t:8.0f} {t / peak_tflops:8.0%}  {r['op']} {r['shapes']}")
    return "\n".join(lines)


COPIES = ("aten::copy_", "aten::clone", "cudaMemcpyAsync")


def copy_chains(events) -> collections.Counter:
    """Counter of (op chain, input shapes) over the copy events: the chain runs from the copy
    outwards through its CPU parents (four at most), the shapes are the first aten op's."""
    out = collections.Counter()
    for e in events:
        if e.name not in COPIES:
            continue
        chain, shapes, p = [e.name], None, e.cpu_parent
        if e.name.startswith("aten::"):
            shapes = e.input_shapes
        while p is not None and len(chain) < 5:
            chain.append(p.name[:70])
            if shapes is None and p.name.startswith("aten::"):
                shapes = p.input_shapes
            p = p.cpu_parent
        out[(tuple(chain), str(shapes))] += 1
    return out


def group_step(bench, model, batch: dict, group: str):
    """One forward + backward of every block of `group`, on inputs captured from one forward pass
    (the generated bench's per-block timing, run under the profiler instead of the clock)."""
    names = [n for n, g in bench.BLOCK_GROUPS.items() if g == group]
    if not names:
        raise SystemExit(f"no block in group {group!r}; groups: {sorted(set(bench.BLOCK_GROUPS.values()))}")
    inputs = bench._capture_inputs(model, batch)
    dtype = bench._AUTOCAST.get(model.config.dtype)

    def step() -> None:
        for name in names:
            bench._forward_backward(getattr(model, name), inputs[name], dtype)
    return step


if __name__ == "__main__":
    main()
