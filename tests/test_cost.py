"""Exact FLOP / byte / parameter integers per op type, and whole-model invariants."""
from __future__ import annotations

import pytest

from genutil import SPECS, compiled, load_spec, spec_text
from kunlun_compiler import hardware
from kunlun_compiler.cost import HOST_KINDS, TIME_KEYS, CostModel, batch_curve, estimate, pairs_in_window

TINY_TEXT = (SPECS / "kunlun_tiny.yaml").read_text()


def _spec(**replace):
    text = TINY_TEXT
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return spec_text(text)


@pytest.fixture(scope="module")
def tiny():
    c = compiled(_spec())
    return c, CostModel(c.graph, "cpu", 1)


@pytest.fixture(scope="module")
def g6_graph():
    return compiled(load_spec(SPECS / "kunlun_6g.yaml")).graph


def brute_pairs(t, w, causal):
    return sum(1 for i in range(t) for j in range(t) if (0 <= i - j <= w if causal else abs(i - j) <= w))


@pytest.mark.parametrize("causal", [False, True])
def test_pairs_in_window(causal):
    for t in range(0, 30):
        for w in range(1, 35):
            assert pairs_in_window(t, w, causal) == brute_pairs(t, w, causal), (t, w)


# click: avg_len 12 of max_len 24, d_e 16, 2 heads of 8; n_sum 4, m 8; seeds 8, k 2, rank 2
@pytest.mark.parametrize("op_id, kind, useful, executed", [
    ("l0_click_pffn.q_proj", "linear", 2 * 12 * 16 * 16, 2 * 24 * 16 * 16),
    ("l0_click_pffn.kv_tokens", "token_linear", 2 * 8 * 4 * 16, 2 * 8 * 4 * 16),
    ("l0_click_pffn.kv_proj", "linear", 2 * 8 * 16 * 32, 2 * 8 * 16 * 32),
    ("l0_click_pffn.gdpa", "gdpa", 4 * 2 * 8 * 12 * 8, 4 * 2 * 8 * 24 * 8),
    ("l1_click_swa.window_attention", "window_attention", 4 * 2 * 8 * (12 * 9 - 20), 4 * 2 * 8 * (24 * 9 - 20)),
    ("l0_click_hsp.seed_pooling", "seed_pooling", 4 * 2 * 8 * 12 * 8, 4 * 2 * 8 * 24 * 8),
    ("l0_click_hsp.kron_u", "bmm", 2 * (2 * 2) * 8 * 16, 2 * (2 * 2) * 8 * 16),
    ("l0_click_hsp.kron_w", "linear", 2 * 2 * (2 * 16) * 16, 2 * 2 * (2 * 16) * 16),
    ("l0_click_hsp.out_proj", "linear", 2 * 2 * 16 * 16, 2 * 2 * 16 * 16),
    ("l0_weight_gen.lce", "token_linear", 2 * 4 * 4 * 16, 2 * 4 * 4 * 16),
    ("l0_weight_gen.gate", "linear", 2 * 4 * 16 * 16, 2 * 4 * 16 * 16),
    ("l0_interaction.expert0.layer0.fm_aty", "bmm", 2 * 6 * 16 * 4, 2 * 6 * 16 * 4),
    ("l0_interaction.expert0.layer0.fm", "bmm", 2 * 6 * 16 * 4, 2 * 6 * 16 * 4),
    ("l0_interaction.expert0.layer0.lcb", "token_linear", 2 * 4 * 6 * 16, 2 * 4 * 6 * 16),
    ("l0_interaction.expert0.layer0.skip", "token_linear", 2 * 8 * 6 * 16, 2 * 8 * 6 * 16),
    ("l0_interaction.project", "token_linear", 2 * 4 * 16 * 16, 2 * 4 * 16 * 16),
    ("features.ad_category.proj", "linear", 2 * 8 * 16, 2 * 8 * 16),
    ("embed_click.items_proj", "linear", 2 * 12 * 8 * 16, 2 * 24 * 8 * 16),    # one projected item
    ("embed_click.click_item.embed", "embedding", 0, 0),
    ("head.mlp0", "linear", 2 * (8 * 16) * 32, 2 * (8 * 16) * 32),
])
def test_op_flops(tiny, op_id, kind, useful, executed):
    c, model = tiny
    op = c.graph.op(op_id)
    assert op.kind == kind
    assert model.flops(op) == useful
    assert model.flops(op, useful=False) == executed


