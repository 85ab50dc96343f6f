"""compile_spec: the pipeline, top to bottom (design.md)."""
from __future__ import annotations

from dataclasses import dataclass

from . import rules
from .errors import SpecError
from .ir import Graph
from .lower import lower
from .passes import GRAPH_PASSES, PassManager, PassReport
from .passes.select import for_target
from .plan import Plan, canonicalize
from .spec import Spec


@dataclass(frozen=True)
class Compiled:
    spec: Spec
    plan: Plan
    graph: Graph
    canonical_notes: tuple[str, ...]
    reports: tuple[PassReport, ...]


def compile_spec(spec: Spec, target: str | None = None, verify: str = "end") -> Compiled:
    """`target` overrides the spec's compile.target (it decides kernel selection).

    verify: "each" re-infers every shape after every pass (the tests do this); "end" once,
    after the last pass (the CLI: same guarantee on the result, a sixth of the time).

    The cross-field rules run here too, not only in the loader: a Spec built in Python
    (Spec.model_validate) must not reach codegen with a name that is not an identifier.
    """
    issues = rules.check(spec)
    if issues:
        raise SpecError("<spec>", issues)
    plan, notes = canonicalize(spec)                 # defaults resolved, nothing implicit left
    graph = lower(plan)                              # uniform graph: every half of every layer
    passes = GRAPH_PASSES + (for_target(target or plan.target),)
    graph, reports = PassManager(passes, verify=verify == "each").run(graph)  # compskip ... select_kernels
    if verify == "end":
        graph.verify()
    return Compiled(spec, plan, graph, tuple(notes), tuple(reports))
