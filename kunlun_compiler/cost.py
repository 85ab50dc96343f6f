"""The cost model: FLOPs, bytes, parameters and roofline time per op; totals per model.

Conventions (kunlun-model.md, "Counting FLOPs"):
- useful work only: a jagged sequence counts `avg_len` tokens, a window counts in-window pairs;
- a matmul of [M, K] x [K, N] is 2·M·N·K; elementwise ops, norms, softmax are 0 FLOPs
  (they move bytes), exactly as torch.utils.flop_counter counts;
- backward is 2x forward for matmuls, 2.5x for attention ops (recomputed scores);
- embedding lookups are 0 FLOPs, their rows are bytes.
`flops` is the useful count (what MFU divides by); `flops_exec` is what the chosen
implementation executes: the torch path runs padded sequences (max_len) and an unfused
window attention runs the dense T x T scores. The two agree when avg_len == max_len and
every window op is fused.

Time is priced on what the generated code executes, not on the useful counts: torch ops run the
padded tensor (only the jagged Triton kernels skip padding), and under bf16/fp16 autocast the
values keep the dtype autocast gives them (norms, softmax, residual sums, embeddings and
parameters in fp32; matmuls and kernels in the autocast dtype), with a cast kernel each way for
every fp32 input of a matmul or attention op. On the H200 those casts alone were 20% of a
kunlun_60g step (batch 256, 2026-11-29). Under torch.compile per block (`compiled_work`) inductor
fuses a block's elementwise ops, concats and lookups into kernels: only values crossing a fused
kernel's boundary move, and only the casts of values from other blocks (or parameters) remain.
A linear runs at its own shape's calibrated efficiency where there is one.

All per-op numbers are per example; per-step numbers multiply by the batch size.

Host time. The GPU time above is what the kernels take; a step also has to be issued by the host
(Python, autograd, dispatch, launches), and at small batches or on small models that is the longer
of the two. The host time is `host_ops` (the ops that launch GEMM-class work: matmuls, attention
and the Triton kernels; each brings its backward and the glue around it) times a per-op host cost
fitted on the target (hardware.Hardware.host_s, eager and compiled per block). It does not grow
with the batch. A step's estimate is max(GPU time, host time).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from typing import NamedTuple

from . import hardware
from .ir import NO_LAUNCH, Graph, Op
from .passes.fuse import FUSED_KINDS, FUSION_RULES

ATTENTION_KINDS = FUSED_KINDS | {"attn_scores", "attn_values"}
assert FUSED_KINDS <= set(hardware.KERNEL_KEYS), "every fused kind needs its efficiency factor"
MATMUL_KINDS = frozenset({"linear", "token_linear", "bmm"})
TIME_GAP_BUCKETS = 32   # log2 buckets of the time gap, clipped: 2^31 s is 68 years
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
TRAIN_BYTES_FACTOR = 3   # a memory-bound op moves its forward bytes again twice in backward
# A sum's backward has no kernel: it hands the output's gradient to both inputs as it is. Eager,
# the input that another op reads too (the residual stream, which the block's norm also reads)
# gets its two gradients added by autograd: one more pass of the forward's size. Compiled,
# inductor folds that addition into the other reader's backward kernel. (eager, compiled)
ADD_TRAIN_BYTES_FACTOR = (2, 1)
# Elementwise functions autocast runs in fp32 (its fp32 op list): their outputs are fp32.
AUTOCAST_FP32_FNS = frozenset({"layer_norm", "add_layer_norm", "rms_norm", "softmax"})
CASTS_INPUTS = MATMUL_KINDS | ATTENTION_KINDS   # autocast (or the ops' entry points) cast their inputs
HOST_KINDS = MATMUL_KINDS | ATTENTION_KINDS     # the ops the host-time estimate counts (is_host_op)
# elementwise steps inside an attention chain (scores -> ... -> values): padded in either layout
ATTENTION_FNS = frozenset(fn for r in FUSION_RULES for kind, fn in r.pattern if kind == "elementwise")
# Under torch.compile (per block) inductor fuses these with each other within a block: a value
# passed between two of them never reaches memory (views are followed through).
FUSIBLE = frozenset({"elementwise", "concat", "embedding"})
VIEWS = frozenset({"reshape", "slice"})
# AdamW over every parameter, embedding tables included (as the generated training bench runs
# it): read param, grad, m, v and write param, m, v in fp32.
OPTIMIZER_BYTES_PER_PARAM = 7 * 4


class OpCost(NamedTuple):
    """One op's costs at a target (a NamedTuple: a build makes one per op per target and stream)."""

    id: str
    kind: str
    block: str
    group: str
    flops: float        # useful forward FLOPs per example
    flops_exec: float   # executed forward FLOPs per example
    bytes: float        # forward activation bytes moved per example (weights: params x dtype, per step)
    params: int
    train_factor: float  # forward + backward FLOPs = train_factor x forward
    time_s: float       # estimated forward + backward time per step, eager
    kernel: str = ""
    time_compiled_s: float = 0.0   # the same under torch.compile: autocast casts fused away
    padding: float = 0.0           # share of its time on padded rows: what a packed batch saves
    batched_with: str = ""         # runs in the kernel of this op (passes.batch_kernels): no launch, no host op