def test_op_params_and_bytes(tiny):
    c, model = tiny
    g = c.graph
    assert model.params(g.op("l0_click_pffn.q_proj")) == 16 * 16 + 16
    assert model.params(g.op("l0_click_hsp.kron_w")) == 32 * 16                 # no bias
    assert model.params(g.op("l0_click_hsp.seeds")) == 8 * 16
    assert model.params(g.op("embed_click.time_gap_embed")) == 32 * 16         # private table
    assert model.params(g.op("embed_click.click_item.embed")) == 0             # shared table, counted once
    assert model.bytes(g.op("embed_click.click_item.embed")) == 12 * 16 * 4    # avg_len rows, fp32 on cpu
    assert model.flops(g.op("l0_interaction.residual")) == 0                   # elementwise: bytes only


def test_unfused_window_counts_useful_but_executes_dense():
    c = compiled(_spec(**{"fuse: true": "fuse: false"}))
    model = CostModel(c.graph, "cpu", 1)
    scores = c.graph.op("l1_click_swa.scores")
    assert model.flops(scores) == 2 * 2 * 8 * (12 * 9 - 20)
    assert model.flops(scores, useful=False) == 2 * 2 * 8 * 24 * 24


def test_unfused_attention_ops():
    c = compiled(_spec(**{"fuse: true": "fuse: false", "causal: false": "causal: true"}))
    model = CostModel(c.graph, "cpu", 1)
    g = c.graph
    causal = 12 * 5 - 10                                      # pairs(12, 4, causal)
    assert model.flops(g.op("l1_click_swa.values")) == 2 * 2 * 8 * causal
    assert model.flops(g.op("l1_click_swa.values"), useful=False) == 2 * 2 * 8 * 24 * 24
    assert model.flops(g.op("l0_click_pffn.scores")) == 2 * 2 * 8 * 12 * 8      # T x m, no band
    assert model.flops(g.op("l0_click_hsp.values")) == 2 * 2 * 8 * 8 * 12       # seeds x L
    assert model.flops(g.op("l0_click_hsp.softmax")) == 0
    assert model.flops(g.op("l0_impression_pffn.values"), useful=False) == 2 * 2 * 4 * 32 * 8


def test_full_window_is_full_attention():
    c = compiled(_spec(**{"window: 4,": "window: 100,"}))
    op = c.graph.op("l1_click_swa.window_attention")
    assert op.attrs["window"] == 23                                  # clipped to max_len - 1
    assert CostModel(c.graph, "cpu", 1).flops(op) == 4 * 2 * 8 * 12 * 12


def test_fusion_preserves_useful_flops():
    fused = estimate(compiled(_spec()).graph)
    unfused = estimate(compiled(_spec(**{"fuse: true": "fuse: false"})).graph)
    assert fused.flops_fwd_per_step == unfused.flops_fwd_per_step
    assert fused.params == unfused.params
    assert fused.flops_fwd_exec_per_step < unfused.flops_fwd_exec_per_step   # no dense T x T scores


def test_window_changes_flops_exactly():
    base = estimate(compiled(_spec()).graph, batch_size=1)
    wide = estimate(compiled(_spec(**{"window: 4,": "window: 9,"})).graph, batch_size=1)
    # one local layer of the click tower: 4·H·D·Δpairs at avg_len 12
    delta = 4 * 16 * (pairs_in_window(12, 9, False) - pairs_in_window(12, 4, False))
    assert wide.flops_fwd_per_example - base.flops_fwd_per_example == delta


