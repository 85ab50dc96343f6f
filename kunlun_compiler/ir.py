"""The IR: a typed dataflow graph of ops over networkx.

Every value is per example: shapes leave the batch axis out. A value whose token axis is a
jagged event sequence names that event in `seq`; the cost model then counts `avg_len` useful
tokens instead of `max_len`. Ops are frozen; passes replace them through `Graph` methods and
never touch networkx attribute dicts. Iteration order is deterministic: topological, ties
broken by insertion order.

Ops are grouped into blocks (one `torch.nn` module each in the generated code); `Block` carries
what codegen needs to construct that module.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import networkx as nx

Shape = tuple[int, ...]

# op kind -> shape rule(op, input shapes) -> output shape
_SHAPE_RULES: dict[str, Callable[["Op", list[Shape]], Shape]] = {}


NO_LAUNCH = frozenset({"reshape", "input", "param", "output", "slice"})   # ops that run no kernel


def shape_rule(*kinds: str):
    def register(fn):
        for kind in kinds:
            _SHAPE_RULES[kind] = fn
        return fn
    return register


@dataclass(frozen=True)
class Op:
    id: str
    kind: str
    block: str
    inputs: tuple[str, ...] = ()
    shape: Shape = ()
    seq: str | None = None           # event name when the token axis is jagged
    attrs: dict[str, Any] = field(default_factory=dict, compare=False)

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def with_(self, **changes) -> "Op":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Block:
    """One module of the generated model: `cls(**kwargs)` called on stream variables `args`.

    `outs` maps each stream variable the block assigns to the op holding its new value;
    `passthrough` maps it to the op that held it before (None: the block has no predecessor),
    which is what consumers read when a pass removes the block.
    """

    name: str
    cls: str
    kwargs: dict[str, Any]
    args: tuple[str, ...]
    outs: dict[str, str]
    passthrough: dict[str, str | None]
    layer: int | None = None     # None: before the first or after the last layer
    group: str = "rest"          # the per-block report group (embeddings, gdpa, ...)
    comment: str = ""            # shape comment for the generated forward

    def with_(self, **changes) -> "Block":
        return dataclasses.replace(self, **changes)


class IRError(Exception):
    """The graph broke an invariant; the message names the op (and the pass, via the manager)."""


class Graph:
    def __init__(self) -> None:
        self._g = nx.DiGraph()
        self._order: dict[str, int] = {}
        self.blocks: dict[str, Block] = {}
        self.seq_lens: dict[str, tuple[int, float]] = {}  # event -> (max_len, avg_len)
        self.meta: dict[str, Any] = {}
        self._topo: list[str] | None = None
        self._ops: tuple[Op, ...] | None = None   # the ops in _topo order
        self._op_of: dict[str, Op] = {}           # id -> op, beside the graph's node data (fast lookup)
        self._by_block: dict[str, set[str]] = {}
        self._stand_ins: dict[str, set[str]] = {}   # op id -> blocks whose passthrough names it

    # ---- construction -------------------------------------------------------------------
    def add(self, op: Op) -> Op:
        if op.id in self._order:
            raise IRError(f"op {op.id!r} defined twice")
        for src in op.inputs:
            if src not in self._order:
                raise IRError(f"op {op.id!r} reads {src!r}, which is not defined")
        op = op.with_(shape=infer_shape(op, [self.op(i).shape for i in op.inputs]))
        self._order[op.id] = len(self._order)
        self._topo = None
        self._by_block.setdefault(op.block, set()).add(op.id)
        self._g.add_node(op.id, op=op)
        self._op_of[op.id] = op
        for src in op.inputs:
            self._g.add_edge(src, op.id)
        return op

    def add_block(self, block: Block) -> None:
        if block.name in self.blocks:
            raise IRError(f"block {block.name!r} defined twice")
        self._set_block(block)

    def _set_block(self, block: Block) -> None:
        old = self.blocks.get(block.name)
        for prev in (old.passthrough.values() if old else ()):
            self._stand_ins.get(prev, set()).discard(block.name)
        for prev in block.passthrough.values():
            if prev is not None:
                self._stand_ins.setdefault(prev, set()).add(block.name)
        self.blocks[block.name] = block

    def update(self, op: Op) -> None:
        """Swap an op for a new version of itself with the same id and inputs."""
        old = self.op(op.id)
        if old.inputs != op.inputs:
            raise IRError(f"update of {op.id!r} may not rewire its inputs")
        self._set_op(op)
        self._ops = None

    def replace_block(self, block: Block) -> None:
        if block.name not in self.blocks:
            raise IRError(f"no block {block.name!r}")
        self._set_block(block)

    def remove_block(self, name: str) -> int:
        """Remove a block and its ops; consumers elsewhere read the block's passthrough values."""
        block = self.blocks[name]
        if any(p is None for p in block.passthrough.values()):
            raise IRError(f"block {name!r} has no predecessor to stand in for it")
        ops = [op.id for op in self.ops_in(name)]
        for var, out in block.outs.items():
            self._rewire(out, block.passthrough[var], skip=set(ops))
        for op_id in ops:
            self._forget(op_id)
        for var, out in block.outs.items():      # later blocks whose predecessor this was
            for user in sorted(self._stand_ins.pop(out, ())):
                other = self.blocks[user]
                pt = {v: block.passthrough[var] if prev == out else prev for v, prev in other.passthrough.items()}
                self._set_block(other.with_(passthrough=pt))
        self._set_block(block.with_(passthrough={}))
        del self.blocks[name]
        return len(ops)

    def _set_op(self, op: Op) -> None:
        self._g.nodes[op.id]["op"] = op
        self._op_of[op.id] = op

    def _forget(self, op_id: str) -> None:
        self._by_block[self.op(op_id).block].discard(op_id)
        self._g.remove_node(op_id)
        del self._op_of[op_id]
        del self._order[op_id]
        self._topo = None

    def _rewire(self, old: str, new: str, skip: set[str]) -> None:
        for dst in list(self._g.successors(old)):
            if dst in skip:
                continue
            dst_op = self.op(dst)
            self._set_op(dst_op.with_(inputs=tuple(new if i == old else i for i in dst_op.inputs)))
            self._g.remove_edge(old, dst)
            self._g.add_edge(new, dst)
        self._topo = None

    def replace_chain(self, chain: list[str], new: Op) -> Op:
        """Replace a chain of ops with one op; consumers of the chain's last op read the new one."""
        last = chain[-1]
        position = self._order[last]
        consumers = list(self._g.successors(last))
        for op_id in chain:
            self._forget(op_id)
        new_op = self.add(new)
        self._order[new_op.id] = position  # the fused op sorts where the chain ended
        self._topo = None
        for dst in consumers:
            dst_op = self.op(dst)
            inputs = tuple(new_op.id if i == last else i for i in dst_op.inputs)
            self._set_op(dst_op.with_(inputs=inputs))
            self._g.add_edge(new_op.id, dst)
        self._topo = None
        return new_op

    # ---- queries ------------------------------------------------------------------------
    def op(self, op_id: str) -> Op:
        try:
            return self._op_of[op_id]
        except KeyError:
            raise IRError(f"no op {op_id!r}") from None

    def __contains__(self, op_id: str) -> bool:
        return op_id in self._g

    def __len__(self) -> int:
        return self._g.number_of_nodes()

    def ops(self) -> list[Op]:
        if self._topo is None:   # cached until the graph's structure changes
            self._topo = list(nx.lexicographical_topological_sort(self._g, key=self._order.__getitem__))
            self._ops = None
        if self._ops is None:    # ... and the op objects until one is swapped (update, rewiring)
            self._ops = tuple(self._op_of[n] for n in self._topo)
        return list(self._ops)

    def consumers(self, op_id: str) -> list[Op]:
        return sorted((self.op(n) for n in self._g.successors(op_id)), key=lambda o: self._order[o.id])

    def ops_in(self, block: str) -> list[Op]:
        """The block's ops in insertion order (a block is a straight chain of construction)."""
        return [self.op(i) for i in sorted(self._by_block.get(block, ()), key=self._order.__getitem__)]

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops():
            counts[op.kind] = counts.get(op.kind, 0) + 1
        return dict(sorted(counts.items()))

    # ---- invariants ---------------------------------------------------------------------
    def verify(self) -> None:
        """Re-infer every shape and check the graph is acyclic and every input exists."""
        if not nx.is_directed_acyclic_graph(self._g):
            raise IRError("the graph has a cycle")
        for op in self.ops():
            for src in op.inputs:
                if src not in self._g or not self._g.has_edge(src, op.id):
                    raise IRError(f"op {op.id!r} reads {src!r} without an edge")
            want = infer_shape(op, [self.op(i).shape for i in op.inputs])
            if want != op.shape:
                raise IRError(f"op {op.id!r} ({op.kind}) has shape {op.shape}, inferred {want}")
        for block in self.blocks.values():
            missing = [o for o in block.outs.values() if o not in self._g]
            if missing:
                raise IRError(f"block {block.name!r} outputs missing ops {missing}")


