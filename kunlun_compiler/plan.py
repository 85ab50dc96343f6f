"""The canonical plan: the spec with every default resolved into explicit numbers.

`canonicalize(spec)` is the first pass of the pipeline. It reports each value it had to resolve
(a default, a window clipped to the sequence, a temperature turned into a scale) so that
`kunlunc inspect` can show what the model really is. Nothing downstream reads the spec itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .spec import Spec


@dataclass(frozen=True)
class TableInfo:
    name: str
    vocab: int
    dim: int


@dataclass(frozen=True)
class FeatureInfo:
    name: str
    table: str      # the table owner's name
    dim: int        # the table's width


@dataclass(frozen=True)
class TowerPlan:
    event: str
    max_len: int
    avg_len: float
    time_gaps: bool
    items: tuple[FeatureInfo, ...]
    dim: int
    heads: int
    layers: int
    window: int                 # clipped to max_len - 1: beyond that it is full attention
    seeds: int
    summary_tokens: int
    pffn_scale: float           # 1/τ, applied after the activation
    pffn_activations: tuple[str, ...]   # one per head

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


@dataclass(frozen=True)
class Plan:
    name: str
    dtype: str
    batch_size: int
    target: str
    fuse: frozenset[str]
    dense: int
    dense_tokens: int
    tables: tuple[TableInfo, ...]
    sparse: tuple[FeatureInfo, ...]
    towers: tuple[TowerPlan, ...]
    dim: int
    layer_kinds: tuple[str, ...]          # global | local | both, one per layer
    summary_tokens: int                   # weight generation n_sum
    kv_tokens: int
    qk_norm: bool
    attention_kind: str
    causal: bool
    kron_rank: int
    experts: int
    wukong_layers: int
    fmb_tokens: int
    lcb_tokens: int
    wukong_rank: int
    wukong_mlp: tuple[int, ...]
    tasks: tuple[str, ...]
    head_mlp: tuple[int, ...]

    @property
    def layers(self) -> int:
        return len(self.layer_kinds)

    @property
    def x_tokens(self) -> int:
        return (self.dense_tokens if self.dense else 0) + len(self.sparse)

    @property
    def interaction_tokens(self) -> int:
        return self.x_tokens + self.summary_tokens + sum(t.summary_tokens for t in self.towers)


def canonicalize(spec: Spec) -> tuple[Plan, list[str]]:
    """Resolve defaults; return the plan and one line per value that was resolved."""
    notes: list[str] = []
    owners = _tables(spec)
    feature = lambda f: FeatureInfo(f.name, f.share or f.name, owners[f.share or f.name].dim)  # noqa: E731
    towers = tuple(_tower(spec, name, ev, feature, notes) for name, ev in spec.features.events.items())
    m = spec.model
    kinds = spec.layer_kinds()
    if m.compskip in ("alternate", "none"):
        notes.append(f"model.compskip {m.compskip!r} -> {list(kinds)}")
    plan = Plan(
        name=spec.name, dtype=spec.dtype, batch_size=spec.batch_size, target=spec.compile.target,
        fuse=spec.fused(), dense=spec.features.dense, dense_tokens=spec.features.dense_tokens,
        tables=tuple(owners.values()), sparse=tuple(feature(f) for f in spec.features.sparse),
        towers=towers, dim=m.dim, layer_kinds=kinds,
        summary_tokens=m.weight_generation.summary_tokens, kv_tokens=m.pffn.kv_tokens,
        qk_norm=m.pffn.qk_norm, attention_kind=m.attention.kind, causal=m.attention.causal,
        kron_rank=m.hsp.kron_rank, experts=m.interaction.experts,
        wukong_layers=m.interaction.wukong.layers, fmb_tokens=m.interaction.wukong.fmb_tokens,
        lcb_tokens=m.interaction.wukong.lcb_tokens, wukong_rank=m.interaction.wukong.rank,
        wukong_mlp=tuple(m.interaction.wukong.mlp), tasks=tuple(m.head.tasks), head_mlp=tuple(m.head.mlp),
    )
    return plan, notes


def _tables(spec: Spec) -> dict[str, TableInfo]:
    """Table owners in spec order: sparse features first, then event items."""
    feats = list(spec.features.sparse) + [i for ev in spec.features.events.values() for i in ev.items]
    return {f.name: TableInfo(f.name, f.vocab, f.dim) for f in feats if f.share is None}


def _tower(spec: Spec, name: str, ev, feature, notes: list[str]) -> TowerPlan:
    t = ev.tower
    avg = float(ev.avg_len) if ev.avg_len is not None else float(ev.max_len)
    if ev.avg_len is None:
        notes.append(f"features.events.{name}.avg_len defaults to max_len {ev.max_len}")
    window = min(t.window, max(ev.max_len - 1, 1))
    if window != t.window:
        notes.append(f"features.events.{name}.tower.window {t.window} >= max_len {ev.max_len}: full attention")
    temp = spec.model.pffn.temperature
    head_dim = t.dim // t.heads
    tau = {"max_len": float(ev.max_len), "sqrt_d": math.sqrt(head_dim)}.get(temp, temp)
    notes.append(f"{name}: pffn temperature {temp!r} -> tau {tau:g}")
    return TowerPlan(
        event=name, max_len=ev.max_len, avg_len=avg, time_gaps=ev.time_gaps,
        items=tuple(feature(i) for i in ev.items), dim=t.dim, heads=t.heads, layers=t.layers,
        window=window, seeds=t.seeds, summary_tokens=t.summary_tokens,
        pffn_scale=1.0 / float(tau), pffn_activations=spec.activations(t.heads),
    )
