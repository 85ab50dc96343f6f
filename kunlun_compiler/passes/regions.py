"""Compile regions: neighbouring blocks that `Model.compile_blocks` compiles as one graph.

`compile_blocks` compiles each block on its own (regional compilation: blocks of one
configuration share a graph). Where a block's output is read by two later blocks, autograd sums
the two gradients of that tensor between the graphs, in an eager `add_` over the whole tensor:
three passes over memory that no compiled kernel absorbs. When the first reader runs right after
the producer, compiling the two blocks as one region moves that sum inside the region's backward,
where inductor folds it into the kernels that read the gradient anyway.

The regions are a table of rules, one per generated helper (templates/package/model.py.j2): a
rule names the producer's and the reader's module classes; the reader must take the producer's
output and the producer's second argument (the tower's `Seq`) in that order, and the output must
be read again later (the fan-out that costs the sum). Both blocks get `region` = the helper's
name; codegen emits one helper call for the pair. Modules, parameters and the per-block report
groups stay as they are: a region changes what is compiled together, not the model.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Block, Graph
from .manager import PassResult


@dataclass(frozen=True)
class RegionRule:
    helper: str          # the generated function that runs both blocks: helper(first, then, *first.args)
    first: str           # the producing block's module class
    then: str            # the reading block's module class, run right after it


REGION_RULES: tuple[RegionRule, ...] = (
    # A global layer's PFFN updates the tower's sequence; its HSP pools it, and the tower's next
    # layer (or readout) reads it again.
    RegionRule("pffn_then_pool", "PersonalizedFFN", "HierarchicalSeedPooling"),
    # Without CompSkip a layer runs both: its window attention updates the sequence last.
    RegionRule("swa_then_pool", "WindowSelfAttention", "HierarchicalSeedPooling"),
)


def _read_later(var: str, later: list[Block]) -> bool:
    """`var` is read by one of `later` before any of them assigns it again."""
    for b in later:
        if var in b.args:
            return True
        if var in b.outs:
            return False
    return False


def _pairs(blocks: list[Block], rule: RegionRule) -> list[tuple[Block, Block]]:
    found = []
    for i, (a, b) in enumerate(zip(blocks, blocks[1:])):
        if (a.cls, b.cls) != (rule.first, rule.then) or a.region or b.region:
            continue
        outs = list(a.outs)
        if len(outs) != 1 or len(a.args) < 2 or b.args != (outs[0], a.args[1]):
            continue
        if _read_later(outs[0], blocks[i + 2:]):
            found.append((a, b))
    return found


def regions(graph: Graph) -> PassResult:
    counts: dict[str, int] = {}
    notes: list[str] = []
    for rule in REGION_RULES:
        for a, b in _pairs(graph.ordered_blocks(), rule):
            graph.replace_block(a.with_(region=rule.helper))
            graph.replace_block(b.with_(region=rule.helper))
            counts[rule.helper] = counts.get(rule.helper, 0) + 1
            notes.append(f"{a.name} + {b.name}: one region ({rule.helper}); "
                         f"{list(a.outs)[0]}'s two gradients summed inside it")
    return PassResult(graph, bool(counts), dict(sorted(counts.items())), tuple(notes))