def test_compskip_removes_exactly_the_skipped_halves():
    alt = estimate(compiled(_spec()).graph, batch_size=1)
    none = estimate(compiled(_spec(**{"compskip: alternate": "compskip: none"})).graph, batch_size=1)
    L, d, win = 12, 16, 4
    swa = 2 * L * d * 3 * d + 2 * L * d * d + 4 * d * pairs_in_window(L, win, False)
    # impression: T 32 (avg = max), d_e 8, heads 2, window 8; one layer
    swa_imp = 2 * 32 * 8 * 24 + 2 * 32 * 8 * 8 + 4 * 8 * pairs_in_window(32, 8, False)
    pffn = 2 * L * d * d * 2 + 2 * 8 * 4 * 16 + 2 * 2 * 8 * 16 * d + 4 * L * 8 * d
    hsp = 4 * 8 * L * d + 2 * 4 * 8 * 16 + 2 * 2 * 32 * 16 + 2 * 2 * 16 * 16
    # none adds: layer 0 window attention for both towers, layer 1 click PFFN + HSP;
    # with a fresh HSP on the last layer, the click readout goes (one HSP fewer).
    assert none.flops_fwd_per_example - alt.flops_fwd_per_example == swa + swa_imp + pffn + hsp - hsp


def test_train_flops_and_mfu_are_consistent(tiny):
    c, _ = tiny
    est = estimate(c.graph, "h200", 64)
    attn = sum(o.flops for o in est.ops if o.train_factor == 3.5)
    other = sum(o.flops for o in est.ops if o.train_factor == 3.0)
    assert est.flops_train_per_step == round((3.5 * attn + 3 * other) * 64)
    assert est.est_mfu == pytest.approx(est.flops_train_per_step / (est.est_step_time_s * 989e12))
    assert 0 < est.est_mfu < 1


def test_jagged_scaling(tiny):
    full = estimate(compiled(_spec(**{"avg_len: 12": "avg_len: 24"})).graph, batch_size=1)
    half = estimate(compiled(_spec()).graph, batch_size=1)
    assert half.flops_fwd_per_example < full.flops_fwd_per_example
    assert half.flops_fwd_exec_per_step == full.flops_fwd_exec_per_step    # torch runs padded


def test_time_prices_executed_bytes_and_autocast_casts():
    """Time is priced on what the generated code runs: padded rows (only jagged Triton kernels
    skip padding), fp32 values where autocast keeps fp32, and a cast each way for each fp32
    input of a matmul or kernel (K = V cast once; weights and seeds once per step)."""
    g = compiled(_spec(**{"target: cpu": "target: h200"})).graph   # Triton kernels selected
    bf16, fp32 = CostModel(g, "h200", 1), CostModel(g, "cpu", 1)
    norm = g.op("l0_click_pffn.norm")            # LayerNorm of the fp32 stream, 24 padded rows
    assert bf16.bytes_exec(norm) == 2 * 24 * 16 * 4
    assert bf16.bytes(norm) == 2 * 12 * 16 * 2     # the useful count (reports) is unchanged
    q_proj = g.op("l0_click_pffn.q_proj")          # reads its cast input in bf16, writes bf16
    assert bf16.bytes_exec(q_proj) == 2 * 24 * 16 * 2
    assert bf16.cast_bytes(q_proj) == (24 * 16 * 12, (16 * 16 + 16) * 12, 2)
    o_proj = g.op("l0_click_pffn.o_proj")          # its input comes from the kernel: bf16 already
    assert bf16.cast_bytes(o_proj) == (0, (16 * 16 + 16) * 12, 1)
    pool = g.op("l0_click_hsp.seed_pooling")       # the jagged kernel reads 12 useful rows, K = V once
    assert bf16.bytes_exec(pool) == 12 * 16 * 2 + 2 * 8 * 8 * 2
    assert bf16.cast_bytes(pool) == (24 * 16 * 12, 8 * 16 * 12, 2)
    assert fp32.cast_bytes(q_proj) == (0, 0, 0)    # no autocast, no casts
    assert fp32.bytes_exec(norm) == 2 * 24 * 16 * 4
    launches = 2 * 3 * bf16.hw.launch_s            # the op and its two casts, each way
    bandwidth = bf16.hw.mem_bw * bf16.hw.efficiency["memory"]
    peak = bf16.hw.peak("bf16") * bf16.hw.efficiency["matmul"]
    compute = bf16.flops(q_proj, useful=False) * 3 / peak
    memory = (2 * 24 * 16 * 2 + (16 * 16 + 16) * 2) * 3 / bandwidth
    cast = (24 * 16 * 12 + (16 * 16 + 16) * 12) / bandwidth
    assert bf16.time_s(q_proj, 3.0) == pytest.approx(max(compute, memory) + cast + launches)
    # compiled, the LayerNorm before q_proj (same block) writes bf16: only the weight's cast is left
    weight_cast = (16 * 16 + 16) * 12 / bandwidth
    assert bf16.time_s(q_proj, 3.0, compiled=True) == pytest.approx(
        max(compute, memory) + weight_cast + 2 * 2 * bf16.hw.launch_s)


