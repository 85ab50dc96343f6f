"""Fusion as data: a table of rules, each a chain of ops that one kernel replaces.

A rule's pattern is matched along the first input of each op, starting at an `attn_scores`
op: every intermediate value must have exactly one consumer (the next op of the chain), so the
fused kernel can keep it on chip. The fused op reads q and k (from the scores op) and v (the
second input of the values op). The useful FLOPs of the chain and of the fused op are equal by
construction (the cost tests check it), so fusion changes time, never model FLOPs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..ir import Graph, Op
from .manager import PassResult

# (kind, elementwise fn or None) per step of a pattern
Step = tuple[str, str | None]


@dataclass(frozen=True)
class FusionRule:
    family: str                       # what `compile.fuse` names: gdpa | window_attention | seed_pooling
    fused_kind: str                   # the op kind that replaces the chain
    pattern: tuple[Step, ...]
    check: Callable[[list[Op]], bool]  # a safety check on the matched ops beyond their kinds
    reference: str                    # the plain-torch reference in the generated ops module


def _short_kv(chain: list[Op]) -> bool:
    return chain[0].attr("tk") is None and chain[0].attr("tq") is not None


def _banded(chain: list[Op]) -> bool:
    return chain[0].attr("tq") == chain[0].attr("tk") is not None


def _seeds(chain: list[Op]) -> bool:
    return chain[0].attr("tq") is None and chain[0].attr("tk") is not None


SCORES, VALUES = ("attn_scores", None), ("attn_values", None)
ACT, SCALE = ("elementwise", "activation"), ("elementwise", "scale")
BAND, LENGTH, SOFTMAX = ("elementwise", "band_mask"), ("elementwise", "length_mask"), ("elementwise", "softmax")

FUSION_RULES: tuple[FusionRule, ...] = (
    FusionRule("gdpa", "gdpa", (SCORES, ACT, SCALE, VALUES), _short_kv, "gdpa_reference"),
    FusionRule("window_attention", "window_attention", (SCORES, SCALE, BAND, SOFTMAX, VALUES), _banded,
               "window_attention_reference"),
    FusionRule("window_attention", "window_attention", (SCORES, ACT, SCALE, BAND, VALUES), _banded,
               "window_attention_reference"),
    FusionRule("seed_pooling", "seed_pooling", (SCORES, SCALE, LENGTH, SOFTMAX, VALUES), _seeds,
               "seed_pooling_reference"),
)
FUSED_KINDS = frozenset(r.fused_kind for r in FUSION_RULES)


def _validate() -> None:
    for r in FUSION_RULES:
        assert r.pattern[0] == SCORES and r.pattern[-1] == VALUES, r


_validate()


def _match(graph: Graph, start: Op, pattern: tuple[Step, ...]) -> list[Op] | None:
    chain, op = [], start
    for i, (kind, fn) in enumerate(pattern):
        if op.kind != kind or (fn is not None and op.attr("fn") != fn):
            return None
        chain.append(op)
        if i == len(pattern) - 1:
            return chain
        users = graph.consumers(op.id)
        if len(users) != 1 or users[0].inputs[0] != op.id:
            return None
        op = users[0]
    return None


def _fused_op(rule: FusionRule, chain: list[Op]) -> Op:
    scores, values = chain[0], chain[-1]
    attrs = {k: scores.attrs[k] for k in ("tq", "tk", "window", "causal") if k in scores.attrs}
    for op in chain[1:-1]:
        if op.attr("fn") == "activation":
            attrs["activations"] = op.attrs["activations"]
        if op.attr("fn") == "scale":
            attrs["scale"] = op.attrs["scale"]
        if op.attr("fn") == "softmax":
            attrs["softmax"] = True
    attrs["reference"] = rule.reference
    block = scores.block
    return Op(f"{block}.{rule.fused_kind}", rule.fused_kind, block,
              (scores.inputs[0], scores.inputs[1], values.inputs[1]), seq=values.seq, attrs=attrs)


def fuse(graph: Graph) -> PassResult:
    enabled = graph.meta["plan"].fuse
    counts: dict[str, int] = {}
    notes: list[str] = []
    for start in [op for op in graph.ops() if op.kind == "attn_scores"]:
        for rule in FUSION_RULES:
            chain = _match(graph, start, rule.pattern)
            if chain is None or not rule.check(chain):
                continue
            if rule.family not in enabled:
                notes.append(f"{start.block}: {rule.family} matches but compile.fuse leaves it unfused")
                break
            graph.replace_chain([op.id for op in chain], _fused_op(rule, chain))
            block = graph.blocks[start.block]
            graph.replace_block(block.with_(kwargs={**block.kwargs, "fused": True}))
            counts[rule.family] = counts.get(rule.family, 0) + 1
            break
    notes = [f"{k}: {v} chain(s) fused" for k, v in sorted(counts.items())] + notes
    return PassResult(graph, bool(counts), dict(sorted(counts.items())), tuple(notes))