def infer_shape(op: Op, inputs: list[Shape]) -> Shape:
    rule = _SHAPE_RULES.get(op.kind)
    if rule is None:
        raise IRError(f"op {op.id!r}: unknown kind {op.kind!r}; known: {', '.join(sorted(_SHAPE_RULES))}")
    try:
        return tuple(rule(op, inputs))
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise IRError(f"op {op.id!r} ({op.kind}): bad input shapes {inputs}: {exc}") from None


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


# ---- shape rules, one per op kind --------------------------------------------------------
@shape_rule("input", "param")
def _given(op: Op, ins: list[Shape]) -> Shape:
    return op.attrs["shape"]


@shape_rule("embedding")
def _embedding(op: Op, ins: list[Shape]) -> Shape:
    (ids,) = ins
    return (*ids, op.attrs["dim"])


@shape_rule("linear")
def _linear(op: Op, ins: list[Shape]) -> Shape:
    (x,) = ins
    _need(x[-1] == op.attrs["in_features"], f"last axis {x[-1]} != in_features {op.attrs['in_features']}")
    return (*x[:-1], op.attrs["out_features"])


@shape_rule("token_linear")
def _token_linear(op: Op, ins: list[Shape]) -> Shape:
    (x,) = ins
    _need(x[0] == op.attrs["n_in"], f"token axis {x[0]} != n_in {op.attrs['n_in']}")
    return (op.attrs["n_out"], *x[1:])


