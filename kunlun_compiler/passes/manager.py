"""The pass manager: runs passes in order, verifies the IR after each, records what changed."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..ir import Graph, IRError


@dataclass(frozen=True)
class PassResult:
    graph: Graph
    changed: bool
    stats: dict = field(default_factory=dict)   # counters, e.g. {"removed_blocks": 4}
    notes: tuple[str, ...] = ()                 # one human line per change


@dataclass(frozen=True)
class PassReport:
    name: str
    changed: bool
    ops_before: int
    ops_after: int
    stats: dict
    notes: tuple[str, ...]

    def line(self) -> str:
        delta = self.ops_after - self.ops_before
        stats = ", ".join(f"{k}={v}" for k, v in self.stats.items())
        return f"{self.name:<16} {'changed' if self.changed else 'no change':<9} ops {self.ops_before}->{self.ops_after} ({delta:+d})  {stats}"


class PassManager:
    def __init__(self, passes: tuple[Callable[[Graph], PassResult], ...], verify: bool = True) -> None:
        self.passes = passes
        self.verify = verify

    def run(self, graph: Graph) -> tuple[Graph, list[PassReport]]:
        reports = []
        if self.verify:
            graph.verify()
        for p in self.passes:
            before = len(graph)
            result = p(graph)
            graph = result.graph
            if self.verify:
                try:
                    graph.verify()
                except IRError as exc:
                    raise IRError(f"after pass {p.__name__}: {exc}") from None
            reports.append(PassReport(p.__name__, result.changed, before, len(graph), dict(result.stats), result.notes))
        return graph, reports