def test_compiled_estimate_prices_what_inductor_fuses():
    """Under torch.compile per block, fusible ops (elementwise, concat, embedding lookups) of one
    block share a kernel: a fusible op moves only the values that cross that kernel's boundary (in
    from a GEMM, a Triton kernel or another block; out to one), and writes bf16 where only
    matmuls and kernels read it. A cast stays only where its value comes from another block or
    is a parameter. Click: max_len 24, d_e 16; values per example, padded."""
    g = compiled(_spec(**{"target: cpu": "target: h200"})).graph
    m = CostModel(g, "h200", 1)
    work = lambda op_id: m.compiled_work(g.op(op_id))[:6]   # (the bytes factor: next test)   # noqa: E731
    # lookup feeding the sum (same kernel): reads its 24 rows of 16 fp32, writes nothing
    assert work("embed_click.click_item.embed") == (24 * 16 * 4, 0.0, 0.0, 0.0, 0, 0)
    # lookup feeding a projection: rows read (fp32) and written once in bf16 for the GEMM
    assert work("embed_click.click_category.embed") == (24 * 8 * 4 + 24 * 8 * 2, 0.0, 0.0, 0.0, 0, 1)
    # the sum reads the projection's bf16 output; lookups, position (a parameter) and its LayerNorm fuse
    assert work("embed_click.sum") == (24 * 16 * 2, 0.0, 0.0, 0.0, 0, 0)
    assert work("embed_click.norm") == (24 * 16 * 4, 0.0, 0.0, 0.0, 0, 1)    # writes the fp32 stream
    # the PFFN's LayerNorm reads the stream from the embedding block and writes bf16 for q_proj
    assert work("l0_click_pffn.norm") == (24 * 16 * 4 + 24 * 16 * 2, 0.0, 0.0, 0.0, 0, 1)
    assert work("l0_click_pffn.q_proj")[2:5] == (0.0, (16 * 16 + 16) * 12, 1)   # the weight only
    # the window block's one qkv GEMM casts the stream it gets from the PFFN block: that cast stays
    assert work("l1_click_swa.qkv_proj")[2:5] == (24 * 16 * 12, (16 * 48 + 48) * 12, 2)
    assert m.cast_bytes(g.op("l1_click_swa.qkv_proj")) == (24 * 16 * 12, (16 * 48 + 48) * 12, 2)
    # seed pooling casts K = V (the stream, from another block); the seeds' LayerNorm writes bf16
    assert work("l0_click_hsp.seed_pooling")[2:5] == (24 * 16 * 12, 0.0, 1)
    assert m.cast_bytes(g.op("l0_click_hsp.seed_pooling"))[2] == 2

    bf16, fp32 = estimate(g, "h200", 8), estimate(g, "cpu", 8)
    eager = {o.id: o.time_s for o in bf16.ops}
    # (eager prices a lookup as its rows once; compiled adds the bf16 write of one that feeds a GEMM)
    assert all(o.time_compiled_s <= eager[o.id] * (1 + 1e-12) for o in bf16.ops if o.kind != "embedding")
    assert bf16.est_gpu_time_compiled_s < bf16.est_gpu_time_s
    assert bf16.est_mfu_compiled == pytest.approx(bf16.flops_train_per_step / (bf16.est_step_time_compiled_s * 989e12))
    assert sum(v["time_compiled_s"] for v in bf16.groups().values()) == pytest.approx(
        sum(o.time_compiled_s for o in bf16.ops))
    assert fp32.est_gpu_time_compiled_s < fp32.est_gpu_time_s      # fp32: no casts, but fusion still


