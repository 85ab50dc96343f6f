"""Calibrate kunlunc's cost model on this GPU: measure its efficiency factors and per-op overhead.

    python3 bench/calibrate.py --target h200 [--spec specs/kunlun_6g.yaml --spec specs/kunlun_60g.yaml]
                               [--out kunlun_compiler/calibration/h200.json] [--device cuda]

Each factor is a measured rate over the datasheet figure of --target in kunlun_compiler/hardware.py
(bf16 peak; memory: HBM bandwidth), clamped to (0, 1]:
- memory: what cost.py prices at bandwidth, at the specs' padded sequence activations
  [batch x max_len, d] (the --max-shapes largest): LayerNorm forward + backward in fp32 and,
  under bf16, the autocast cast and its gradient back; the bytes cost.py charges for them over
  their time, over mem_bw (a >= 1 GiB device copy is measured too, as the ceiling, not the factor);
- matmul: F.linear forward + backward (3 GEMMs) at the specs' linear shapes, rows = batch x the
  padded tokens the estimate charges, the --max-shapes shapes with the most model FLOPs; the factor
  is the models' total FLOPs over their total time (each shape weighted by its FLOPs in the models);
- gdpa, window_attention, seed_pooling: forward + backward of the Triton kernels, called through the
  registered ops of a package built from each spec, at the shapes of the spec's fused ops that the
  compiler gives the Triton kernel; FLOPs are the useful FLOPs the estimate counts (4·H·D·pairs per
  example, x3.5 for forward + backward) of the lengths actually run (--lengths);
- attention (unfused attention and fused ops run as plain torch): SDPA forward + backward at the
  specs' largest attention shape, dense;
- launch_s: GPU time per kernel of a chain of tiny linear + gelu ops replayed from a CUDA graph
  (cost.py charges 2 * launch_s per op: a floor per kernel, no host time); the chain's eager host
  time, forward + backward, per op and per dispatched aten op, is recorded beside it as a sample.
Times are the GPU kernels' time per call from torch.profiler (after warm-up and autotuning; no host
time between launches: the estimate adds host time apart), the graph replay's a median of
triton.testing.do_bench (CUDA events), on random data, never zeros. The JSON (format:
kunlun_compiler/calibration/README.md) is validated with hardware.py's own checks, then written
atomically; hardware.py applies it when it is imported.

--device cpu is a smoke test of this script (fp32, tiny shapes, the Triton kernels in Triton's
interpreter): it calibrates target cpu and writes to a temporary folder unless --out is given.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # the checkout this script writes its calibration into
sys.path.insert(0, str(ROOT / "bench"))   # count_ops.py beside this script

import torch                                      # noqa: E402
import torch.nn.functional as F                   # noqa: E402

from kunlun_compiler import codegen, hardware, writer       # noqa: E402
from kunlun_compiler.compiler import Compiled, compile_spec  # noqa: E402
from kunlun_compiler.cost import (ATTENTION_KINDS, DTYPE_BYTES, TRAIN_BYTES_FACTOR, CostModel,  # noqa: E402
                                  cast_bytes_per_element, pairs_in_window, runs_triton_kernel)
from kunlun_compiler.loader import load_spec      # noqa: E402

from benchutil import kernel_ms                   # noqa: E402
from count_ops import OpCounter                   # noqa: E402

DEFAULT_SPECS = ("specs/kunlun_6g.yaml", "specs/kunlun_60g.yaml")
SMOKE_SPECS = ("specs/kunlun_tiny.yaml",)
GPU_KERNEL_TARGET = "h200"   # a CPU smoke run compiles for a GPU so that its fused ops get Triton kernels
ATTENTION_TRAIN_FACTOR = 3.5  # forward + backward = 3.5x forward (cost.py, op_cost)
MATMUL_TRAIN_FACTOR = 3.0
LAUNCH_OPS = 200
GIB = 1 << 30


# ----------------------------------------------------------------------------- timing and data

@dataclass
class Bench:
    """Where and how one calibration run measures."""
    device: torch.device
    dtype: torch.dtype
    dtype_name: str            # hardware.py's name of dtype: bf16 | fp32
    hw: hardware.Hardware
    budget: int                # bytes one measurement may allocate
    smoke: bool                # CPU: tiny shapes, few repetitions, kernels interpreted
    rep_ms: int = 200
    gen: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))

    @property
    def peak(self) -> float:
        return self.hw.peak(self.dtype_name)

    @property
    def elt(self) -> int:
        return torch.tensor([], dtype=self.dtype).element_size()

    def randn(self, *shape: int, requires_grad: bool = False) -> torch.Tensor:
        """Random normal data on the device, made on the device (a 1 GiB tensor never crosses PCIe)."""
        gen = torch.Generator(self.device).manual_seed(int(torch.randint(1 << 30, (1,), generator=self.gen)))
        x = torch.randn(*shape, generator=gen, device=self.device, dtype=self.dtype)
        return x.requires_grad_(requires_grad)

    def median_s(self, fn) -> float:
        """Median seconds of fn(): CUDA events after warm-up (do_bench); wall clock on CPU."""
        if self.device.type == "cuda":
            import triton.testing
            return triton.testing.do_bench(fn, warmup=25, rep=self.rep_ms, return_mode="median") / 1e3
        return wall_median_s(fn, self.device, reps=2, warmup=0)   # a CPU smoke run: fn has run once

    def kernel_s(self, fn) -> float:
        """Seconds of GPU kernels per fn() call (benchutil.kernel_ms: the profiler's device time,
        no host time between launches); wall clock on CPU. The efficiency factors measure the GPU:
        the estimate adds host time apart (cost.py's host fit). Timed by CUDA events instead
        (median_s), a measurement with short kernels is host-bound whenever the host is busy: on
        a machine whose other GPU compiled at the same time, the 64-seed seed-pooling samples
        came out 1.2-1.6x slower and the smallest linears 2-2.6x, while the same kernels' time in
        the model's profile had not moved (BENCHMARKS.md, sixteenth session)."""
        if self.device.type != "cuda":
            return self.median_s(fn)
        return kernel_ms(fn, self.gpu_reps(fn)) / 1e3

    def gpu_reps(self, fn) -> int:
        """Calls to profile: about rep_ms of GPU time, 5 at least, 100 at most (fn runs warm)."""
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return max(5, min(100, int(self.rep_ms / 1e3 / max(time.perf_counter() - start, 1e-6))))


def wall_median_s(fn, device: torch.device, reps: int, warmup: int) -> float:
    """Median host wall-clock seconds of fn() to completion (synchronized on CUDA)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward_backward(forward, leaves: tuple[torch.Tensor, ...]):
    """A callable running forward(*leaves) and the gradients of every leaf, for a random grad_out.

    torch.autograd.grad returns the gradients instead of accumulating into .grad, so every call
    does the same work. One call runs here first: it compiles and autotunes the kernels."""
    out = forward(*leaves)
    grad_out = torch.randn_like(out)

    def step():
        torch.autograd.grad(forward(*leaves), leaves, grad_out)
    step()
    return step


# per element, as cost.py charges: LayerNorm reads and writes fp32, forward and backward
LAYER_NORM_BYTES = 2 * DTYPE_BYTES["fp32"] * TRAIN_BYTES_FACTOR


def sequence_shapes(compiled: list[tuple[Path, Compiled]], batch_of) -> Counter:
    """(rows, width) -> how many LayerNorms of the specs run on a padded sequence activation of
    that shape (rows = batch x max_len): the memory-bound work cost.py prices at bandwidth."""
    shapes: Counter = Counter()
    for _, c in compiled:
        g, batch = c.graph, batch_of(c)
        for op in g.ops():
            if op.kind == "elementwise" and op.attr("fn") in ("layer_norm", "add_layer_norm") and op.seq:
                shapes[(batch * _numel(op.shape[:-1]), op.shape[-1])] += 1
    return shapes


def clamp(factor: float) -> float:
    """A factor in (0, 1]: above 1 means the datasheet figure is beaten (or the FLOPs overcounted)."""
    return min(1.0, max(factor, 1e-6))


def fit_batch(batch: int, bytes_per_example: float, budget: int) -> int:
    """The largest batch <= `batch`, halving, whose tensors fit the memory budget."""
    while batch > 1 and batch * bytes_per_example > budget:
        batch //= 2
    return batch


def aggregate(samples: list[dict], peak: float) -> float | None:
    """Model FLOPs over model time, over peak: sum(w) / sum(w / rate) / peak, w the model FLOPs a
    sample stands for (its count x its FLOPs at the spec's batch), rate its measured FLOP/s."""
    if not samples:
        return None
    time_s = sum(s["weight_flops"] / s["flops_per_s"] for s in samples)
    return sum(s["weight_flops"] for s in samples) / time_s / peak


# ----------------------------------------------------------------------------- shapes from specs

@dataclass(frozen=True)
class LinearShape:
    rows: int
    in_features: int
    out_features: int
    bias: bool

    @property
    def flops(self) -> float:   # forward
        return 2 * self.rows * self.in_features * self.out_features


@dataclass(frozen=True)
class KernelShape:
    """One fused op as its Triton kernel runs it, per example; lengths apply to `seq_len` tokens."""
    kind: str            # gdpa | window_attention | seed_pooling
    spec: str            # the spec (package) whose registered ops run it
    batch: int
    heads: int
    q_len: int           # gdpa, window: the sequence (max_len); seed_pooling: the seeds
    kv_len: int          # gdpa: the PFFN kv tokens; window: the sequence; seed_pooling: the sequence
    head_dim: int
    max_len: int
    avg_len: float
    args: tuple          # the entry point's arguments after the tensors and lengths
    est_flops: float     # the estimate's forward FLOPs per example (CostModel.flops)

    def useful_flops(self, length: int) -> float:
        """Forward FLOPs of one example of `length` tokens: cost.py's 4·H·D·pairs."""
        if self.kind == "gdpa":
            pairs = length * self.kv_len
        elif self.kind == "window_attention":
            pairs = pairs_in_window(length, self.args[0], self.args[1])
        else:
            pairs = self.q_len * length
        return 4 * self.heads * self.head_dim * pairs


def compile_specs(paths: list[Path], kernel_target: str) -> list[tuple[Path, Compiled]]:
    return [(p, compile_spec(load_spec(p), kernel_target)) for p in paths]


def linear_shapes(compiled: list[tuple[Path, Compiled]], batch_of) -> Counter:
    """LinearShape -> how many linear ops of the specs have it (rows padded, as time_s charges)."""
    shapes: Counter = Counter()
    for _, c in compiled:
        g, batch = c.graph, batch_of(c)
        for op in g.ops():
            if op.kind != "linear":
                continue
            x = g.op(op.inputs[0])
            rows = batch * _numel(x.shape[:-1])
            shapes[LinearShape(rows, op.attrs["in_features"], op.attrs["out_features"],
                               bool(op.attrs.get("bias", True)))] += 1
    return shapes


def kernel_shapes(compiled: list[tuple[Path, Compiled]], batch_of, target: str) -> Counter:
    """KernelShape -> how many fused ops with attr kernel == "triton" the specs have at it."""
    shapes: Counter = Counter()
    for _, c in compiled:
        model = CostModel(c.graph, target, batch_of(c))
        for op in c.graph.ops():
            if runs_triton_kernel(op):
                shapes[_kernel_shape(c, op, model)] += 1
    return shapes


def _kernel_shape(c: Compiled, op, model: CostModel) -> KernelShape:
    g, a = c.graph, op.attrs
    heads, q_len, head_dim = g.op(op.inputs[0]).shape
    kv_len = g.op(op.inputs[1]).shape[1]
    seq = a["tk"] if op.kind == "seed_pooling" else a["tq"]
    max_len, avg_len = g.seq_lens[seq]
    if op.kind == "gdpa":
        args = (a["activations"], a["scale"])
    elif op.kind == "window_attention":
        args = (a["window"], a["causal"], "softmax" if a.get("softmax") else a["activations"], a["scale"])
    else:
        args = (a["scale"],)
    return KernelShape(op.kind, c.plan.name, model.batch_size, heads, q_len, kv_len, head_dim, max_len, avg_len,
                       args, model.flops(op, useful=False))


def attention_shape(compiled: list[tuple[Path, Compiled]], batch_of) -> dict | None:
    """The attention op (any kind of ATTENTION_KINDS) with the most executed FLOPs per step."""
    best, best_flops = None, 0.0
    for _, c in compiled:
        model = CostModel(c.graph, "cpu", batch_of(c))   # FLOPs do not depend on the target
        for op in c.graph.ops():
            if op.kind not in ATTENTION_KINDS or op.kind == "attn_values":
                continue
            flops = model.flops(op, useful=False) * model.batch_size
            if flops > best_flops:
                heads, q_len, head_dim = c.graph.op(op.inputs[0]).shape
                kv_len = c.graph.op(op.inputs[1]).shape[1]
                best_flops = flops
                best = {"op": f"{c.plan.name}:{op.id}", "batch": model.batch_size, "heads": heads,
                        "q_len": q_len, "kv_len": kv_len, "head_dim": head_dim}
    return best


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


# ----------------------------------------------------------------------------- measurements

def measure_memory(bench: Bench, shapes: Counter, max_shapes: int) -> tuple[float, list[dict]]:
    """The memory factor from what cost.py prices at bandwidth, at the specs' largest padded
    sequence activations: per element, LayerNorm moves (4 in + 4 out) x 3 for forward + backward
    = 24 bytes, the autocast cast and its gradient 2 x (4 + 2) = 12. Factor = the bytes those ops
    stand for in the models over their time (each shape weighted by its count), over mem_bw.
    A large device copy is measured too and reported as the ceiling."""
    samples = [_copy_sample(bench)]
    ranked = sorted(shapes.items(), key=lambda kv: -kv[0][0] * kv[0][1] * kv[1])[:max_shapes]
    for (rows, width), count in ranked:
        samples.append(_layer_norm_sample(bench, rows, width, count))
        if bench.dtype != torch.float32:       # no autocast cast on an fp32 target
            samples.append(_cast_sample(bench, rows, width, count))
    priced = [s for s in samples if s["measure"] == "memory"]
    time_s = sum(s["weight_bytes"] / s["bytes_per_s"] for s in priced)
    return sum(s["weight_bytes"] for s in priced) / time_s / bench.hw.mem_bw, samples


def _copy_sample(bench: Bench) -> dict:
    nbytes = 64 << 20 if bench.smoke else max(GIB, min(2 * GIB, bench.budget // 2))
    src = bench.randn(nbytes // bench.elt)
    dst = torch.empty_like(src)
    seconds = bench.kernel_s(lambda: dst.copy_(src))
    moved = 2 * src.numel() * bench.elt
    return {"measure": "memory_copy", "bytes": moved, "time_s": seconds, "bytes_per_s": moved / seconds,
            "efficiency": moved / seconds / bench.hw.mem_bw}


def _memory_sample(bench: Bench, op: str, rows: int, run_rows: int, width: int, count: int,
                   bytes_per_element: int, seconds: float) -> dict:
    moved = bytes_per_element * run_rows * width
    return {"measure": "memory", "op": op, "rows": rows, "rows_run": run_rows, "width": width,
            "count": count, "bytes": moved, "time_s": seconds, "bytes_per_s": moved / seconds,
            "efficiency": moved / seconds / bench.hw.mem_bw,
            "weight_bytes": count * bytes_per_element * rows * width}


def _layer_norm_sample(bench: Bench, rows: int, width: int, count: int) -> dict:
    run_rows = fit_batch(rows, 4 * 4 * width, bench.budget)          # x, y and their gradients
    x = bench.randn(run_rows, width).float().requires_grad_()       # autocast runs norms in fp32
    w = torch.ones(width, device=bench.device, requires_grad=True)
    b = torch.zeros(width, device=bench.device, requires_grad=True)
    seconds = bench.kernel_s(forward_backward(lambda t, w, b: F.layer_norm(t, (width,), w, b), (x, w, b)))
    return _memory_sample(bench, "layer_norm", rows, run_rows, width, count, LAYER_NORM_BYTES, seconds)


def _cast_sample(bench: Bench, rows: int, width: int, count: int) -> dict:
    per_element = cast_bytes_per_element(bench.elt)
    run_rows = fit_batch(rows, per_element * width, bench.budget)
    x = bench.randn(run_rows, width).float().requires_grad_()       # the fp32 residual stream
    seconds = bench.kernel_s(forward_backward(lambda t: t.to(bench.dtype), (x,)))
    return _memory_sample(bench, "autocast_cast", rows, run_rows, width, count, per_element, seconds)


def pick_linear_shapes(shapes: Counter, max_shapes: int) -> list[tuple[LinearShape, int]]:
    """The max_shapes shapes with the most model FLOPs (count x FLOPs), then up to max_shapes // 2
    more: the heaviest (in_features, out_features) pairs not yet sampled. The cost model looks a
    linear's efficiency up by that pair, and the top by FLOPs are all the towers' (M >= 262k rows):
    without the second pick the interaction's narrow-row GEMMs (Wukong's MLPs, M = batch) were
    priced at the towers' factor, and Wukong's GPU estimate came out 0.56 of measured."""
    ranked = sorted(shapes.items(), key=lambda kv: -kv[0].flops * kv[1])
    picked = ranked[:max_shapes]
    seen = {(s.in_features, s.out_features) for s, _ in picked}
    for shape, count in ranked[max_shapes:]:
        if len(picked) >= max_shapes + max_shapes // 2:
            break
        if (shape.in_features, shape.out_features) not in seen:
            seen.add((shape.in_features, shape.out_features))
            picked.append((shape, count))
    return picked


def measure_matmul(bench: Bench, shapes: Counter, max_shapes: int) -> tuple[float | None, list[dict]]:
    """F.linear forward + backward at the shapes pick_linear_shapes chooses."""
    samples = [_linear_sample(bench, shape, count) for shape, count in pick_linear_shapes(shapes, max_shapes)]
    return aggregate(samples, bench.peak), samples


def _linear_sample(bench: Bench, shape: LinearShape, count: int) -> dict:
    per_row = 2 * (shape.in_features + shape.out_features) * bench.elt   # x, y and their gradients
    rows = fit_batch(shape.rows, per_row, bench.budget)
    x = bench.randn(rows, shape.in_features, requires_grad=True)
    w = bench.randn(shape.out_features, shape.in_features, requires_grad=True)
    b = bench.randn(shape.out_features, requires_grad=True) if shape.bias else None
    leaves = (x, w) if b is None else (x, w, b)
    seconds = bench.kernel_s(forward_backward(lambda *t: F.linear(*t), leaves))
    flops = MATMUL_TRAIN_FACTOR * 2 * rows * shape.in_features * shape.out_features
    return {"measure": "matmul", "rows": shape.rows, "rows_run": rows, "in_features": shape.in_features,
            "out_features": shape.out_features, "bias": shape.bias, "count": count,
            "flops": flops, "time_s": seconds, "flops_per_s": flops / seconds,
            "efficiency": flops / seconds / bench.peak,
            "weight_flops": count * MATMUL_TRAIN_FACTOR * shape.flops}


def measure_kernels(bench: Bench, shapes: Counter, ops_of, lengths: str,
                    max_shapes: int) -> dict[str, tuple[float | None, list[dict]]]:
    """Per kernel kind: forward + backward of its Triton op at the specs' shapes of that kind."""
    out = {}
    for kind in hardware.KERNEL_KEYS:
        ranked = sorted(((s, n) for s, n in shapes.items() if s.kind == kind),
                        key=lambda kv: -kv[0].est_flops * kv[0].batch * kv[1])[:max_shapes]
        samples = [s for shape, count in ranked if (s := _kernel_sample(bench, shape, count, ops_of, lengths))]
        out[kind] = (aggregate(samples, bench.peak), samples)
    return out


def _kernel_sample(bench: Bench, shape: KernelShape, count: int, ops_of, lengths: str) -> dict | None:
    try:
        ops = ops_of(shape.spec)
    except ImportError as exc:   # no triton here
        print(f"  skipped {shape.kind} {shape.spec}: {exc}", file=sys.stderr)
        return None
    per_example = 3 * shape.heads * shape.head_dim * (2 * shape.q_len + 2 * shape.kv_len) * bench.elt
    batch = fit_batch(shape.batch, per_example, bench.budget)
    lens = draw_lengths(lengths, batch, shape.max_len, shape.avg_len, bench.gen).to(bench.device)
    leaves, forward = _kernel_inputs(bench, shape, batch, ops, lens)
    reason = ops.supports(shape.kind, *_views(shape, leaves))
    if reason:
        print(f"  skipped {shape.kind} {shape.spec}: {reason}", file=sys.stderr)
        return None
    seconds = bench.kernel_s(forward_backward(forward, leaves))
    flops = ATTENTION_TRAIN_FACTOR * sum(shape.useful_flops(n) for n in lens.tolist())
    return {"measure": shape.kind, "spec": shape.spec, "batch": shape.batch, "batch_run": batch,
            "heads": shape.heads, "q_len": shape.q_len, "kv_len": shape.kv_len, "head_dim": shape.head_dim,
            "max_len": shape.max_len, "avg_len": shape.avg_len, "mean_length_run": float(lens.float().mean()),
            "args": list(shape.args), "count": count, "flops": flops, "time_s": seconds,
            "flops_per_s": flops / seconds, "efficiency": flops / seconds / bench.peak,
            "est_flops_per_example": shape.est_flops,
            "weight_flops": count * ATTENTION_TRAIN_FACTOR * shape.est_flops * shape.batch}


def draw_lengths(mode: str, batch: int, max_len: int, avg_len: float, gen: torch.Generator) -> torch.Tensor:
    """avg: every example at avg_len; around: uniform with mean avg_len (the generated
    example_batch(at_avg_len=True)); uniform: uniform on [0, max_len]."""
    if mode == "avg":
        return torch.full((batch,), round(avg_len), dtype=torch.int64)
    if mode == "uniform":
        return torch.randint(max_len + 1, (batch,), generator=gen)
    half = min(avg_len, max_len - avg_len)
    return (avg_len - half + torch.rand(batch, generator=gen) * 2 * half).round().long().clamp(0, max_len)


def _kernel_inputs(bench: Bench, shape: KernelShape, batch: int, ops, lens: torch.Tensor):
    """Leaf tensors in the model's padded layout ([B, T, H·D] sequences) and the op on their head
    views (the triton_ops entry points: layout arguments starts None, max_len 0 after lengths)."""
    width = shape.heads * shape.head_dim
    if shape.kind == "seed_pooling":   # seeds [S, H·D] shared by the batch; K = V = the sequence
        leaves = (bench.randn(shape.q_len, width, requires_grad=True),
                  bench.randn(batch, shape.kv_len, width, requires_grad=True))
        return leaves, lambda s, kv: ops.seed_pooling(*_views(shape, (s, kv)), lens, None, 0, *shape.args)
    leaves = (bench.randn(batch, shape.q_len, width, requires_grad=True),
              bench.randn(batch, shape.kv_len, width, requires_grad=True),
              bench.randn(batch, shape.kv_len, width, requires_grad=True))
    entry = ops.gdpa if shape.kind == "gdpa" else ops.window_attention
    return leaves, lambda q, k, v: entry(*_views(shape, (q, k, v)), lens, None, 0, *shape.args)  # padded


def _views(shape: KernelShape, leaves) -> tuple[torch.Tensor, ...]:
    """[..., T, H·D] -> [..., H, T, D] (the generated split_heads); seed pooling's K and V are one."""
    heads = [_split_heads(x, shape.heads) for x in leaves]
    return (heads[0], heads[1], heads[1]) if shape.kind == "seed_pooling" else tuple(heads)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    *lead, t, width = x.shape
    return x.view(*lead, t, heads, width // heads).transpose(-2, -3)


def measure_attention(bench: Bench, shape: dict | None) -> tuple[float | None, list[dict]]:
    """SDPA forward + backward, dense and unmasked, at the specs' largest attention shape."""
    if shape is None:
        return None, []
    per_example = 3 * shape["heads"] * shape["head_dim"] * (2 * shape["q_len"] + 2 * shape["kv_len"]) * bench.elt
    batch = fit_batch(shape["batch"], per_example, bench.budget)
    width = shape["heads"] * shape["head_dim"]
    leaves = (bench.randn(batch, shape["q_len"], width, requires_grad=True),
              bench.randn(batch, shape["kv_len"], width, requires_grad=True),
              bench.randn(batch, shape["kv_len"], width, requires_grad=True))
    forward = lambda q, k, v: F.scaled_dot_product_attention(  # noqa: E731
        *(_split_heads(x, shape["heads"]) for x in (q, k, v)))
    seconds = bench.kernel_s(forward_backward(forward, leaves))
    flops = ATTENTION_TRAIN_FACTOR * 4 * batch * shape["heads"] * shape["q_len"] * shape["kv_len"] * shape["head_dim"]
    sample = {"measure": "attention", **shape, "batch_run": batch, "flops": flops, "time_s": seconds,
              "flops_per_s": flops / seconds, "efficiency": flops / seconds / bench.peak}
    return flops / seconds / bench.peak, [sample]


def measure_launch(bench: Bench, n_ops: int = LAUNCH_OPS) -> tuple[float, list[dict]]:
    """launch_s, the per-kernel floor cost.py charges per op and direction on top of its roofline:
    on CUDA the GPU time per kernel of a chain of n_ops tiny ops (linear, gelu, ...) replayed
    from a CUDA graph, so no host time is in it. The estimate models GPU time; the host time an
    eager step may wait through instead is recorded beside it, as a sample: the same chain run
    eagerly forward + backward, per op and direction and per dispatched aten op
    (host_s_per_dispatch; with the dispatch count of a model's step, its eager host time). On CPU
    (smoke) the two are one: the chain's wall clock."""
    layers = [torch.nn.Linear(16, 16, device=bench.device, dtype=bench.dtype) for _ in range(n_ops // 2)]
    leaves = (bench.randn(8, 16, requires_grad=True), *(p for layer in layers for p in layer.parameters()))

    def chain(x, *params):
        for i in range(len(layers)):
            x = F.gelu(F.linear(x, params[2 * i], params[2 * i + 1]))
        return x

    step = forward_backward(chain, leaves)
    seconds = wall_median_s(step, bench.device, reps=5 if bench.smoke else 50, warmup=2 if bench.smoke else 10)
    dispatches = _dispatched_ops(step)   # aten ops the host issues for the chain, both directions
    host = {"measure": "host_s", "ops": n_ops, "time_s": seconds, "host_s_per_op": seconds / (2 * n_ops),
            "dispatches": dispatches, "host_s_per_dispatch": seconds / dispatches}
    if bench.device.type != "cuda":
        return host["host_s_per_op"], [{"measure": "launch_s", "ops": n_ops, "time_s": seconds,
                                        "launch_s": host["host_s_per_op"],
                                        "how": "wall clock of the chain, forward + backward (CPU)"}, host]
    inputs = tuple(t.detach() for t in leaves)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):                  # warm-up off the capture, as CUDA graphs need
            chain(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(graph):
            chain(*inputs)
    replay = bench.median_s(graph.replay)
    launch_s = replay / n_ops
    return launch_s, [{"measure": "launch_s", "ops": n_ops, "time_s": replay, "launch_s": launch_s,
                       "how": "CUDA graph replay of the chain's forward, GPU time per kernel"}, host]


def _dispatched_ops(fn) -> int:
    """Ops fn() dispatches (bench/count_ops.py's counter; the generated bench reports the same
    count per step): with host_s_per_dispatch, an eager model's host time per step."""
    with OpCounter() as counter:
        fn()
    return sum(counter.counts.values())


# ----------------------------------------------------------------------------- generated packages

class GeneratedOps:
    """The Triton entry points (triton_ops) of packages built from the specs, one per spec, built
    into a temporary folder on first use and imported under a private name."""

    def __init__(self, compiled: list[tuple[Path, Compiled]], workdir: Path) -> None:
        self._compiled = {c.plan.name: (path, c) for path, c in compiled}
        self._workdir = workdir
        self._modules: dict = {}

    def __call__(self, spec_name: str):
        if spec_name not in self._modules:
            path, c = self._compiled[spec_name]
            package = writer.write_package(codegen.render(c, path.name), self._workdir, c.plan.name)
            name = f"_kunlunc_calibrate_{c.plan.name}"
            module_spec = importlib.util.spec_from_file_location(name, package / "__init__.py",
                                                                 submodule_search_locations=[str(package)])
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
            self._modules[spec_name] = importlib.import_module(f"{name}.triton_ops")
        return self._modules[spec_name]


# ----------------------------------------------------------------------------- the run

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Measure kunlunc's cost-model factors on this machine.")
    p.add_argument("--target", choices=sorted(hardware.DATASHEET),
                   help="the hardware.py target this GPU is (required on cuda; cpu with --device cpu)")
    p.add_argument("--spec", action="append", type=Path,
                   help=f"spec(s) whose shapes to measure (default: {', '.join(DEFAULT_SPECS)}; "
                        f"on cpu {', '.join(SMOKE_SPECS)})")
    p.add_argument("--out", type=Path, help="the JSON to write (default kunlun_compiler/calibration/<target>.json)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--lengths", choices=("around", "avg", "uniform"), default="around",
                   help="sequence lengths of the kernel runs: uniform with mean avg_len (default), all at "
                        "avg_len, or uniform on [0, max_len]")
    p.add_argument("--max-shapes", type=int, default=12, help="linear shapes to time, most model FLOPs first")
    p.add_argument("--max-memory-shapes", type=int, default=3,
                   help="sequence activation shapes for the memory factor, largest first")
    p.add_argument("--max-kernel-shapes", type=int, default=6,
                   help="shapes per Triton kernel, most model FLOPs first (each new shape autotunes, ~10 s)")
    p.add_argument("--batch-size", type=int,
                   help="examples per step at every spec shape (default: each spec's batch_size)")
    p.add_argument("--memory-fraction", type=float, default=0.4,
                   help="fraction of free GPU memory one measurement may use")
    args = p.parse_args(argv)
    return _check_args(p, args)


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    if args.device == "cpu":
        if args.target not in (None, "cpu"):
            p.error("--device cpu calibrates target cpu (a smoke test); use --device cuda on a GPU")
        args.target = "cpu"
        args.out = args.out or Path(tempfile.gettempdir()) / "kunlunc-calibration" / "cpu.json"
    elif args.target is None or args.target == "cpu":
        p.error("--device cuda needs --target, one of the GPUs of kunlun_compiler/hardware.py")
    elif not torch.cuda.is_available():
        p.error("no CUDA device here (torch.cuda.is_available() is False); --device cpu runs a smoke test")
    args.out = args.out or ROOT / "kunlun_compiler" / "calibration" / f"{args.target}.json"
    if args.out.stem != args.target:
        p.error(f"--out must be named {args.target}.json: hardware.py loads <target>.json")
    args.spec = args.spec or [ROOT / s for s in (SMOKE_SPECS if args.device == "cpu" else DEFAULT_SPECS)]
    return args


def make_bench(args: argparse.Namespace) -> Bench:
    hw = hardware.DATASHEET[args.target]
    if args.device == "cpu":
        return Bench(torch.device("cpu"), torch.float32, "fp32", hw, budget=256 << 20, smoke=True)
    device = torch.device("cuda")
    free, _ = torch.cuda.mem_get_info(device)
    name = torch.cuda.get_device_name(device)
    model = hw.description.split()[1]   # "NVIDIA H200 SXM" -> "H200"
    if model.lower() not in name.lower():
        print(f"warning: target {args.target} is {hw.description}, but this GPU is {name}", file=sys.stderr)
    return Bench(device, torch.bfloat16, "bf16", hw, budget=int(free * args.memory_fraction), smoke=False)


def run(args: argparse.Namespace, bench: Bench) -> tuple[dict, float, list[dict], list[str]]:
    """Every measurement -> (efficiency, launch_s, samples, keys not measured)."""
    kernel_target = args.target if args.device == "cuda" else GPU_KERNEL_TARGET
    compiled = compile_specs(args.spec, kernel_target)
    batch_of = (lambda c: 2) if bench.smoke else (lambda c: args.batch_size or c.plan.batch_size)
    measured = {"memory": measure_memory(bench, sequence_shapes(compiled, batch_of), args.max_memory_shapes),
                "matmul": measure_matmul(bench, linear_shapes(compiled, batch_of), args.max_shapes),
                "attention": measure_attention(bench, attention_shape(compiled, batch_of))}
    with tempfile.TemporaryDirectory(prefix="kunlunc-calibrate-") as workdir:
        ops_of = GeneratedOps(compiled, Path(workdir))
        shapes = kernel_shapes(compiled, batch_of, kernel_target)
        measured.update(measure_kernels(bench, shapes, ops_of, args.lengths, args.max_kernel_shapes))
    launch_s, launch_samples = measure_launch(bench)
    return _factors(bench, measured, launch_s, launch_samples)


def _factors(bench: Bench, measured: dict, launch_s: float, launch_samples: list[dict]):
    """Clamped factors; a key with no measurement keeps the target's current factor. On CPU the
    kernels ran in Triton's interpreter, which says nothing about speed: the cpu target runs the
    plain-torch references (costed as "attention"), so they take the measured attention factor."""
    current = hardware.get(bench.hw.name).efficiency
    efficiency, samples, missing = {}, [], []
    for key in hardware.EFFICIENCY_KEYS:
        factor, key_samples = measured[key]
        samples += key_samples
        if bench.smoke and key in hardware.KERNEL_KEYS:
            factor = measured["attention"][0]
        if factor is None:
            missing.append(key)
            factor = current[key]
        efficiency[key] = clamp(factor)
    return efficiency, min(max(launch_s, 1e-9), hardware.MAX_LAUNCH_S), samples + launch_samples, missing


def payload(args: argparse.Namespace, bench: Bench, efficiency: dict, launch_s: float,
            samples: list[dict], missing: list[str], argv: list[str]) -> dict:
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    gpu = torch.cuda.get_device_name(bench.device) if bench.device.type == "cuda" else \
        f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"
    return {
        "target": args.target, "gpu": gpu,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "torch": torch.__version__, "triton": triton_version,
        "command": shlex.join(["python3", "bench/calibrate.py", *argv]),
        "dtype": bench.dtype_name, "lengths": args.lengths,
        "specs": [str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in args.spec],
        "efficiency": efficiency, "launch_s": launch_s, "not_measured": missing, "samples": samples,
    }


def kept_host(path: Path) -> dict:
    """{"host": ...} of the file being replaced, if it has one: the host fit (bench/fit_host.py)
    comes from measured training steps, which this script does not run."""
    try:
        host = json.loads(path.read_text(encoding="utf-8")).get("host")
    except (OSError, ValueError, AttributeError):
        return {}
    return {"host": host} if host is not None else {}


def write_atomic(path: Path, data: dict) -> None:
    """Checked with hardware.py's own validation, then written beside `path` and renamed onto it."""
    hardware.parse_calibration(data, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def print_table(data: dict, bench: Bench) -> None:
    was = hardware.get(bench.hw.name)
    counts = Counter(s["measure"] for s in data["samples"])
    print(f"calibration of {data['target']} on {data['gpu']} ({data['dtype']}, torch {data['torch']}, "
          f"triton {data['triton']})")
    print(f"{'factor':<18}{'measured':>10}{'was':>10}{'samples':>9}")
    for key, value in data["efficiency"].items():
        note = "  (not measured: kept)" if key in data["not_measured"] else ""
        print(f"{key:<18}{value:>10.3f}{was.efficiency[key]:>10.3f}{counts[key]:>9}{note}")
    print(f"{'launch_s':<18}{data['launch_s'] * 1e6:>8.2f}us{was.launch_s * 1e6:>8.2f}us{counts['launch_s']:>9}")
    host = next((x for x in data["samples"] if x["measure"] == "host_s"), None)
    if host:
        print(f"eager host time   {host['host_s_per_op'] * 1e6:.2f}us per op and direction, "
              f"{host['host_s_per_dispatch'] * 1e6:.2f}us per dispatched aten op (not in the estimate)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.device == "cpu":   # before any kernel module is imported: Triton reads it at decoration
        os.environ.setdefault("TRITON_INTERPRET", "1")
    bench = make_bench(args)
    efficiency, launch_s, samples, missing = run(args, bench)
    data = payload(args, bench, efficiency, launch_s, samples, missing, argv)
    data.update(kept_host(args.out))
    write_atomic(args.out, data)
    print_table(data, bench)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