def pairs_in_window(t: float, window: int, causal: bool) -> float:
    """Count of (i, j), 0 <= i, j < t, with |i-j| <= window (or 0 <= i-j <= window if causal).

    Closed form with w = min(window, t-1): bidirectional t(2w+1) - w(w+1); causal t(w+1) - w(w+1)/2.
    Exact on integers; on a fractional avg_len it interpolates smoothly.
    """
    if t <= 0:
        return 0
    w = min(window, t - 1)
    if causal:
        return t * (w + 1) - w * (w + 1) / 2
    return t * (2 * w + 1) - w * (w + 1)


def runs_triton_kernel(op: Op) -> bool:
    """A fused op that kernel selection gave its jagged Triton kernel (no work past a length)."""
    return op.kind in FUSED_KINDS and op.attr("kernel") == "triton"


def cast_bytes_per_element(elt: int) -> int:
    """An autocast cast of an fp32 value to a dtype of `elt` bytes and its gradient back: read 4,
    write elt, then read elt, write 4."""
    return 2 * (DTYPE_BYTES["fp32"] + elt)


def efficiency_key(op: Op) -> str:
    """Which of hardware.EFFICIENCY_KEYS sets an op's compute rate: a fused op run by its Triton
    kernel has its own measured factor; attention run as plain torch shares one; the rest are GEMMs."""
    if runs_triton_kernel(op):
        return op.kind
    return "attention" if op.kind in ATTENTION_KINDS else "matmul"


def train_bytes_factor(op: Op, compiled: bool) -> float:
    """The bytes a memory-bound op moves in a training step, forward and backward, as a multiple of
    its forward bytes: TRAIN_BYTES_FACTOR, but a sum's (ADD_TRAIN_BYTES_FACTOR) eager or compiled."""
    if op.kind == "elementwise" and op.attr("fn") == "add":
        return ADD_TRAIN_BYTES_FACTOR[compiled]
    return TRAIN_BYTES_FACTOR


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


def train_dtype(plan, target: str) -> str:
    """The dtype a target trains the plan in: the spec's (autocast) on a GPU; the CPU runs fp32."""
    return "fp32" if target == "cpu" else plan.dtype


def trains_mixed(plan, target: str) -> bool:
    """Under autocast on this target, so the towers' stream has a choice of dtype."""
    return train_dtype(plan, target) != "fp32"


STREAMS = ("fp32", "compute")   # the towers' residual stream under autocast (generated Model(stream=))
STREAM_BLOCKS = ("EventEmbedding", "WindowSelfAttention")   # the blocks that write it through a norm


class Roofline(NamedTuple):
    """An op's time per training step as a function of the batch size: compute at `rate` FLOP/s
    against its bytes at `bandwidth`, plus its cast bytes, plus `fixed` seconds (launches)."""
    flops: float           # executed forward FLOPs per example
    train_factor: float
    rate: float            # FLOP/s: peak x efficiency
    example: float         # bytes moved per example
    step: float            # bytes moved per step (weights)
    cast_example: float
    cast_step: float
    bandwidth: float
    fixed: float
    bytes_factor: float    # training bytes over forward bytes (train_bytes_factor)

    def at(self, batch: int) -> float:
        return self.at_each((batch,))[0]

    def at_each(self, batches: tuple[int, ...]) -> list[float]:
        """The time at each batch size, in one pass: the batch curves price every op at each of
        CURVE_BATCHES."""
        flops, tf, rate, ex, st, cex, cst, bw, fixed, bf = self
        return [max(flops * b * tf / rate, (ex * b + st) * bf / bw) + (cex * b + cst) / bw + fixed
                for b in batches]


