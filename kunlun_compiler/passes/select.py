"""Kernel selection: pick an implementation for every fused op, for the compile target.

On a GPU target a fused op gets its Triton kernel when the kernel takes its shapes (head dims up
to 256, padded inside to a power of two); otherwise, or on the CPU target, the plain-torch
reference (a registered custom op with the same FLOP formula). The choice and its reason are
recorded on the op for `kunlunc inspect`; at run time the generated model still falls back to
the reference on CPU tensors (backend="auto").
"""
from __future__ import annotations

from functools import partial

from ..ir import Graph, Op
from .fuse import FUSED_KINDS
from .manager import PassResult

GPU_TARGETS = frozenset({"h100", "h200", "b200", "a100"})
MAX_HEAD_DIM = 256
KERNELS = ("triton", "torch")


def choose(graph: Graph, op: Op, target: str) -> tuple[str, str]:
    head_dim = graph.op(op.inputs[0]).shape[-1]
    if target not in GPU_TARGETS:
        return "torch", f"target {target}: plain-torch reference (the Triton kernels need CUDA)"
    if head_dim > MAX_HEAD_DIM:
        return "torch", f"head dim {head_dim} > {MAX_HEAD_DIM}: no Triton tile fits; plain-torch reference"
    padded = 1 << max(head_dim - 1, 1).bit_length()
    pad = f", padded to {padded}" if padded != head_dim else ""
    return "triton", f"Triton kernel (head dim {head_dim}{pad})"


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
        if key not in chosen:
            notes.append(f"{key}: {why}")
        chosen[key] = chosen.get(key, 0) + 1
    return PassResult(graph, bool(chosen), dict(sorted(chosen.items())), tuple(notes))


def for_target(target: str):
    """select_kernels bound to a target, keeping its name for the pass report."""
    bound = partial(select_kernels, target=target)
    bound.__name__ = "select_kernels"
    return bound
