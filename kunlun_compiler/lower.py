"""Lowering: the canonical plan -> the IR graph, in the uniform (InterFormer-like) form.

Every layer is lowered with both halves for every tower (PFFN as matmul -> activation ->
matmul, then sliding-window attention as matmul -> mask -> softmax -> matmul, then a fresh HSP
summary), and every tower gets a readout summary after the last layer. The passes then cut this
down: CompSkip removes the half a layer does not run, tower depth removes a tower's layers past
its own `layers`, and readouts that would repeat the last summary go. Fusion later collapses the
attention chains into kernels. Lowering is the only module that knows both the plan and the IR.

Per layer l:  x_sum = WG_l(x);  s_e <- PFFN_l,e(s_e, x_sum);  s_e <- SWA_l,e(s_e);
              h_e = HSP_l,e(s_e);  x <- MoWE_l(x, x_sum, h_1..h_E)
Readout:      x_sum = WG_out(x);  h_e = HSP_out,e(s_e);  logits = Head(x_sum, h_1..h_E)
"""
from __future__ import annotations

from .ir import Block, Graph, Op
from .plan import Plan, TowerPlan


class Builder:
    """Emits ops block by block, tracking which op currently holds each stream variable."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.graph = Graph()
        self.streams: dict[str, str] = {}
        self.block = ""
        for t in plan.towers:
            self.graph.seq_lens[t.event] = (t.max_len, t.avg_len)

    def op(self, name: str, kind: str, *inputs: str, seq: str | None = None, **attrs) -> str:
        return self.graph.add(Op(f"{self.block}.{name}", kind, self.block, tuple(inputs),
                                 seq=seq, attrs=attrs)).id

    def begin(self, name: str) -> None:
        self.block = name

    def end(self, cls: str, args: tuple[str, ...], outs: dict[str, str], *, layer=None,
            group="rest", comment="", **kwargs) -> None:
        passthrough = {var: self.streams.get(var) for var in outs}
        self.graph.add_block(Block(self.block, cls, kwargs, args, dict(outs), passthrough, layer, group, comment))
        self.streams.update(outs)

    def linear(self, name: str, x: str, n_in: int, n_out: int, **kw) -> str:
        seq = self.graph.op(x).seq
        return self.op(name, "linear", x, seq=seq, in_features=n_in, out_features=n_out, **kw)

    def heads(self, name: str, x: str, heads: int) -> str:
        tokens, width = self.graph.op(x).shape
        return self.op(name, "reshape", x, seq=self.graph.op(x).seq, shape=(heads, tokens, width // heads))

    def merge(self, name: str, x: str) -> str:
        h, tokens, dh = self.graph.op(x).shape
        return self.op(name, "reshape", x, seq=self.graph.op(x).seq, shape=(tokens, h * dh))


def lower(plan: Plan) -> Graph:
    b = Builder(plan)
    _features(b)
    for t in plan.towers:
        _event(b, t)
    for layer in range(plan.layers):
        _weight_generation(b, f"l{layer}_weight_gen", layer)
        for t in plan.towers:
            _pffn(b, t, layer)
            _window_attention(b, t, layer)
            _hsp(b, t, f"l{layer}_{t.event}_hsp", layer)
        _interaction(b, layer)
    _weight_generation(b, "readout_weight_gen", None)
    for t in plan.towers:
        _hsp(b, t, f"readout_{t.event}_hsp", None)
    _head(b)
    b.graph.meta["plan"] = plan
    return b.graph


# ---- inputs ------------------------------------------------------------------------------
def _features(b: Builder) -> None:
    p, d = b.plan, b.plan.dim
    b.begin("features")
    tokens = []
    if p.dense:
        dense = b.op("dense", "input", shape=(p.dense,), dtype="float")
        proj = b.linear("dense_proj", dense, p.dense, p.dense_tokens * d)
        tokens.append(b.op("dense_tokens", "reshape", proj, shape=(p.dense_tokens, d)))
    for f in p.sparse:
        ids = b.op(f"{f.name}.ids", "input", shape=(1,), dtype="int64")
        emb = b.op(f"{f.name}.embed", "embedding", ids, table=f.table, dim=f.dim)
        if f.dim != d:
            emb = b.linear(f"{f.name}.proj", emb, f.dim, d, bias=False)   # one bmm per width (passes.batch_kernels)
        tokens.append(emb)
    x = b.op("concat", "concat", *tokens) if len(tokens) > 1 else tokens[0]
    x = b.op("norm", "elementwise", x, fn="layer_norm")
    b.end("FeatureTokens", ("batch",), {"x": x}, group="embeddings",
          comment=f"[B, {p.x_tokens}, {d}]", dense=p.dense, dense_tokens=p.dense_tokens, dim=d,
          features=tuple((f.name, f.table, f.dim) for f in p.sparse))


def _event(b: Builder, t: TowerPlan) -> None:
    e, T = t.event, t.max_len
    b.begin(f"embed_{e}")
    lengths = b.op("lengths", "input", shape=(), dtype="int64")
    parts, projected = [], []
    for f in t.items:
        ids = b.op(f"{f.name}.ids", "input", seq=e, shape=(T,), dtype="int64")
        emb = b.op(f"{f.name}.embed", "embedding", ids, seq=e, table=f.table, dim=f.dim)
        (projected if f.dim != t.dim else parts).append(emb)
    if projected:   # Σ_i emb_i W_i as one GEMM: [emb_1 ‖ emb_2 ‖ ...] @ [W_1; W_2; ...]
        x = b.op("items", "concat", *projected, seq=e, axis=-1) if len(projected) > 1 else projected[0]
        parts.insert(0, b.linear("items_proj", x, b.graph.op(x).shape[-1], t.dim, bias=False))
    parts.append(b.op("position", "param", seq=e, shape=(T, t.dim)))
    if t.time_gaps:
        gaps = b.op("time_gaps", "input", seq=e, shape=(T,), dtype="int64")
        parts.append(b.op("time_gap_embed", "embedding", gaps, seq=e, table=None, dim=t.dim))
    s = b.op("sum", "elementwise", *parts, seq=e, fn="add")
    s = b.op("norm", "elementwise", s, seq=e, fn="layer_norm")
    b.end("EventEmbedding", ("batch",), {f"s_{e}": s, f"seq_{e}": lengths}, group="embeddings",
          comment=f"[B, {T}, {t.dim}] or packed [N, {t.dim}]; its layout", event=e, max_len=T,
          dim=t.dim, time_gaps=t.time_gaps,
          items=tuple((f.name, f.table, f.dim) for f in t.items))


# ---- interaction side --------------------------------------------------------------------
def _weight_generation(b: Builder, name: str, layer: int | None) -> None:
    p, d = b.plan, b.plan.dim
    b.begin(name)
    z = b.op("lce", "token_linear", b.streams["x"], n_in=p.x_tokens, n_out=p.summary_tokens)
    gate = b.linear("gate", z, d, d)
    x_sum = b.op("gated", "elementwise", z, gate, fn="sigmoid_gate")
    b.end("WeightGeneration", ("x",), {"x_sum": x_sum}, layer=layer, comment=f"[B, {p.summary_tokens}, {d}]",
          tokens_in=p.x_tokens, tokens_out=p.summary_tokens, dim=d)


def _interaction(b: Builder, layer: int) -> None:
    p, d = b.plan, b.plan.dim
    b.begin(f"l{layer}_interaction")
    hs = [b.streams[f"h_{t.event}"] for t in p.towers]
    g = b.op("concat", "concat", b.streams["x"], b.streams["x_sum"], *hs)
    groups = expert_groups(p.interaction_tokens, p.experts)
    outs, start = [], 0
    for j, n in enumerate(groups):
        a = b.op(f"expert{j}.tokens", "slice", g, start=start, stop=start + n)
        start += n
        for i in range(p.wukong_layers):
            a, n = _wukong_layer(b, f"expert{j}.layer{i}", a, n)
        outs.append(a)
    cat = b.op("experts", "concat", *outs) if len(outs) > 1 else outs[0]
    back = b.op("project", "token_linear", cat, n_in=sum(b.graph.op(o).shape[0] for o in outs), n_out=p.x_tokens)
    x = b.op("residual", "elementwise", b.streams["x"], back, fn="add_layer_norm")
    b.end("MixtureOfWukongExperts", ("x", "x_sum", "hs"), {"x": x}, layer=layer, group="wukong",
          comment=f"[B, {p.x_tokens}, {d}]", tokens=p.x_tokens, dim=d, groups=groups,
          layers=p.wukong_layers, fmb_tokens=p.fmb_tokens, lcb_tokens=p.lcb_tokens,
          rank=p.wukong_rank, mlp=p.wukong_mlp)


def expert_groups(tokens: int, experts: int) -> tuple[int, ...]:
    """Contiguous token groups, as even as possible, the larger ones first."""
    base, extra = divmod(tokens, experts)
    return tuple(base + (1 if j < extra else 0) for j in range(experts))


def expert_runs(groups: tuple[int, ...]) -> list[tuple[int, int]]:
    """(first expert, count) of each run of consecutive experts with one token count: the experts
    the generated first Wukong layer batches together (templates: layers.expert_runs)."""
    runs: list[tuple[int, int]] = []
    for j, n in enumerate(groups):
        if runs and groups[runs[-1][0]] == n:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((j, 1))
    return runs


def _wukong_layer(b: Builder, name: str, a: str, n: int) -> tuple[str, int]:
    p, d = b.plan, b.plan.dim
    y = b.op(f"{name}.fm_proj", "param", shape=(n, p.wukong_rank))
    aty = b.op(f"{name}.fm_aty", "bmm", a, y, transpose_a=True)        # (d, rank)
    fm = b.op(f"{name}.fm", "bmm", a, aty)                              # (n, rank)
    h = b.op(f"{name}.fm_flat", "reshape", fm, shape=(n * p.wukong_rank,))
    h = b.op(f"{name}.fm_norm", "elementwise", h, fn="layer_norm")
    width = n * p.wukong_rank
    for k, hidden in enumerate(p.wukong_mlp):
        h = b.linear(f"{name}.fmb_mlp{k}", h, width, hidden, act="relu")
        width = hidden
    h = b.linear(f"{name}.fmb_out", h, width, p.fmb_tokens * d)
    fmb = b.op(f"{name}.fmb", "reshape", h, shape=(p.fmb_tokens, d))
    lcb = b.op(f"{name}.lcb", "token_linear", a, n_in=n, n_out=p.lcb_tokens)
    out_n = p.fmb_tokens + p.lcb_tokens
    cat = b.op(f"{name}.concat", "concat", fmb, lcb)
    skip = a if out_n == n else b.op(f"{name}.skip", "token_linear", a, n_in=n, n_out=out_n)
    return b.op(f"{name}.out", "elementwise", cat, skip, fn="add_layer_norm"), out_n


# ---- sequence side -----------------------------------------------------------------------
def _pffn(b: Builder, t: TowerPlan, layer: int) -> None:
    p, e = b.plan, t.event
    b.begin(f"l{layer}_{e}_pffn")
    s = b.streams[f"s_{e}"]
    q = b.heads("q", b.linear("q_proj", b.op("norm", "elementwise", s, seq=e, fn="layer_norm"), t.dim, t.dim), t.heads)
    kv = b.op("kv_tokens", "token_linear", b.streams["x_sum"], n_in=p.summary_tokens, n_out=p.kv_tokens)
    kv = b.linear("kv_proj", kv, p.dim, 2 * t.dim)      # K and V in one GEMM, as the module runs it
    k, v = (b.heads(n, b.op(f"{n}_part", "slice", kv, start=i * t.dim, stop=(i + 1) * t.dim, axis=-1), t.heads)
            for i, n in enumerate("kv"))
    if p.qk_norm:
        q = b.op("q_norm", "elementwise", q, seq=e, fn="rms_norm")
        k = b.op("k_norm", "elementwise", k, fn="rms_norm")
    acts = ",".join(t.pffn_activations)
    scores = b.op("scores", "attn_scores", q, k, seq=e, tq=e, tk=None)
    a = b.op("act", "elementwise", scores, seq=e, fn="activation", activations=acts)
    a = b.op("scale", "elementwise", a, seq=e, fn="scale", scale=t.pffn_scale)
    o = b.op("values", "attn_values", a, v, seq=e, tq=e, tk=None)
    o = b.linear("o_proj", b.merge("merge", o), t.dim, t.dim)
    s = b.op("residual", "elementwise", s, o, seq=e, fn="add")
    b.end("PersonalizedFFN", (f"s_{e}", f"seq_{e}", "x_sum"), {f"s_{e}": s}, layer=layer, group="gdpa",
          comment=f"[B, {t.max_len}, {t.dim}]", dim=p.dim, seq_dim=t.dim, heads=t.heads,
          summary_tokens=p.summary_tokens, kv_tokens=p.kv_tokens, activations=acts,
          scale=t.pffn_scale, qk_norm=p.qk_norm, fused=False)


def _window_attention(b: Builder, t: TowerPlan, layer: int) -> None:
    p, e = b.plan, t.event
    b.begin(f"l{layer}_{e}_swa")
    s = b.streams[f"s_{e}"]
    qkv = b.linear("qkv_proj", s, t.dim, 3 * t.dim)    # one GEMM, as the generated module runs it
    q, k, v = (b.heads(n, b.op(f"{n}_part", "slice", qkv, seq=e, start=i * t.dim, stop=(i + 1) * t.dim,
                               axis=-1), t.heads) for i, n in enumerate("qkv"))
    band = dict(seq=e, tq=e, tk=e, window=t.window, causal=p.causal)
    scores = b.op("scores", "attn_scores", q, k, **band)
    if p.attention_kind == "softmax":
        scale = t.head_dim ** -0.5
        a = b.op("scale", "elementwise", scores, seq=e, fn="scale", scale=scale)
        a = b.op("band_mask", "elementwise", a, seq=e, fn="band_mask", window=t.window, causal=p.causal)
        a = b.op("softmax", "elementwise", a, seq=e, fn="softmax")
    else:
        scale = t.pffn_scale
        a = b.op("act", "elementwise", scores, seq=e, fn="activation", activations=p.attention_kind)
        a = b.op("scale", "elementwise", a, seq=e, fn="scale", scale=scale)
        a = b.op("band_mask", "elementwise", a, seq=e, fn="band_mask", window=t.window, causal=p.causal)
    o = b.op("values", "attn_values", a, v, **band)
    o = b.linear("o_proj", b.merge("merge", o), t.dim, t.dim)
    s = b.op("residual", "elementwise", s, o, seq=e, fn="add_layer_norm")
    b.end("WindowSelfAttention", (f"s_{e}", f"seq_{e}"), {f"s_{e}": s}, layer=layer,
          group="window_attention", comment=f"[B, {t.max_len}, {t.dim}]", dim=t.dim, heads=t.heads,
          window=t.window, causal=p.causal, kind=p.attention_kind, scale=scale, fused=False)


def _hsp(b: Builder, t: TowerPlan, name: str, layer: int | None) -> None:
    p, e = b.plan, t.event
    b.begin(name)
    s = b.streams[f"s_{e}"]
    seeds = b.op("seeds", "param", shape=(t.seeds, t.dim))
    q = b.heads("q", b.op("seed_norm", "elementwise", seeds, fn="layer_norm"), t.heads)
    kv = b.heads("kv", s, t.heads)
    scale = t.head_dim ** -0.5
    scores = b.op("scores", "attn_scores", q, kv, tq=None, tk=e)
    a = b.op("scale", "elementwise", scores, fn="scale", scale=scale)
    a = b.op("length_mask", "elementwise", a, fn="length_mask")
    a = b.op("softmax", "elementwise", a, fn="softmax")
    pooled = b.merge("merge", b.op("values", "attn_values", a, kv, tq=None, tk=e))
    r, k = p.kron_rank, t.summary_tokens
    if r:
        z = b.op("kron_z", "param", shape=(t.seeds, r * k))
        u = b.op("kron_u", "bmm", z, pooled, transpose_a=True)            # (r·k, d_e)
        u = b.op("kron_u_view", "reshape", u, shape=(k, r * t.dim))
        pooled = b.linear("kron_w", u, r * t.dim, t.dim, bias=False)
    h = b.linear("out_proj", pooled, t.dim, p.dim)
    b.end("HierarchicalSeedPooling", (f"s_{e}", f"seq_{e}"), {f"h_{e}": h}, layer=layer,
          group="seed_pooling", comment=f"[B, {k}, {p.dim}]", seq_dim=t.dim, heads=t.heads,
          seeds=t.seeds, summary_tokens=k, kron_rank=r, out_dim=p.dim, fused=False)


def _head(b: Builder) -> None:
    p, d = b.plan, b.plan.dim
    b.begin("head")
    hs = [b.streams[f"h_{t.event}"] for t in p.towers]
    cat = b.op("concat", "concat", b.streams["x_sum"], *hs) if hs else b.streams["x_sum"]
    tokens = p.summary_tokens + sum(t.summary_tokens for t in p.towers)
    h = b.op("flatten", "reshape", cat, shape=(tokens * d,))
    width = tokens * d
    for k, hidden in enumerate(p.head_mlp):
        h = b.linear(f"mlp{k}", h, width, hidden, act="relu")
        width = hidden
    logits = b.op("logits", "output", b.linear("out", h, width, len(p.tasks)))
    b.end("Head", ("x_sum", "hs"), {"logits": logits}, comment=f"[B, {len(p.tasks)}]",
          tokens=tokens, dim=d, mlp=p.head_mlp, tasks=p.tasks)