class CostModel:
    def __init__(self, graph: Graph, target: str, batch_size: int, stream: str = "fp32") -> None:
        if stream not in STREAMS:
            raise ValueError(f"stream must be one of {STREAMS}, not {stream!r}")
        self.graph = graph
        self.hw = hardware.get(target)
        self.batch_size = batch_size
        plan = graph.meta["plan"]
        self.dtype = train_dtype(plan, target)
        self.elt = DTYPE_BYTES[self.dtype]
        # FLOPs and element counts do not depend on the target: computed once per compiled graph
        # (codegen estimates every target), keyed by op id. Passes never run after costing.
        self._memo = graph.meta.setdefault("cost_memo", {})
        self.mixed = self.dtype != "fp32"   # trained under autocast: fp32 storage, half compute
        self.stream = stream if self.mixed else "fp32"     # without autocast there is one dtype
        self.bandwidth = self.hw.mem_bw * self.hw.efficiency["memory"]   # bytes/s memory-bound ops reach
        if "static" not in self._memo:
            self._memo["static"] = self._static_values()
        self._fp32, self._static = self._fp32_map(self.stream), self._memo["static"]
        self._stream_ops = self._stream_dependent()
        self._memo[("hardware", id(self.hw))] = self.hw   # op costs are keyed by id(hw): keep it alive

    def _fp32_map(self, stream: str) -> dict[str, bool]:
        if f"fp32:{stream}" not in self._memo:
            self._memo[f"fp32:{stream}"] = self._fp32_outputs(stream)
        return self._memo[f"fp32:{stream}"]

    def _stream_dependent(self) -> frozenset:
        """The ops whose per-dtype costs may differ from the fp32 stream's: every op of a block
        where an output's dtype changes, or that reads such a value or feeds one. The others share
        the fp32 stream's memoized work (a build estimates both streams for every target);
        tests/test_cost.py checks that sharing changes no number."""
        if self.stream == "fp32":
            return frozenset()
        key = f"stream_ops:{self.stream}"
        if key not in self._memo:
            base = self._fp32_map("fp32")
            changed = [op for op in self.graph.ops() if self._fp32[op.id] != base[op.id]]
            blocks = {op.block for op in changed}
            for op in changed:
                blocks.update(r.block for r in self._readers(op))
                blocks.update(self._source(i).block for i in op.inputs)
            self._memo[key] = frozenset(op.id for op in self.graph.ops() if op.block in blocks)
        return self._memo[key]

    # ---- token counts ----------------------------------------------------------------------
    def _tokens(self, seq: str | None, useful: bool) -> float:
        max_len, avg_len = self.graph.seq_lens[seq]
        return avg_len if useful else max_len

    def _scale(self, op: Op, useful: bool) -> float:
        """Fraction of a padded value that is useful: avg_len / max_len on a jagged axis."""
        if op.seq is None or not useful:
            return 1.0
        max_len, avg_len = self.graph.seq_lens[op.seq]
        return avg_len / max_len

    def padded_fraction(self, op: Op) -> float:
        """Share of op's work spent on padded rows: 1 - avg_len / max_len for a row-wise op over a
        tower's rows (GEMMs, norms, adds, lookups). Time scales with rows there, so this share of
        its time is what a packed batch (the towers as [N, d] rows) saves. 0 for ops not over a
        tower's rows and for attention: the jagged Triton kernels skip padding in either layout,
        and the torch path (an unfused chain, or a reference op) runs padded in either (on a
        packed batch it scatters the rows to padded and back, a cost left unpriced here)."""
        if (op.seq is None or op.kind in NO_LAUNCH or op.kind in ATTENTION_KINDS
                or (op.kind == "elementwise" and op.attr("fn") in ATTENTION_FNS)):
            return 0.0
        max_len, avg_len = self.graph.seq_lens[op.seq]
        return 1.0 - avg_len / max_len

    def _pairs(self, op: Op, useful: bool, fused: bool) -> float:
        tq, tk = op.attr("tq"), op.attr("tk")
        if tq is not None and tq == tk:
            t = self._tokens(tq, useful)
            if not useful and not fused:   # dense scores with a band mask
                return t * t
            return pairs_in_window(t, op.attrs["window"], op.attrs["causal"])
        lq = self._tokens(tq, useful) if tq else self._q_len(op)
        lk = self._tokens(tk, useful) if tk else self._k_len(op)
        return lq * lk

    def _q_len(self, op: Op) -> int:
        return self.graph.op(op.inputs[0]).shape[1]

    def _k_len(self, op: Op) -> int:
        return self.graph.op(op.inputs[1]).shape[1]   # k [H, S, D] or, for attn_values, v [H, S, D]

    # ---- per-op formulas ---------------------------------------------------------------------
    def _cached(self, key: tuple, compute):
        """compute(), memoized in the graph's cost memo under key (shared by every target)."""
        value = self._memo.get(key, _MISSING)
        if value is _MISSING:
            value = self._memo[key] = compute()
        return value

    def flops(self, op: Op, useful: bool = True) -> float:
        return self._cached(("flops", op.id, useful), lambda: self._flops(op, useful))

    def _flops(self, op: Op, useful: bool) -> float:
        ins = [self.graph.op(i) for i in op.inputs]
        if op.kind == "linear":      # 2 · rows · in · out
            rows = _numel(ins[0].shape[:-1]) * self._scale(ins[0], useful)
            return 2 * rows * op.attrs["in_features"] * op.attrs["out_features"]
        if op.kind == "token_linear":  # [n_out, n_in] @ [n_in, d]
            return 2 * op.attrs["n_out"] * op.attrs["n_in"] * _numel(ins[0].shape[1:])
        if op.kind == "bmm":         # [M, K] @ [K, N]
            a = ins[0].shape[::-1] if op.attr("transpose_a") else ins[0].shape
            return 2 * a[0] * a[1] * ins[1].shape[1]
        if op.kind in ("attn_scores", "attn_values"):  # 2 · H · D · pairs
            heads, dh = ins[0].shape[0], ins[1].shape[2]
            return 2 * heads * dh * self._pairs(op, useful, fused=False)
        if op.kind in FUSED_KINDS:   # both matmuls of attention: 4 · H · D · pairs
            heads, _, dh = ins[0].shape
            return 4 * heads * dh * self._pairs(op, useful or runs_triton_kernel(op), fused=True)
        return 0

    def bytes(self, op: Op) -> float:
        """Activation bytes an unfused implementation reads and writes per example (useful rows).

        Weights are read once per step, not once per example: see `time_s`."""
        key = ("elements", op.id)
        if key not in self._memo:
            self._memo[key] = self._elements(op)
        return self._memo[key] * self.elt

    def _elements(self, op: Op) -> float:
        if op.kind in ("reshape", "input", "param", "output", "slice"):
            return 0
        if op.kind == "embedding":   # one row per lookup
            return _numel(op.shape) * self._scale(op, True)
        moved = sum(_numel(self.graph.op(i).shape) * self._scale(self.graph.op(i), True) for i in op.inputs)
        return moved + _numel(op.shape) * self._scale(op, True)

    # ---- what the generated code executes (priced by time_s) --------------------------------
    def _fp32_outputs(self, stream: str) -> dict[str, bool]:
        """Per op, whether its output is fp32 when training under autocast (topological order).
        Stream "compute": the blocks that write a tower's stream through a norm (STREAM_BLOCKS)
        hand it on in the compute dtype, and the residual sums over it stay there."""
        stream_ends = {out for b in self.graph.blocks.values() if b.cls in STREAM_BLOCKS
                       for name, out in b.outs.items() if name.startswith("s_")} if stream == "compute" else set()
        out: dict[str, bool] = {}
        for op in self.graph.ops():
            if op.kind in CASTS_INPUTS or op.id in stream_ends:
                out[op.id] = False
            elif op.kind == "input":
                out[op.id] = op.attr("dtype") == "float"     # ids and lengths are integers
            elif op.kind in ("param", "embedding"):
                out[op.id] = True
            elif op.kind == "elementwise" and op.attr("fn") in AUTOCAST_FP32_FNS:
                out[op.id] = True
            else:                                            # sums, concats, gates: type promotion
                out[op.id] = any(out[i] for i in op.inputs)
        return out

    def _static_values(self) -> dict[str, bool]:
        """Per op, whether its value depends on parameters only (the same for every example:
        computed, and cast, once per step)."""
        out: dict[str, bool] = {}
        for op in self.graph.ops():
            out[op.id] = op.kind == "param" or (bool(op.inputs) and all(out[i] for i in op.inputs))
        return out

    def _value_bytes(self, op: Op) -> int:
        """Bytes per element of op's output as the generated code holds it."""
        if op.kind == "input" and op.attr("dtype") not in (None, "float"):
            return 8                                          # int64 ids and lengths
        return 4 if self.mixed and self._fp32[op.id] else self.elt

    def _cast_inputs(self, op: Op) -> list[Op]:
        """The fp32 inputs op casts to the autocast dtype (none without autocast)."""
        if not self.mixed or op.kind not in CASTS_INPUTS:
            return []
        return [self.graph.op(i) for i in dict.fromkeys(op.inputs)   # K = V is cast once
                if self._fp32[i]]

    def _stream_of(self, op: Op) -> str:
        """The stream op's costs are memoized under: its own where the stream changes them, else
        the fp32 stream's (shared)."""
        return self.stream if op.id in self._stream_ops else "fp32"

    def _per_dtype(self, what: str, op: Op, compute):
        """compute(op), memoized per dtype and stream: every GPU target of one build shares the
        byte counts."""
        return self._cached((what, self.dtype, self._stream_of(op), op.id), lambda: compute(op))

    def bytes_exec(self, op: Op) -> float:
        return self._per_dtype("bytes_exec", op, self._bytes_exec)

    def _bytes_exec(self, op: Op) -> float:
        """Forward bytes per example that the generated code moves for op: padded rows (only the
        jagged Triton kernels skip padding), each value in its dtype under autocast, a cast
        input read in the autocast dtype (the cast itself is `cast_bytes`). Values computed from
        parameters alone are per step and small: not counted."""
        if op.kind in NO_LAUNCH:
            return 0
        useful = runs_triton_kernel(op)
        cast = {i.id for i in self._cast_inputs(op)}

        def size(o: Op) -> float:
            elt = self.elt if o.id in cast else self._value_bytes(o)
            return _numel(o.shape) * self._scale(o, useful) * elt
        if op.kind == "embedding":   # one row per lookup
            return size(op)
        if self._static[op.id]:      # computed from parameters once per step, not per example
            return 0
        inputs = [i for i in dict.fromkeys(op.inputs) if not self._static[i]]   # K = V read once
        return sum(size(self.graph.op(i)) for i in inputs) + size(op)

    def cast_bytes(self, op: Op) -> tuple[float, float, int]:
        return self._per_dtype("cast_bytes", op, self._cast_bytes)

    def _first_cast(self, op: Op, value: Op) -> bool:
        """op is the first reader (in graph order) of value in op's block that casts it: the
        block's code casts a value once (q, k and v come from one Linear), so only it pays."""
        for r in self._readers(self._source(value.id)):
            if r.block == op.block and r.kind in CASTS_INPUTS:
                return r.id == op.id
        return True

    def _cast_bytes(self, op: Op, compiled: bool = False) -> tuple[float, float, int]:
        """(bytes per example, bytes per step, casts): autocast copies each fp32 input of op to
        the autocast dtype (read 4, write 2 bytes per element) and its gradient back (read 2,
        write 4), once per value and block. Activations are cast per example over padded rows;
        parameters (an op's own weight) and values computed from parameters alone (seeds, token
        mixers) once per step. `compiled`: a value made by a fusible op of the same block is
        written in the autocast dtype by that op's kernel, so its cast costs nothing."""
        if not self.mixed or op.kind not in CASTS_INPUTS:
            return 0.0, 0.0, 0
        per_elt = cast_bytes_per_element(self.elt)
        per_example = per_step = 0.0
        casts = 0
        for i in self._cast_inputs(op):
            if not self._first_cast(op, i):
                continue
            src = self._source(i.id)
            if compiled and src.kind in FUSIBLE and src.block == op.block:
                continue
            if self._static[i.id]:
                per_step += _numel(i.shape) * per_elt
            else:
                per_example += _numel(i.shape) * per_elt
            casts += 1
        if self.params(op):
            per_step += self.params(op) * per_elt
            casts += 1
        return per_example, per_step, casts

    def params(self, op: Op) -> int:
        a = op.attrs
        if op.kind == "linear":
            return a["in_features"] * a["out_features"] + (a["out_features"] if a.get("bias", True) else 0)
        if op.kind == "token_linear":
            return a["n_in"] * a["n_out"]
        if op.kind == "param":
            return _numel(a["shape"])
        if op.kind == "embedding" and a.get("table") is None:   # a private time-gap table
            return TIME_GAP_BUCKETS * a["dim"]
        if op.kind == "elementwise" and a.get("fn") in ("layer_norm", "add_layer_norm"):
            return 2 * op.shape[-1]
        if op.kind == "elementwise" and a.get("fn") == "rms_norm":
            return op.shape[-1]
        return 0

    def time_s(self, op: Op, train_factor: float, compiled: bool = False) -> float:
        """Roofline per step, forward + backward: compute at the op's efficiency factor of peak
        (`efficiency_key`) vs executed bytes at bandwidth, then the autocast casts (separate
        kernels, memory-bound), plus a launch per direction for the op and for each cast.
        `compiled`: under torch.compile the casts fuse into the kernels that produce or read
        their values, so neither their bytes nor their launches are charged."""
        return self.times(op, train_factor)[compiled]

    def times(self, op: Op, train_factor: float) -> tuple[float, float]:
        """(eager, compiled) time_s.

        Eager: the roofline over the bytes the op's own kernel moves, plus its autocast casts,
        each a kernel. Compiled (per block, `compiled_work`): a fusible op moves only what crosses
        its fused kernel's boundary, and a cast costs only where inductor cannot fuse it into the
        kernel that produces the value (a value from another block, or a parameter)."""
        if op.kind in NO_LAUNCH:
            return 0.0, 0.0
        work = self._per_dtype("work", op, self._work)
        return self._priced(work, self.compiled_work(op), train_factor,
                            self._efficiency(work[1], _gemm_shape(op, work[1])), not op.attr("batched_with"))

    def _priced(self, work: tuple, compiled_work: tuple, train_factor: float,
                efficiency: float, own_kernel: bool = True) -> tuple[float, float]:
        """`times` from the op's target-independent work (`_work`, `compiled_work`): compute at
        efficiency x peak against bytes at bandwidth, plus casts and launches. `own_kernel` False:
        the op runs inside another op's kernels (batched experts), its casts too: no launches."""
        eager, compiled = self._rooflines(work, compiled_work, train_factor, efficiency, own_kernel)
        return eager.at(self.batch_size), compiled.at(self.batch_size)

    def _rooflines(self, work: tuple, compiled_work: tuple, train_factor: float,
                   efficiency: float, own_kernel: bool) -> tuple[Roofline, Roofline]:
        """(eager, compiled) Roofline of an op: its time as a function of the batch size."""
        flops_exec, _, example, step, c_example, c_step, casts, bytes_factor = work
        rate, bandwidth = self.hw.peak(self.dtype) * efficiency, self.bandwidth
        launch = self.hw.launch_s if own_kernel else 0.0
        eager = Roofline(flops_exec, train_factor, rate, example, step, c_example, c_step, bandwidth,
                         2 * (1 + casts) * launch, bytes_factor)
        example, step, c_example, c_step, casts, launches, bytes_factor = compiled_work
        compiled = Roofline(flops_exec, train_factor, rate, example, step, c_example, c_step, bandwidth,
                            2 * (launches + casts) * launch, bytes_factor)
        return eager, compiled

    def group_curves(self, batches: tuple[int, ...]) -> dict[str, dict[str, list[float]]]:
        """Per group, each GPU time field (`time_key`) at each batch size: the block totals'
        times, summed per group, priced at every batch in one pass over the ops."""
        out: dict[str, dict[str, list[float]]] = {}
        for head, work, compiled_work, shape, (_, padding, batched_with) in self._rows():
            if work is None:
                continue
            eager, compiled = self._rooflines(work, compiled_work, head[-1],
                                              self._efficiency(work[1], shape), not batched_with)
            curves = out.get(head[3])
            if curves is None:
                curves = out[head[3]] = {key: [0.0] * len(batches) for key in TIME_KEYS}
            eager_s, compiled_s, packed_s, compiled_packed_s = (
                curves["time_s"], curves["time_compiled_s"], curves["time_packed_s"], curves["time_compiled_packed_s"])
            for i, (e, c) in enumerate(zip(eager.at_each(batches), compiled.at_each(batches))):
                eager_s[i] += e
                compiled_s[i] += c
                packed_s[i] += e * (1 - padding)
                compiled_packed_s[i] += c * (1 - padding)
        return out

    def _efficiency(self, key: str, gemm_shape: tuple[int, int] | None) -> float:
        """The op's fraction of peak: a linear's own shape where calibration measured it (narrow
        GEMMs run far below wide ones: 0.17 at 128 x 128, 0.54 at 512 x 512 on the H200), else
        its key's factor."""
        factor = self.hw.efficiency[key]
        return factor if gemm_shape is None else self.hw.matmul_shapes.get(gemm_shape, factor)

    def compiled_work(self, op: Op) -> tuple[float, float, float, float, int, int, float]:
        """(bytes per example, bytes per step, cast bytes per example, per step, casts, launches,
        training bytes over forward bytes) of op under torch.compile per block."""
        return self._per_dtype("compiled_work", op, self._compiled_work)

    def _compiled_work(self, op: Op) -> tuple[float, float, float, float, int, int, float]:
        _, _, moved_example, moved_step, *_ = self._per_dtype("work", op, self._work)
        factor = train_bytes_factor(op, compiled=True)
        if op.kind in FUSIBLE:
            return (*self._fused_bytes(op), 0.0, 0.0, 0, int(self._leaves_kernel(op)), factor)
        cast_example, cast_step, casts = self._cast_bytes(op, compiled=True)
        return moved_example, moved_step, cast_example, cast_step, casts, 1, factor

    # ---- fusion under torch.compile ------------------------------------------------------------
    def _source(self, op_id: str) -> Op:
        """The op that computes the value op_id names, through views."""
        op = self.graph.op(op_id)
        while op.kind in VIEWS:
            op = self.graph.op(op.inputs[0])
        return op

    def _readers(self, op: Op) -> list[Op]:
        """The ops that read op's value, through views (memoized: the graph no longer changes)."""
        def readers() -> tuple[Op, ...]:
            out: list[Op] = []
            for c in self.graph.consumers(op.id):
                out.extend(self._readers(c) if c.kind in VIEWS else [c])
            return tuple(out)
        return list(self._cached(("readers", op.id), readers))

    def _fused_with(self, op: Op, other: Op) -> bool:
        """op and other land in one inductor kernel: both fusible, in the same block."""
        return other.kind in FUSIBLE and other.block == op.block and op.kind in FUSIBLE

    def _leaves_kernel(self, op: Op) -> bool:
        """op's value is written to memory: something outside its fused kernel reads it."""
        readers = self._readers(op)
        return not readers or any(not self._fused_with(op, r) for r in readers)

    def _fused_bytes(self, op: Op) -> tuple[float, float]:
        """(per example, per step) bytes a fusible op moves inside a fused kernel: the inputs
        that come from outside the kernel, and its value if it leaves the kernel, written in the
        autocast dtype when only matmuls and kernels read it (the cast fuses into the write)."""
        if self._static[op.id]:
            return 0.0, 0.0

        def size(o: Op, elt: int) -> float:       # padded rows: the torch path runs them all
            return _numel(o.shape) * elt
        moved = 0.0
        for i in dict.fromkeys(op.inputs):
            src = self._source(i)
            if op.kind == "embedding" or self._static[src.id] or self._fused_with(op, src):
                continue                          # ids: in the rows; parameters: per step, small
            moved += size(self.graph.op(i), self._value_bytes(src))
        if op.kind == "embedding":
            moved += size(op, self._value_bytes(op))     # the table rows read, one per id
        if self._leaves_kernel(op):
            outside = [r for r in self._readers(op) if not self._fused_with(op, r)]
            cast_on_write = outside and all(r.kind in CASTS_INPUTS and r.block == op.block for r in outside)
            moved += size(op, self.elt if cast_on_write else self._value_bytes(op))
        return moved, 0.0

    def _work(self, op: Op) -> tuple:
        """What `times` prices, independent of the target's rates: executed FLOPs per example,
        the efficiency key, bytes moved per example and per step, the casts, and the training
        bytes' multiple of the forward's (eager)."""
        return (self.flops(op, useful=False), efficiency_key(op), self.bytes_exec(op),
                self.params(op) * self.elt, *self.cast_bytes(op), train_bytes_factor(op, compiled=False))

    def _fixed_cost(self, op: Op) -> tuple:
        """OpCost's target-independent fields: group, FLOPs, bytes, params, train factor, kernel."""
        factor = 3.5 if op.kind in ATTENTION_KINDS else 3.0
        group = self.graph.blocks[op.block].group
        if group == "rest" and op.kind == "embedding":
            group = "embeddings"
        return (group, self.flops(op), self.flops(op, useful=False), self.bytes(op), self.params(op), factor,
                op.attr("kernel", ""))

    def op_cost(self, op: Op) -> OpCost:
        """The op's costs at this target, batch, dtype and stream; an op whose costs the stream
        does not change shares the fp32 stream's (memoized per hardware table object)."""
        return self._cached(("op_cost", id(self.hw), self.batch_size, self.dtype, self._stream_of(op), op.id),
                            lambda: self._op_cost(op))

    def _op_cost(self, op: Op) -> OpCost:
        return self._cost_from_row(self._row(op))

    def op_costs(self) -> tuple[OpCost, ...]:
        """Every op's `op_cost`, in graph order, priced in one pass over rows that every target
        of a dtype and stream shares (a build prices 9 target and stream pairs: on a large spec
        this loop is most of `kunlunc build`)."""
        return tuple(self._cost_from_row(r) for r in self._rows())

    def dense_params(self) -> int:
        """Parameters outside the embedding tables: the ops' `params`, without pricing them."""
        i = OpCost._fields.index("params")       # a row's head holds OpCost's leading fields
        return sum(head[i] for head, *_ in self._rows())

    def _rows(self) -> tuple:
        """Every op's `_row`, in graph order, memoized per dtype and stream."""
        return self._cached(("rows", self.dtype, self.stream),
                            lambda: tuple(self._row(op) for op in self.graph.ops()))

    def _row(self, op: Op) -> tuple:
        """op_cost's target-independent parts: the op, OpCost's fields before the times, its
        work and compiled work (None: no kernel), the shape its GEMM efficiency is looked up by,
        its kernel and padding."""
        group, flops, flops_exec, moved, params, factor, kernel = \
            self._cached(("fixed_cost", op.id), lambda: self._fixed_cost(op))
        head = (op.id, op.kind, op.block, group, flops, flops_exec, moved, params, factor)
        tail = (kernel, self.padded_fraction(op), op.attr("batched_with", ""))
        if op.kind in NO_LAUNCH:
            return head, None, None, None, tail
        work = self._per_dtype("work", op, self._work)
        return head, work, self.compiled_work(op), _gemm_shape(op, work[1]), tail

    def _cost_from_row(self, row: tuple) -> OpCost:
        head, work, compiled_work, shape, (kernel, padding, batched_with) = row
        if work is None:
            return OpCost(*head, 0.0, kernel, 0.0, padding, batched_with)
        eager, compiled = self._priced(work, compiled_work, head[-1], self._efficiency(work[1], shape),
                                       not batched_with)
        return OpCost(*head, eager, kernel, compiled, padding, batched_with)


