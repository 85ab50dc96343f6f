"""Kernel selection: pick an implementation for every fused op, for the compile target.

On a GPU target a fused op gets its Triton kernel when the kernel takes its shapes (head dims up
to 256, padded inside to a power of two); otherwise, or on the CPU target, the plain-torch
reference (a registered custom op with the same FLOP formula). The choice and its reason are
recorded on the op for `kunlunc inspect`; at run time the generated model still falls back to
the reference on CPU tensors (backend="auto"). On an sm_90 target (H100, H200) the reason also says
where the generated kernels run in Gluon instead of Triton (HOPPER_GLUON: a backward, and window
attention's forward at head dim 64).
"""
from __future__ import annotations

from functools import partial

from ..ir import Graph, Op
from .fuse import FUSED_KINDS
from .manager import PassResult

GPU_TARGETS = frozenset({"h100", "h200", "b200", "a100"})
SM90_TARGETS = frozenset({"h100", "h200"})
MAX_HEAD_DIM = 256
KERNELS = ("triton", "torch")
# What the generated kernels run in Gluon on sm_90, in bf16/fp16, in place of their Triton
# kernels: op kind -> {head dim: what}. The kernel files hold the tables this mirrors
# (templates/kernels/gdpa_hopper.py's ENABLED, window_attention_hopper.py's head dims and
# HOPPER_DQ and HOPPER_FWD); tests/test_passes.py checks that the two agree. GDPA runs it without a
# window only (the PFFN), window attention with the softmax only.
_BOTH = "backward (dQ, dK/dV) in Gluon on sm_90"
HOPPER_GLUON = {"gdpa": {64: _BOTH},
                "window_attention": {64: "forward and backward dK/dV in Gluon on sm_90", 128: _BOTH}}


def choose(graph: Graph, op: Op, target: str) -> tuple[str, str]:
    head_dim = graph.op(op.inputs[0]).shape[-1]
    if target not in GPU_TARGETS:
        return "torch", f"target {target}: plain-torch reference (the Triton kernels need CUDA)"
    if head_dim > MAX_HEAD_DIM:
        return "torch", f"head dim {head_dim} > {MAX_HEAD_DIM}: no Triton tile fits; plain-torch reference"
    padded = 1 << max(head_dim - 1, 1).bit_length()
    pad = f", padded to {padded}" if padded != head_dim else ""
    return "triton", f"Triton kernel (head dim {head_dim}{pad}){_hopper_note(graph, op, target, head_dim)}"


def _hopper_note(graph: Graph, op: Op, target: str, head_dim: int) -> str:
    """'; <what runs in Gluon>' where HOPPER_GLUON covers the op on this target, else ''."""
    what = HOPPER_GLUON.get(op.kind, {}).get(head_dim)
    plan = graph.meta["plan"]
    if target not in SM90_TARGETS or plan.dtype not in ("bf16", "fp16") or what is None:
        return ""
    if op.kind == "window_attention" and not op.attr("softmax"):
        return ""   # the activation variant runs GDPA's kernels, with a window: Triton's
    return f"; {what}"


def select_kernels(graph: Graph, target: str | None = None) -> PassResult:
    target = target or graph.meta["plan"].target
    chosen: dict[str, int] = {}
    notes: list[str] = []
    for op in graph.ops():
        if op.kind not in FUSED_KINDS:
            continue
        kernel, why = choose(graph, op, target)
        graph.update(op.with_(attrs={**op.attrs, "kernel": kernel, "kernel_reason": why}))
        key = f"{op.kind}:{kernel}"
        note = f"{key}: {why}"
        if note not in notes:
            notes.append(note)
        chosen[key] = chosen.get(key, 0) + 1
    return PassResult(graph, bool(chosen), dict(sorted(chosen.items())), tuple(notes))


def for_target(target: str):
    """select_kernels bound to a target, keeping its name for the pass report."""
    bound = partial(select_kernels, target=target)
    bound.__name__ = "select_kernels"
    return bound
