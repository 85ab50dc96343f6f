"""Batched kernels: several IR ops that the generated code runs as one kernel.

The IR keeps one op per unit of the model (an expert, a feature), so FLOPs, bytes and parameters
per unit stay exact. Where the generated module runs the same op of several units as one batched
kernel, this pass marks every op after the first of a batch with attr `batched_with` (the first
op's id). The cost model charges a batch one launch and one host op, and its bytes and FLOPs in
full. The batches are a table of rules, one per generated module that batches:

- **Wukong experts** (layers.WukongExperts): every matmul and norm of a Wukong layer runs once for
  a batch of experts: the first layer once per run of experts with one token count
  (`lower.expert_runs`; the groups differ by at most one token), every later layer once for all
  experts.
- **Feature projections** (layers.FeatureTokens): the sparse features of one embedding width are
  projected to the model dim in one bmm.

Ops of one batch must agree on kind, shape and function (one kernel, one price): an IRError
otherwise.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..ir import NO_LAUNCH, Graph, IRError, Op
from ..lower import expert_runs
from .manager import PassResult

EXPERT_OP = re.compile(r"\.expert(?P<expert>\d+)\.layer(?P<layer>\d+)\.(?P<role>.+)$")


@dataclass(frozen=True)
class BatchRule:
    name: str                                        # what the report calls the ops it batches
    block_cls: str                                   # the generated module that batches them
    key: Callable[[Graph, Op], tuple | None]         # ops of one key share one kernel; None: alone


def _expert_key(graph: Graph, op: Op) -> tuple | None:
    """(layer, run of experts or None for later layers, role): Wukong layers run batched over experts."""
    found = EXPERT_OP.search(op.id)
    if found is None:
        return None
    expert, layer = int(found["expert"]), int(found["layer"])
    run = None
    if layer == 0:
        runs = expert_runs(graph.blocks[op.block].kwargs["groups"])
        run = next(r for r, (start, count) in enumerate(runs) if start <= expert < start + count)
    return layer, run, found["role"]


def _feature_key(graph: Graph, op: Op) -> tuple | None:
    """(input width,): a sparse feature's projection of its embedding to the model dim."""
    if op.kind != "linear" or graph.op(op.inputs[0]).kind != "embedding":
        return None
    return (op.attrs["in_features"],)


BATCH_RULES: tuple[BatchRule, ...] = (
    BatchRule("Wukong expert ops", "MixtureOfWukongExperts", _expert_key),
    BatchRule("feature projections", "FeatureTokens", _feature_key),
)


def batch_kernels(graph: Graph) -> PassResult:
    rules = {rule.block_cls: rule for rule in BATCH_RULES}
    leaders: dict[tuple, str] = {}
    counts: dict[str, list[int]] = {}                 # rule -> [ops, kernels]
    for op in graph.ops():
        rule = rules.get(graph.blocks[op.block].cls)
        if rule is None or op.kind in NO_LAUNCH:
            continue
        key = rule.key(graph, op)
        if key is None:
            continue
        leader = leaders.setdefault((op.block, *key), op.id)
        n = counts.setdefault(rule.name, [0, 0])
        n[0] += 1
        if leader == op.id:
            n[1] += 1
            continue
        first = graph.op(leader)
        if (first.kind, first.shape, first.attrs.get("fn")) != (op.kind, op.shape, op.attrs.get("fn")):
            raise IRError(f"batch_kernels: {op.id} ({op.kind} {op.shape}) cannot share the kernel of "
                          f"{leader} ({first.kind} {first.shape})")
        graph.update(op.with_(attrs={**op.attrs, "batched_with": leader}))
    batched = {name: n for name, n in counts.items() if n[0] > n[1]}
    stats = {"batched_ops": sum(ops - kernels for ops, kernels in batched.values()),
             "kernels": sum(kernels for _, kernels in batched.values())} if batched else {}
    notes = tuple(f"{name}: {ops} in {kernels} kernels" for name, (ops, kernels) in batched.items())
    return PassResult(graph, bool(batched), stats, notes)