def is_host_op(cost: OpCost) -> bool:
    """The op counts in `host_ops`: a HOST_KINDS op with a kernel launch of its own."""
    return cost.kind in HOST_KINDS and not cost.batched_with


def _gemm_shape(op: Op, key: str) -> tuple[int, int] | None:
    """(in, out) features of a linear priced as a GEMM (calibration may have measured its shape)."""
    return (op.attrs["in_features"], op.attrs["out_features"]) if op.kind == "linear" and key == "matmul" else None


_MISSING = object()
_TOTALS = ("flops_fwd", "flops_train", "time_s", "time_compiled_s", "time_packed_s", "time_compiled_packed_s",
           "params", "host_ops")


@dataclass(frozen=True)
class Estimate:
    name: str
    target: str
    dtype: str
    batch_size: int
    stream: str                      # the towers' residual stream: fp32, or the compute dtype
    params: int
    params_dense: int
    flops_fwd_per_example: float
    flops_fwd_per_step: float
    flops_fwd_exec_per_step: float
    flops_train_per_step: float
    est_step_time_s: float           # eager: max(GPU time, host time)
    est_mfu: float
    est_step_time_compiled_s: float  # under torch.compile per block: max(GPU time, host time)
    est_mfu_compiled: float
    est_gpu_time_s: float            # eager GPU time: every op and autocast cast its own kernel
    est_gpu_time_compiled_s: float   # compiled GPU time: what inductor fuses priced as one kernel
    host_ops: int                    # ops of HOST_KINDS
    est_host_s: float                # host time per step, eager (0: not fitted for the target)
    est_host_compiled_s: float       # host time per step, compiled per block
    est_padding_compiled_s: float    # compiled GPU time on padded rows outside the jagged kernels
    # The same run on a packed batch (data.pack_events): each op's time less its padding share.
    est_gpu_time_packed_s: float
    est_gpu_time_compiled_packed_s: float
    est_step_time_packed_s: float
    est_step_time_compiled_packed_s: float
    est_mfu_compiled_packed: float
    peak_flops: float
    ops: tuple[OpCost, ...]

    def groups(self) -> dict[str, dict[str, float]]:
        """Per group, the sums of its blocks' totals (see blocks)."""
        out: dict[str, dict[str, float]] = {}
        for b in self._block_totals.values():
            t = out.setdefault(b["group"], dict.fromkeys(_TOTALS, 0))
            for k in _TOTALS:
                t[k] += b[k]
        return out

    def blocks(self) -> dict[str, dict[str, float]]:
        """Per block (in op order): per-step forward and training FLOPs, times (eager, compiled,
        and both on a packed batch), params, host_ops, and its group. A fresh copy each call."""
        return {name: dict(t) for name, t in self._block_totals.items()}

    @cached_property
    def _block_totals(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for c in self.ops:
            t = out.get(c.block)
            if t is None:
                t = out[c.block] = dict.fromkeys(_TOTALS, 0)
                t["group"] = c.group
            t["host_ops"] += is_host_op(c)
            t["flops_fwd"] += c.flops * self.batch_size
            t["flops_train"] += c.flops * c.train_factor * self.batch_size
            t["time_s"] += c.time_s
            t["time_compiled_s"] += c.time_compiled_s
            t["time_packed_s"] += c.time_s * (1 - c.padding)
            t["time_compiled_packed_s"] += c.time_compiled_s * (1 - c.padding)
            t["params"] += c.params
        return out

    def host_s(self, compiled: bool) -> float:
        """Host time per step, eager or compiled per block (either layout; 0: no host fit)."""
        return self.est_host_compiled_s if compiled else self.est_host_s

    def host_per_op_s(self, compiled: bool) -> float:
        """The host time of one HOST_KINDS op (0 where the target has no host fit)."""
        return self.host_s(compiled) / self.host_ops if self.host_ops else 0.0

    def step(self, compiled: bool, packed: bool = False) -> tuple[float, float, float]:
        """(step, GPU, host) seconds of a run: eager or compiled per block, on a padded or a
        packed batch."""
        suffix = f"{'_compiled' if compiled else ''}{'_packed' if packed else ''}"
        return getattr(self, f"est_step_time{suffix}_s"), getattr(self, f"est_gpu_time{suffix}_s"), self.host_s(compiled)

    def group_steps(self, compiled: bool, packed: bool = False) -> dict[str, float]:
        """Per group, what its blocks take when each runs alone (how the generated bench times
        them): the sum over its blocks of max(the block's GPU time, its host time). A block's host
        time is its HOST_KINDS ops times the per-op host cost, as for the whole step."""
        return group_steps(self.blocks(), self.host_per_op_s(compiled), compiled, packed)

    def to_json(self, ops: bool = True) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "ops"}
        if ops:
            d["ops"] = [c._asdict() for c in self.ops]
        d["groups"] = self.groups()
        return d