def test_a_sum_moves_its_forward_bytes_once_compiled_twice_eager():
    """A sum's backward has no kernel of its own (the output's gradient goes to both inputs as
    it is): compiled, it moves its forward bytes once; eager, twice (autograd adds the residual
    stream's two gradients). A norm moves them three times, as calibrate.py measures it."""
    g = compiled(_spec(**{"target: cpu": "target: h200"})).graph
    m = CostModel(g, "h200", 8)
    residual, norm = g.op("l0_click_pffn.residual"), g.op("l0_click_pffn.norm")
    assert (residual.attr("fn"), norm.attr("fn")) == ("add", "layer_norm")
    assert [m.compiled_work(op)[-1] for op in (residual, norm)] == [1, 3]
    assert [m._work(op)[-1] for op in (residual, norm)] == [2, 3]
    # priced: the residual sum's bytes x 1 compiled (x 2 eager), at bandwidth, plus its launches
    example, step, *_ , launches, _ = m.compiled_work(residual)
    fixed = 2 * launches * m.hw.launch_s
    assert m.time_s(residual, 3.0, compiled=True) == pytest.approx((example * 8 + step) / m.bandwidth + fixed)
    eager_bytes = m._work(residual)[2]
    assert m.time_s(residual, 3.0) == pytest.approx(2 * eager_bytes * 8 / m.bandwidth + 2 * m.hw.launch_s)


def test_window_projections_are_one_gemm():
    """The window block runs q, k, v as one Linear(d, 3d), as the generated module does: one GEMM
    (priced at its own calibrated shape), three views, the FLOPs of three."""
    g = compiled(_spec()).graph
    qkv = g.op("l1_click_swa.qkv_proj")
    assert (qkv.kind, qkv.attrs["in_features"], qkv.attrs["out_features"]) == ("linear", 16, 48)
    parts = [g.op(f"l1_click_swa.{n}_part") for n in "qkv"]
    assert [(p.kind, p.attrs["start"], p.attrs["stop"], p.shape) for p in parts] == [
        ("slice", 0, 16, (24, 16)), ("slice", 16, 32, (24, 16)), ("slice", 32, 48, (24, 16))]
    assert CostModel(g, "cpu", 1).flops(qkv) == 3 * 2 * 12 * 16 * 16


def test_step_time_is_the_longer_of_gpu_and_host(g6_graph):
    """Host time = host ops x the target's fitted cost per op (per mode), independent of the batch;
    the step is max(GPU, host). On h200 (fitted) kunlun_6g is host-bound compiled at batch 256 and
    GPU-bound at 4096; a target without a fit has no host term."""
    ops = [op for op in g6_graph.ops() if op.kind in HOST_KINDS]
    # 269 matmul-class ops (one K/V projection per PFFN, one item projection per tower) and 31
    # Triton-kernel ops
    assert len(ops) == 300
    # of which the second expert's 5 matmuls of the second Wukong layer, in 6 interaction blocks,
    # run in the first expert's batched kernels (groups of 29 and 28 tokens: the first layers
    # differ), and 13 of the 16 feature projections in the first of their width's (3 widths)
    assert sum(1 for op in ops if op.attr("batched_with")) == 6 * 5 + 13
    host_ops = 300 - 43
    hw = hardware.get("h200")
    small, big = estimate(g6_graph, "h200", 256), estimate(g6_graph, "h200", 4096)
    for est in (small, big):
        assert est.host_ops == host_ops
        assert est.est_host_s == pytest.approx(host_ops * hw.host_s["eager"])
        assert est.est_host_compiled_s == pytest.approx(host_ops * hw.host_s["compiled"])
        assert est.est_step_time_s == max(est.est_gpu_time_s, est.est_host_s)
        assert est.est_step_time_compiled_s == max(est.est_gpu_time_compiled_s, est.est_host_compiled_s)
        assert est.est_mfu_compiled == pytest.approx(est.flops_train_per_step / (est.est_step_time_compiled_s * 989e12))
    assert small.est_step_time_compiled_s == small.est_host_compiled_s > small.est_gpu_time_compiled_s
    assert big.est_step_time_compiled_s == big.est_gpu_time_compiled_s > big.est_host_compiled_s
    h100 = estimate(g6_graph, "h100", 256)       # no calibration file: GPU time only
    assert hardware.get("h100").host_s == {} and h100.est_host_s == h100.est_host_compiled_s == 0
    assert h100.est_step_time_s == h100.est_gpu_time_s


