"""CompSkip and event (tower) expansion.

Lowering gives every layer both halves for every tower. These passes remove what the schedule
does not run: the local half (window attention) on global layers; the global half (PFFN and a
fresh HSP summary) on local layers, which then reuse the previous summary; every block of a
tower past its own depth; and readout summaries that would pool a sequence already pooled.
"""
from __future__ import annotations

from ..ir import Graph
from .manager import PassResult

_GLOBAL_HALF = ("pffn", "hsp")
_LOCAL_HALF = ("swa",)


def _remove(graph: Graph, names: list[str], notes: list[str], why: str) -> int:
    removed = 0
    for name in names:
        if name not in graph.blocks:
            continue
        if any(p is None for p in graph.blocks[name].passthrough.values()):
            notes.append(f"kept {name}: nothing earlier to reuse ({why})")
            continue
        graph.remove_block(name)
        notes.append(f"removed {name} ({why})")
        removed += 1
    return removed


def compskip(graph: Graph) -> PassResult:
    plan = graph.meta["plan"]
    notes: list[str] = []
    removed = 0
    for layer, kind in enumerate(plan.layer_kinds):
        drop = {"global": _LOCAL_HALF, "local": _GLOBAL_HALF, "both": ()}[kind]
        names = [f"l{layer}_{t.event}_{part}" for t in plan.towers for part in drop]
        removed += _remove(graph, names, notes, f"layer {layer} is {kind}")
    kinds = {k: plan.layer_kinds.count(k) for k in ("global", "local", "both")}
    return PassResult(graph, removed > 0, {"removed_blocks": removed, **kinds}, tuple(notes))


def tower_depth(graph: Graph) -> PassResult:
    plan = graph.meta["plan"]
    notes: list[str] = []
    removed = 0
    for t in plan.towers:
        names = [f"l{layer}_{t.event}_{part}" for layer in range(t.layers, plan.layers)
                 for part in ("pffn", "swa", "hsp")]
        removed += _remove(graph, names, notes, f"tower {t.event} has {t.layers} of {plan.layers} layers")
    return PassResult(graph, removed > 0, {"removed_blocks": removed}, tuple(notes))


def prune_readouts(graph: Graph) -> PassResult:
    """A readout summary is dropped when the tower's last summary already pooled its final sequence."""
    plan = graph.meta["plan"]
    notes: list[str] = []
    removed = 0
    for t in plan.towers:
        name = f"readout_{t.event}_hsp"
        last_hsp = graph.blocks[name].passthrough[f"h_{t.event}"]
        if last_hsp is None:
            continue
        pooled_then = _pooled_sequence(graph, graph.op(last_hsp).block)
        pooled_now = _pooled_sequence(graph, name)
        if pooled_then == pooled_now:
            removed += _remove(graph, [name], notes, f"{t.event}'s last summary already pools its final sequence")
    return PassResult(graph, removed > 0, {"removed_blocks": removed}, tuple(notes))


def _pooled_sequence(graph: Graph, hsp_block: str) -> str:
    kv = graph.op(f"{hsp_block}.kv")
    return kv.inputs[0]