@shape_rule("elementwise")
def _same(op: Op, ins: list[Shape]) -> Shape:
    _need(all(s == ins[0] for s in ins), "operands differ in shape")
    return ins[0]


@shape_rule("reshape")
def _reshape(op: Op, ins: list[Shape]) -> Shape:
    (x,) = ins
    new = tuple(op.attrs["shape"])
    _need(_prod(x) == _prod(new), f"{x} cannot be viewed as {new}")
    return new


@shape_rule("concat")
def _concat(op: Op, ins: list[Shape]) -> Shape:
    """Along the token axis (0), or with axis=-1 along the feature axis."""
    if op.attrs.get("axis", 0) == -1:
        _need(len({s[:-1] for s in ins}) == 1, "leading axes differ")
        return (*ins[0][:-1], sum(s[-1] for s in ins))
    _need(len({s[1:] for s in ins}) == 1, "trailing axes differ")
    return (sum(s[0] for s in ins), *ins[0][1:])


@shape_rule("slice")
def _slice(op: Op, ins: list[Shape]) -> Shape:
    """x[start:stop] along `axis` (0, the token axis, unless said; -1 the feature axis)."""
    (x,) = ins
    lo, hi, axis = op.attrs["start"], op.attrs["stop"], op.attrs.get("axis", 0)
    _need(axis in (0, -1, len(x) - 1), f"slice axis {axis} of a {len(x)}-d value")
    axis = axis % len(x)
    _need(0 <= lo < hi <= x[axis], f"slice {lo}:{hi} out of {x[axis]}")
    return (*x[:axis], hi - lo, *x[axis + 1:])


@shape_rule("bmm")
def _bmm(op: Op, ins: list[Shape]) -> Shape:
    a, b = ins
    a = a[::-1] if op.attrs.get("transpose_a") else a
    _need(a[1] == b[0], f"inner dims {a} x {b}")
    return (a[0], b[1])


@shape_rule("attn_scores")
def _scores(op: Op, ins: list[Shape]) -> Shape:
    q, k = ins
    _need(q[0] == k[-3] and q[2] == k[-1], f"q {q} vs k {k}")
    return (q[0], q[1], k[-2])


@shape_rule("attn_values")
def _values(op: Op, ins: list[Shape]) -> Shape:
    p, v = ins
    _need(p[0] == v[0] and p[2] == v[1], f"p {p} vs v {v}")
    return (p[0], p[1], v[2])


@shape_rule("gdpa", "window_attention", "seed_pooling")
def _attention(op: Op, ins: list[Shape]) -> Shape:
    q, k, v = ins
    _need(k == v and q[0] == k[0] and q[2] == k[2], f"q {q}, k {k}, v {v}")
    return q


@shape_rule("output")
def _output(op: Op, ins: list[Shape]) -> Shape:
    return ins[0]


def _prod(xs: Iterable[int]) -> int:
    out = 1
    for x in xs:
        out *= x
    return out