TIME_KEYS = ("time_s", "time_compiled_s", "time_packed_s", "time_compiled_packed_s")
# The batch sizes estimate.json's "batch_curve" prices each group at: GPU time is not linear in
# the batch (launches and per-step bytes are fixed), so the generated bench interpolates here.
CURVE_BATCHES = (1, 4, 16, 64, 256, 1024, 4096, 16384)


def batch_curve(graph: Graph, target: str, stream: str = "fp32",
                batches: tuple[int, ...] = CURVE_BATCHES) -> dict:
    """{"batch_sizes", "groups": {group: {time key: [seconds per batch]}}, "gpu": {"est_gpu_time
    ... _s": [...]}}: the GPU part of `estimate` at each batch size (the step totals add the
    optimizer, which does not depend on the batch)."""
    model = CostModel(graph, target, batches[0], stream)
    groups = model.group_curves(batches)
    optimizer_s = _optimizer_s(model, model.dense_params())
    gpu = {f"est_gpu_time{key[4:]}": [sum(g[key][i] for g in groups.values()) + optimizer_s
                                      for i in range(len(batches))] for key in TIME_KEYS}
    return {"batch_sizes": list(batches), "groups": groups, "gpu": gpu}


def _optimizer_s(model: CostModel, dense_params: int) -> float:
    """AdamW's step over every parameter, embedding tables included, memory-bound."""
    table_params = sum(t.vocab * t.dim for t in model.graph.meta["plan"].tables)
    return (dense_params + table_params) * OPTIMIZER_BYTES_PER_PARAM / model.bandwidth


