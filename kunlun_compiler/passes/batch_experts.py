"""Batched experts: one kernel for the same op of several Wukong experts.

The generated MixtureOfWukongExperts runs each Wukong layer once for a batch of experts, every
matmul and norm batched over them (layers.WukongExperts): the first layer once per run of
experts with one token count (`lower.expert_runs`; the groups differ by at most one token),
every later layer once for all experts. The IR keeps one op per expert, so FLOPs, bytes and
parameters per expert stay exact; this pass marks each op that shares the kernel of an op
before it with attr `batched_with` (that op's id). The cost model charges a batch one launch and
one host op, and its bytes and FLOPs in full.
"""
from __future__ import annotations

import re

from ..ir import NO_LAUNCH, Graph, IRError
from ..lower import expert_runs
from .manager import PassResult

EXPERT_OP = re.compile(r"\.expert(?P<expert>\d+)\.layer(?P<layer>\d+)\.(?P<role>.+)$")
EXPERTS_CLS = "MixtureOfWukongExperts"


def batch_experts(graph: Graph) -> PassResult:
    blocks = {name for name, b in graph.blocks.items() if b.cls == EXPERTS_CLS}
    runs = {name: expert_runs(graph.blocks[name].kwargs["groups"]) for name in blocks}
    leaders: dict[tuple, str] = {}
    batched = launches = 0
    for op in graph.ops():
        if op.block not in blocks or op.kind in NO_LAUNCH:
            continue
        found = EXPERT_OP.search(op.id)
        if found is None:
            continue
        expert, layer = int(found["expert"]), int(found["layer"])
        batch = next(r for r, (start, count) in enumerate(runs[op.block]) if start <= expert < start + count) \
            if layer == 0 else None
        key = (op.block, layer, batch, found["role"])
        leader = leaders.setdefault(key, op.id)
        if leader != op.id:
            first = graph.op(leader)
            if (first.kind, first.shape, first.attrs.get("fn")) != (op.kind, op.shape, op.attrs.get("fn")):
                raise IRError(f"batch_experts: {op.id} ({op.kind} {op.shape}) cannot share the kernel of "
                              f"{leader} ({first.kind} {first.shape})")
            graph.update(op.with_(attrs={**op.attrs, "batched_with": leader}))
            batched += 1
        else:
            launches += 1
    notes = (f"{len(blocks)} expert block(s): {batched + launches} expert ops in {launches} batched kernels",) \
        if batched else ()
    return PassResult(graph, bool(batched), {"batched_ops": batched, "kernels": launches} if batched else {}, notes)
