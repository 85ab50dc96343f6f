"""compile_spec: the pipeline, top to bottom (design.md)."""
from __future__ import annotations

from dataclasses import dataclass

from .ir import Graph
from .lower import lower
from .passes import PIPELINE, PassManager, PassReport
from .plan import Plan, canonicalize
from .spec import Spec


@dataclass(frozen=True)
class Compiled:
    spec: Spec
    plan: Plan
    graph: Graph
    canonical_notes: tuple[str, ...]
    reports: tuple[PassReport, ...]


def compile_spec(spec: Spec, verify: bool = True) -> Compiled:
    plan, notes = canonicalize(spec)                 # defaults resolved, nothing implicit left
    graph = lower(plan)                              # uniform graph: every half of every layer
    graph, reports = PassManager(PIPELINE, verify=verify).run(graph)  # compskip ... select_kernels
    return Compiled(spec, plan, graph, tuple(notes), tuple(reports))
