"""Kernel selection: pick an implementation for every fused op.

Triton kernels are not part of this build yet, so every fused op runs its plain-torch
reference (a registered custom op with a useful-FLOP formula); the choice and the reason are
recorded on the op so that `kunlunc inspect` can show them.
"""
from __future__ import annotations

from ..ir import Graph
from .fuse import FUSED_KINDS
from .manager import PassResult

KERNELS = ("torch",)


def select_kernels(graph: Graph) -> PassResult:
    chosen: dict[str, int] = {}
    for op in graph.ops():
        if op.kind not in FUSED_KINDS:
            continue
        kernel, why = "torch", "plain-torch reference (no Triton kernel in this build)"
        graph.update(op.with_(attrs={**op.attrs, "kernel": kernel, "kernel_reason": why}))
        chosen[f"{op.kind}:{kernel}"] = chosen.get(f"{op.kind}:{kernel}", 0) + 1
    notes = tuple(f"{k} x{v}" for k, v in sorted(chosen.items()))
    return PassResult(graph, bool(chosen), chosen, notes)