def test_padding_time_is_the_padded_share_of_tower_ops():
    """est_padding_compiled_s: each op over a tower's rows that the torch path runs padded adds
    (1 - avg_len / max_len) of its compiled time (click: avg 12 of max 24, impression full);
    the jagged Triton kernels and ops off the towers add nothing. `inspect` prints it."""
    g = compiled(_spec(**{"target: cpu": "target: h200"})).graph
    est, m = estimate(g, "h200", 8), CostModel(g, "h200", 8)
    assert m.padded_fraction(g.op("l1_click_swa.qkv_proj")) == 0.5
    assert m.padded_fraction(g.op("l1_click_swa.residual")) == 0.5
    assert m.padded_fraction(g.op("l1_click_swa.window_attention")) == 0.0   # jagged kernel
    assert m.padded_fraction(g.op("l0_click_pffn.kv_proj")) == 0.0           # summary tokens
    assert m.padded_fraction(g.op("l0_impression_pffn.q_proj")) == 0.0       # avg_len = max_len
    expected = sum(o.time_compiled_s * m.padded_fraction(g.op(o.id)) for o in est.ops)
    assert est.est_padding_compiled_s == pytest.approx(expected) and expected > 0
    click_rows = [o for o in est.ops if g.op(o.id).seq == "click" and m.padded_fraction(g.op(o.id))]
    assert est.est_padding_compiled_s == pytest.approx(0.5 * sum(o.time_compiled_s for o in click_rows))
    from kunlun_compiler.report import _padding
    assert _padding(est)[0].startswith("padded rows ") and "%" in _padding(est)[0]


def test_packed_estimate_drops_the_padded_share():
    """A packed batch's estimate is each op's time less its padded share, eager and compiled;
    attention runs padded in either layout on the torch path (an unfused chain), so a spec with
    `fuse: false` keeps its attention time whole. Per group, the same relation."""
    g = compiled(_spec(**{"target: cpu": "target: h200"})).graph
    est = estimate(g, "h200", 8)
    assert est.est_gpu_time_compiled_packed_s == pytest.approx(
        est.est_gpu_time_compiled_s - est.est_padding_compiled_s)
    assert est.est_gpu_time_packed_s == pytest.approx(est.est_gpu_time_s - sum(o.time_s * o.padding for o in est.ops))
    assert est.est_gpu_time_packed_s < est.est_gpu_time_s
    assert est.est_step_time_compiled_packed_s == max(est.est_gpu_time_compiled_packed_s, est.est_host_compiled_s)
    assert est.est_step_time_packed_s == max(est.est_gpu_time_packed_s, est.est_host_s)
    assert est.est_mfu_compiled_packed == pytest.approx(
        est.flops_train_per_step / (est.est_step_time_compiled_packed_s * 989e12))
    for v in est.groups().values():
        assert v["time_compiled_packed_s"] <= v["time_compiled_s"]
    assert sum(v["time_packed_s"] for v in est.groups().values()) == pytest.approx(
        sum(o.time_s * (1 - o.padding) for o in est.ops))
    unfused = compiled(_spec(**{"target: cpu": "target: h200", "fuse: true": "fuse: false"})).graph
    chain = [op for op in unfused.ops() if op.block == "l0_click_pffn"]
    kinds = {op.kind for op in chain}
    assert {"attn_scores", "attn_values"} <= kinds, kinds
    u = estimate(unfused, "h200", 8)
    by_id = {o.id: o for o in u.ops}
    for op in chain:
        attention = op.kind in ("attn_scores", "attn_values") or op.attr("fn") in ("activation", "scale")
        if attention:
            assert by_id[op.id].padding == 0.0, op.id
    assert by_id["l0_click_pffn.q_proj"].padding == 0.5
    from kunlun_compiler.report import _padding
    assert _padding(est)[1].startswith("packed batch ")