def time_key(compiled: bool, packed: bool = False) -> str:
    """The block and group field of a run's GPU time: time[_compiled][_packed]_s."""
    return f"time{'_compiled' if compiled else ''}{'_packed' if packed else ''}_s"


def group_steps(blocks: dict, host_per_op_s: float, compiled: bool, packed: bool = False,
                gpu_scale: float | dict[str, float] = 1.0) -> dict[str, float]:
    """Σ over each group's blocks of max(GPU time x gpu_scale, host_ops x host_per_op_s), from
    Estimate.blocks() (or estimate.json's "blocks"); gpu_scale (one factor, or one per group)
    rescales the GPU part to another batch size (host time does not change with it)."""
    key = time_key(compiled, packed)
    out: dict[str, float] = {}
    for b in blocks.values():
        scale = gpu_scale if isinstance(gpu_scale, (int, float)) else gpu_scale.get(b["group"], 0.0)
        out[b["group"]] = out.get(b["group"], 0.0) + max(b[key] * scale, b["host_ops"] * host_per_op_s)
    return out


def estimate(graph: Graph, target: str | None = None, batch_size: int | None = None,
             stream: str = "fp32") -> Estimate:
    """The estimate for `target` at `batch_size`; `stream` "compute" prices the generated
    Model(stream="compute"), whose towers carry their residual stream in the compute dtype."""
    plan = graph.meta["plan"]
    target = target or plan.target
    batch = batch_size or plan.batch_size
    model = CostModel(graph, target, batch, stream)
    ops = model.op_costs()
    table_params = sum(t.vocab * t.dim for t in plan.tables)
    dense_params = sum(c.params for c in ops)
    fwd = sum(c.flops for c in ops)
    train = sum(c.flops * c.train_factor for c in ops) * batch
    optimizer_s = _optimizer_s(model, dense_params)
    gpu = sum(c.time_s for c in ops) + optimizer_s
    gpu_compiled = sum(c.time_compiled_s for c in ops) + optimizer_s
    host_ops = sum(1 for c in ops if is_host_op(c))
    padding = sum(c.time_compiled_s * c.padding for c in ops)
    gpu_packed = gpu - sum(c.time_s * c.padding for c in ops)
    gpu_compiled_packed = gpu_compiled - padding
    host, host_compiled = (host_ops * model.hw.host_s.get(m, 0.0) for m in hardware.HOST_MODES)
    step, step_compiled = max(gpu, host), max(gpu_compiled, host_compiled)
    step_compiled_packed = max(gpu_compiled_packed, host_compiled)
    return Estimate(
        name=plan.name, target=target, dtype=model.dtype, batch_size=batch, stream=model.stream,
        params=dense_params + table_params, params_dense=dense_params,
        flops_fwd_per_example=_int(fwd), flops_fwd_per_step=_int(fwd * batch),
        flops_fwd_exec_per_step=_int(sum(c.flops_exec for c in ops) * batch),
        flops_train_per_step=_int(train), est_step_time_s=step,
        est_mfu=train / (step * model.hw.peak_bf16), est_step_time_compiled_s=step_compiled,
        est_mfu_compiled=train / (step_compiled * model.hw.peak_bf16), est_gpu_time_s=gpu,
        est_gpu_time_compiled_s=gpu_compiled, host_ops=host_ops, est_host_s=host,
        est_host_compiled_s=host_compiled, est_padding_compiled_s=padding,
        est_gpu_time_packed_s=gpu_packed, est_gpu_time_compiled_packed_s=gpu_compiled_packed,
        est_step_time_packed_s=max(gpu_packed, host), est_step_time_compiled_packed_s=step_compiled_packed,
        est_mfu_compiled_packed=train / (step_compiled_packed * model.hw.peak_bf16), peak_flops=model.hw.peak_bf16,
        ops=ops,
    )


def _int(x: float) -> float:
    """Exact integers stay integers (avg_len integral); fractional avg_len rounds."""
    return int(round(x))