@pytest.mark.parametrize("name", ["kunlun_tiny", "kunlun_60g", "ablation_no_gdpa_fusion", "ablation_one_tower"])
def test_streams_share_memoized_work_without_changing_a_number(name):
    """A build estimates both streams for every target. The compute stream reuses the fp32
    stream's memoized per-op work for the ops it cannot change; estimated alone, on a graph with
    no memo, every number is the same, to the last bit, in either order."""
    from genutil import SPECS
    from kunlun_compiler.hardware import HARDWARE
    alone = {}
    for stream in ("compute", "fp32"):
        g = compiled(SPECS / f"{name}.yaml").graph          # a fresh graph: an empty memo
        alone[stream] = {t: estimate(g, t, stream=stream).to_json() for t in HARDWARE}
    g = compiled(SPECS / f"{name}.yaml").graph
    shared = {s: {t: estimate(g, t, stream=s).to_json() for t in HARDWARE} for s in ("fp32", "compute")}
    assert shared == alone
    assert shared["compute"]["h200"]["est_gpu_time_s"] < shared["fp32"]["h200"]["est_gpu_time_s"]


def test_a_batched_expert_op_pays_no_launch():
    """Of two same-shaped expert ops sharing one batched kernel, the one riding the other's kernel
    costs its bytes and FLOPs but no launches (the op's and its autocast casts'), eager and
    compiled; it is no host op."""
    g = compiled(load_spec(SPECS / "kunlun_60g.yaml")).graph     # groups (33, 32, 32)
    leader, rider = "l0_interaction.expert1.layer0.fmb_out", "l0_interaction.expert2.layer0.fmb_out"
    assert g.op(rider).attr("batched_with") == leader
    model = CostModel(g, "h200", 256)
    costs = {c.id: c for c in estimate(g, "h200", 256).ops if c.id in (leader, rider)}
    launch = hardware.get("h200").launch_s
    n_casts = model.cast_bytes(g.op(leader))[2]          # the weight's bf16 cast under autocast
    assert n_casts >= 1
    assert costs[leader].time_s - costs[rider].time_s == pytest.approx(2 * (1 + n_casts) * launch)
    assert costs[leader].time_compiled_s > costs[rider].time_compiled_s
    assert costs[leader].flops == costs[rider].flops and costs[leader].params == costs[rider].params
    assert costs[rider].batched_with == leader and not costs[leader].batched_with


@pytest.mark.parametrize("stream", ["fp32", "compute"])
def test_batch_curve_is_the_estimate_at_each_batch(g6_graph, stream):
    """estimate.json's batch curve (what the generated bench reads its estimate from at the batch
    it runs) is the estimate priced at each of its batch sizes, per group and in total."""
    curve = batch_curve(g6_graph, "h200", stream=stream)
    for i, batch in enumerate(curve["batch_sizes"]):
        est = estimate(g6_graph, "h200", batch_size=batch, stream=stream)
        groups = est.groups()
        assert set(curve["groups"]) <= set(groups)
        for key in TIME_KEYS:
            total = f"est_gpu_time{key[4:]}"
            assert curve["gpu"][total][i] == pytest.approx(getattr(est, total), rel=1e-12)
            for group, times in curve["groups"].items():
                assert times[key][i] == pytest.approx(groups[group][key], rel=1e-12, abs=1e-15)
    # not proportional to the batch: launches, weight bytes and the optimizer are per step
    sizes, gpu = curve["batch_sizes"], curve["gpu"]["est_gpu_time_compiled_s"]
    assert 0 < gpu[1] / gpu[0] < sizes[1] / sizes[0] / 2
