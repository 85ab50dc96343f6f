"""Packed towers: a batch whose events are CSR rows ([N] ids, offsets [B + 1]) trains the same
model as the padded batch, on the torch path and on the Triton kernels.

The packed layout is what lets the towers' projections and norms skip padding; these tests pin
that it computes exactly the padded model's function: outputs and every parameter's gradient,
with empty, length-1 and full-length examples.
"""
from __future__ import annotations

import os
import re

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from genutil import SPECS, build_and_import, load_spec
from modelutil import build_untuned, deep_cuda, grads, rel
from packing import reversed_starts



@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_untuned(SPECS / "kunlun_tiny.yaml", tmp_path_factory.mktemp("tiny_packed"))


@pytest.fixture(scope="module")
def unfused(tmp_path_factory):
    """fuse: false: the layers call the references, which take packed rows through to_padded."""
    pkg, _ = build_and_import(load_spec(SPECS / "ablation_no_gdpa_fusion.yaml"), tmp_path_factory.mktemp("unfused"))
    return pkg


def _odd_batch(pkg, batch_size=5, seed=3):
    batch = pkg.example_batch(batch_size, seed=seed)
    for name, ev in batch["events"].items():
        max_len = ev["items"][next(iter(ev["items"]))].shape[1]
        ev["lengths"][:3] = torch.tensor([0, 1, max_len])   # empty, one event, full
    return batch



def _same_model_both_layouts(pkg, backend, tol_out, tol_grad, batch_size=5):
    torch.manual_seed(0)
    model = pkg.Model(backend=backend)
    padded = _odd_batch(pkg, batch_size)
    packed = pkg.pack_events(padded)
    out_pad, g_pad = grads(model, padded)
    out_pack, g_pack = grads(model, packed)
    assert out_pack.shape == out_pad.shape
    assert rel(out_pack, out_pad) <= tol_out
    assert g_pack.keys() == g_pad.keys()
    for name in g_pad:
        assert rel(g_pack[name], g_pad[name]) <= tol_grad, name


def test_pack_events_is_csr(tiny):
    padded = _odd_batch(tiny)
    packed = tiny.pack_events(padded)
    assert packed["dense"] is padded["dense"] and packed["labels"] is padded["labels"]
    for name, ev in padded["events"].items():
        p = packed["events"][name]
        lengths = ev["lengths"]
        assert p["offsets"].tolist() == [0, *torch.cumsum(lengths, 0).tolist()]
        for f, ids in ev["items"].items():
            assert p["items"][f].shape == (int(lengths.sum()),)
            rows = [ids[b, :n] for b, n in enumerate(lengths.tolist())]
            assert torch.equal(p["items"][f], torch.cat(rows))
        assert ("time_gaps" in p) == ("time_gaps" in ev)
        assert "lengths" not in p


def test_bench_batches_pack_to_one_shape(tiny):
    """example_batch(at_avg_len=True) spreads lengths evenly around avg_len in a seeded order,
    so batches of one size pack to the same row counts (static shapes under torch.compile)."""
    rows = {tuple(ev["offsets"][-1].item() for ev in tiny.example_batch(16, seed=s, at_avg_len=True,
                                                                      packed=True)["events"].values())
            for s in range(4)}
    assert len(rows) == 1
    lengths = [tiny.example_batch(16, seed=s, at_avg_len=True)["events"] for s in range(2)]
    name = next(iter(lengths[0]))
    assert not torch.equal(lengths[0][name]["lengths"], lengths[1][name]["lengths"])   # shuffled


def test_packed_matches_padded_torch(tiny):
    _same_model_both_layouts(tiny, "torch", 1e-6, 1e-5)


def test_packed_matches_padded_unfused(unfused):
    _same_model_both_layouts(unfused, "torch", 1e-6, 1e-5, batch_size=3)


@pytest.mark.skipif(torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") != "1",
                    reason="CPU interpreter check")
def test_packed_matches_padded_triton_interpreter(tiny):
    """backend="triton": the kernels read the packed rows themselves (no padding in between)."""
    _same_model_both_layouts(tiny, "triton", 1e-5, 1e-4)


def test_to_padded_and_back(tiny):
    ops = tiny.ops
    lengths = torch.tensor([3, 0, 1, 4])
    starts, _ = reversed_starts(lengths)                    # rows laid out last example first
    n = int(lengths.sum())
    x = torch.randn(n, 2, 5, requires_grad=True)
    padded = ops.to_padded(x, lengths, starts, 4)           # [B, H, T, D]
    assert padded.shape == (4, 2, 4, 5)
    for b, (s, m) in enumerate(zip(starts.tolist(), lengths.tolist())):
        assert torch.equal(padded[b, :, :m].transpose(0, 1), x[s:s + m])
        assert not padded[b, :, m:].any()
    back = ops.to_packed(padded, lengths, starts, n)
    assert torch.equal(back, x)
    back.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    empty = ops.to_padded(x[:0], torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long), 3)
    assert empty.shape == (2, 2, 3, 5) and not empty.any()


@pytest.mark.parametrize("kind", ["softmax", "silu"])
def test_window_attention_packed_torch(tiny, kind):
    """The activation kind pads packed rows for the GDPA window path; both kinds match padded."""
    ops = tiny.ops
    torch.manual_seed(1)
    lengths = torch.tensor([5, 0, 1, 7])
    starts, _ = reversed_starts(lengths)
    n, T = int(lengths.sum()), 7
    q, k, v = (torch.randn(n, 2, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    out = ops.window_attention(q, k, v, lengths, 2, False, kind, 0.3, starts=starts, max_len=T)
    padded = [ops.to_padded(t, lengths, starts, T) for t in (q, k, v)]
    ref = ops.to_packed(ops.window_attention_reference(*padded, lengths, 2, False, kind, 0.3), lengths, starts, n)
    assert rel(out, ref) <= 1e-12
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), g)
    grads_ref = torch.autograd.grad(ref, (q, k, v), g)
    for a, b in zip(grads, grads_ref):
        assert rel(a, b) <= 1e-10


def _qkv_case(packed: bool, heads: int, D: int, dtype, seed: int = 4):
    """A fused projection's output qkv (grad-requiring leaf) for lengths 37, 0, 1, 12 (T = 37)."""
    torch.manual_seed(seed)
    lengths = torch.tensor([37, 0, 1, 12])
    T, width = 37, 3 * heads * D
    if packed:
        starts, n = reversed_starts(lengths)
        qkv = torch.randn(n, width, dtype=dtype)
    else:
        starts, qkv = None, torch.randn(len(lengths), T, width, dtype=dtype)
    return qkv.requires_grad_(), lengths, starts, T


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("kind", ["softmax", "silu"])
def test_window_attention_qkv_matches_split_heads(tiny, packed, kind):
    """window_attention_qkv (torch path) is window_attention on the chunked heads, merged; the
    activation kind too (GDPA self-attention, which splits and pads)."""
    ops = tiny.ops
    qkv, lengths, starts, T = _qkv_case(packed, heads=3, D=8, dtype=torch.float64)
    out = ops.window_attention_qkv(qkv, 3, lengths, 5, False, kind, 0.3, starts=starts, max_len=T)
    q, k, v = (t.unflatten(-1, (3, 8)) if packed else t.unflatten(-1, (3, 8)).transpose(1, 2)
               for t in qkv.chunk(3, dim=-1))
    ref = ops.window_attention(q, k, v, lengths, 5, False, kind, 0.3, starts=starts, max_len=T)
    ref = ref.flatten(-2) if packed else ref.transpose(1, 2).flatten(-2)
    assert out.shape == (*qkv.shape[:-1], 24)
    assert rel(out, ref) <= 1e-12
    g = torch.randn_like(out)
    assert rel(torch.autograd.grad(out, qkv, g)[0], torch.autograd.grad(ref, qkv, g)[0]) <= 1e-12


def _check_window_qkv(ops, packed, D, window, causal, device, dtype, tol):
    qkv, lengths, starts, T = _qkv_case(packed, heads=2, D=D, dtype=torch.float32)
    qkv = qkv.detach().to(dtype)            # the reference sees the rounded inputs the kernel sees
    qkv64 = qkv.double().requires_grad_()
    qkv = qkv.to(device).requires_grad_()
    dev = dict(starts=None if starts is None else starts.to(device), max_len=T)
    args = (2, window, causal, "softmax", 0.25)
    out = ops.window_attention_qkv(qkv, args[0], lengths.to(device), *args[1:], backend="triton", **dev)
    ref = ops.window_attention_qkv(qkv64, args[0], lengths, *args[1:], backend="torch", starts=starts, max_len=T)
    assert out.shape == ref.shape == (*qkv.shape[:-1], 2 * D)
    assert rel(out.cpu(), ref) <= tol
    g = torch.randn_like(ref)
    (dqkv,) = torch.autograd.grad(out, qkv, g.to(device, dtype))
    (dqkv_ref,) = torch.autograd.grad(ref, qkv64, g)
    assert dqkv.shape == qkv.shape and dqkv.stride() == qkv.stride()
    if not packed:      # padding rows of a padded qkv: zero gradient, as the reference
        assert not dqkv[1].any() and not dqkv[2, 1:].any()
    for part, (a, b) in enumerate(zip(dqkv.cpu().chunk(3, dim=-1), dqkv_ref.chunk(3, dim=-1))):
        assert rel(a, b) <= tol, "qkv"[part]
    return qkv.detach(), lengths.to(device), dev


@pytest.mark.skipif(torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") != "1",
                    reason="CPU interpreter check")
@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("D, window, causal", [(16, 4, False), (24, 40, True)])
def test_window_attention_qkv_triton_interpreter(tiny, packed, D, window, causal):
    """The fused-qkv kernel op (q, k, v read in place, one gradient shaped like qkv) against the
    float64 torch path: forward and dqkv at fp32 <= 1e-5, with empty, length-1 and full rows, a
    padded head dim (24) and a window wider than T; FLOPs as window_attention's."""
    ops = tiny.ops
    qkv, lengths, dev = _check_window_qkv(ops, packed, D, window, causal, "cpu", torch.float32, 1e-5)
    with FlopCounterMode(display=False) as fc:
        ops.window_attention_qkv(qkv, 2, lengths, window, causal, "softmax", 0.25, backend="triton", **dev)
    q = qkv[..., :2 * D]
    q = q.unflatten(-1, (2, D)) if packed else q.unflatten(-1, (2, D)).transpose(1, 2)
    with FlopCounterMode(display=False) as fc_split:
        ops.window_attention(q, q, q, lengths, window, causal, "softmax", 0.25, backend="triton", **dev)
    assert fc.get_total_flops() == fc_split.get_total_flops() > 0


def test_fused_projection_ops_reject_bad_widths(tiny):
    """A projection whose width is not parts x heads x D, or whose K/V head dim is not q's, gets a
    ValueError that names the shapes (not a reshape error from deep inside)."""
    ops = tiny.ops
    lengths = torch.tensor([3, 2])
    with pytest.raises(ValueError, match=r"width a multiple of 3 x 2 heads, got \(2, 3, 50\)"):
        ops.window_attention_qkv(torch.randn(2, 3, 50), 2, lengths, 1, False, "softmax", 0.5)
    with pytest.raises(ValueError, match=r"\[N, width\].*got \(2, 3, 48\)"):
        ops.window_attention_qkv(torch.randn(2, 3, 48), 2, lengths, 1, False, "softmax", 0.5,
                                 starts=torch.tensor([0, 3]), max_len=3)
    with pytest.raises(ValueError, match=r"head dim 8 for 2 heads, but q's head dim is 16"):
        ops.gdpa_kv(torch.randn(2, 2, 3, 16), torch.randn(2, 4, 32), lengths, "silu", 0.5)


@pytest.mark.skipif(torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") != "1",
                    reason="CPU interpreter check")
def test_fused_projection_ops_pass_opcheck_and_compile(tiny):
    """The fused-projection ops are opaque custom ops (their kernels write into strided views of one
    gradient, which inductor's functionalization of a traced kernel loses: pytorch#192510). Their
    schemas, fake functions and autograd pass torch.library.opcheck, forward and backward ops, and
    a torch.compile(fullgraph=True) of both (aot_eager: the kernels run in the interpreter at run
    time) gives eager's outputs and gradients exactly."""
    ops = tiny.ops
    ns = getattr(torch.ops, ops.NAMESPACE)
    torch.manual_seed(2)
    lengths, T, H, D = torch.tensor([37, 0, 1, 12]), 37, 2, 16
    starts, n = reversed_starts(lengths)
    qkv, qkv_pad = torch.randn(n, 3 * H * D), torch.randn(4, T, 3 * H * D)
    q, kv = torch.randn(n, H, D), torch.randn(4, 5, 2 * H * D)
    for args in [(qkv, H, lengths, starts, T, 4, False, 0.25), (qkv_pad, H, lengths, None, T, 40, True, 0.25)]:
        torch.library.opcheck(ns.window_attention_qkv_triton.default, (args[0].requires_grad_(), *args[1:]))
        o, lse = ns.window_attention_qkv_triton.default(*args)
        torch.library.opcheck(ns.window_attention_qkv_triton_backward.default,
                              (torch.randn_like(o), args[0].detach(), o.detach(), lse.detach(), *args[1:]))
    torch.library.opcheck(ns.gdpa_kv_triton.default, (q.requires_grad_(), kv.requires_grad_(), lengths, starts, T,
                                                      "silu,relu", 0.2))
    torch.library.opcheck(ns.gdpa_kv_triton_backward.default, (torch.randn_like(q), q.detach(), kv.detach(),
                                                               lengths, starts, T, "silu,relu", 0.2))

    def both(qkv, q, kv):
        o = ops.window_attention_qkv(qkv, H, lengths, 4, False, "softmax", 0.25, backend="triton",
                                     starts=starts, max_len=T)
        return o, ops.gdpa_kv(q, kv, lengths, "gelu_tanh", 0.2, backend="triton", starts=starts, max_len=T)

    results = []
    for fn in (both, torch.compile(both, backend="aot_eager", fullgraph=True)):
        leaves = [t.detach().clone().requires_grad_() for t in (qkv, q, kv)]
        outs = fn(*leaves)
        sum(o.square().sum() for o in outs).backward()
        results.append([*outs, *(t.grad for t in leaves)])
    for eager, compiled in zip(*results):
        assert torch.equal(eager, compiled)


@pytest.mark.skipif(torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") != "1",
                    reason="CPU interpreter check")
@pytest.mark.parametrize("packed", [True, False])
def test_window_attention_qkv_activation_kind_triton_interpreter(tiny, packed):
    """The activation kind on a fused projection takes the split path to the GDPA window kernel
    (padded in between when packed): forward and dqkv against the float64 torch path."""
    ops = tiny.ops
    qkv, lengths, starts, T = _qkv_case(packed, heads=2, D=16, dtype=torch.float32)
    qkv64 = qkv.detach().double().requires_grad_()
    out = ops.window_attention_qkv(qkv, 2, lengths, 3, True, "silu", 0.25, backend="triton", starts=starts, max_len=T)
    ref = ops.window_attention_qkv(qkv64, 2, lengths, 3, True, "silu", 0.25, backend="torch", starts=starts,
                                   max_len=T)
    assert rel(out, ref) <= 1e-5
    g = torch.randn_like(ref)
    assert rel(torch.autograd.grad(out, qkv, g.float())[0], torch.autograd.grad(ref, qkv64, g)[0]) <= 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("D, window, causal", [(64, 4, False), (128, 40, True)])
def test_window_attention_qkv_on_gpu(tiny, packed, D, window, causal):
    """The same in bf16 on the GPU (<= 1e-2 against float64), at the presets' head dims."""
    _check_window_qkv(tiny.ops, packed, D, window, causal, "cuda", torch.bfloat16, 1e-2)


def _check_gdpa_kv(ops, packed, D, activations, device, dtype, tol):
    torch.manual_seed(6)
    lengths, T, M, H = torch.tensor([37, 0, 1, 12]), 37, 5, 2
    starts, n = reversed_starts(lengths)
    q = torch.randn(n, H, D) if packed else torch.randn(4, H, T, D)
    kv = torch.randn(4, M, 2 * H * D)
    # the reference sees the rounded inputs the kernel sees: rounding alone moves scores across
    # relu's kink, and dQ by 5% at bf16, D = 128 (H200, 2026-11-30)
    q, kv = q.to(dtype), kv.to(dtype)
    q64, kv64 = (t.double().requires_grad_() for t in (q, kv))
    q, kv = (t.to(device).requires_grad_() for t in (q, kv))
    dev = dict(starts=starts.to(device) if packed else None, max_len=T)
    out = ops.gdpa_kv(q, kv, lengths.to(device), activations, 0.2, backend="triton", **dev)
    ref = ops.gdpa_kv(q64, kv64, lengths, activations, 0.2, backend="torch",
                      starts=starts if packed else None, max_len=T)
    assert out.shape == ref.shape == q.shape and rel(out.cpu(), ref) <= tol
    g = torch.randn_like(ref)
    dq, dkv = torch.autograd.grad(out, (q, kv), g.to(device, dtype))
    dq_ref, dkv_ref = torch.autograd.grad(ref, (q64, kv64), g)
    assert dkv.shape == kv.shape and dkv.stride() == kv.stride()
    assert rel(dq.cpu(), dq_ref) <= tol
    for part, (a, b) in enumerate(zip(dkv.cpu().chunk(2, dim=-1), dkv_ref.chunk(2, dim=-1))):
        assert rel(a, b) <= tol, "kv"[part]
    return q.detach(), kv.detach(), lengths.to(device), dev


@pytest.mark.skipif(torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") != "1",
                    reason="CPU interpreter check")
@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("D, activations", [(16, "silu,gelu_tanh"), (24, "relu2")])
def test_gdpa_kv_triton_interpreter(tiny, packed, D, activations):
    """gdpa_kv, the kernel reading K and V in place from one projection's output, against the
    float64 torch path: forward, dq and dkv at fp32 <= 1e-5 (lengths 37, 0, 1, 12; two
    activations over two heads; a padded head dim 24); FLOPs as gdpa's."""
    ops = tiny.ops
    q, kv, lengths, dev = _check_gdpa_kv(ops, packed, D, activations, "cpu", torch.float32, 1e-5)
    k, v = (t.unflatten(-1, (2, D)).transpose(1, 2) for t in kv.chunk(2, dim=-1))
    with FlopCounterMode(display=False) as fc:
        ops.gdpa_kv(q, kv, lengths, activations, 0.2, backend="triton", **dev)
    with FlopCounterMode(display=False) as fc_split:
        ops.gdpa(q, k, v, lengths, activations, 0.2, backend="triton", **dev)
    assert fc.get_total_flops() == fc_split.get_total_flops() > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("D, activations", [(64, "gelu_tanh"), (128, "silu,relu")])
def test_gdpa_kv_on_gpu(tiny, packed, D, activations):
    """The same in bf16 on the GPU (<= 1e-2 against float64), at the presets' head dims."""
    _check_gdpa_kv(tiny.ops, packed, D, activations, "cuda", torch.bfloat16, 1e-2)


@pytest.mark.skipif(torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") != "1",
                    reason="CPU interpreter check")
def test_packed_triton_flop_formulas_count_rows(tiny):
    """FlopCounterMode sees the packed kernels' useful work: N rows, not B·T."""
    ops = tiny.ops
    lengths = torch.tensor([5, 0, 3])
    starts, _ = reversed_starts(lengths)
    N, H, D, M, T = 8, 2, 16, 4, 6
    q = torch.randn(N, H, D)
    k, v = torch.randn(3, H, M, D), torch.randn(3, H, M, D)
    with FlopCounterMode(display=False) as fc:
        ops.gdpa(q, k, v, lengths, "silu", 0.5, backend="triton", starts=starts, max_len=T)
    assert fc.get_total_flops() == 2 * N * H * M * (D + D)
    seeds = torch.randn(H, 3, D)
    with FlopCounterMode(display=False) as fc:
        ops.seed_pooling(seeds, q, q, lengths, 0.25, backend="triton", starts=starts, max_len=T)
    assert fc.get_total_flops() == 2 * N * H * 3 * (D + D)
    with FlopCounterMode(display=False) as fc:
        ops.window_attention(q, q, q, lengths, 1, False, "softmax", 0.25, backend="triton",
                             starts=starts, max_len=T)
    pairs = N * ops.pairs_in_window(T, 1, False) // T       # a full example's band, per row
    assert fc.get_total_flops() == 2 * H * pairs * (D + D)



@pytest.mark.gpu
def test_packed_matches_padded_on_gpu(tiny):
    """bf16 autocast, the Triton kernels on packed rows: eager, torch.compile(fullgraph=True) of the
    whole model, and torch.compile per block (which caught inductor's searchsorted bug on the H200:
    22% off before the workaround in EventEmbedding)."""
    torch.manual_seed(0)
    model = tiny.Model(backend="triton").cuda()
    padded = deep_cuda(_odd_batch(tiny, batch_size=64))
    packed = tiny.pack_events(padded)
    out_pad, g_pad = grads(model, padded)
    out_pack, g_pack = grads(model, packed)
    assert rel(out_pack, out_pad) <= 2e-2
    flat = lambda g: torch.cat([g[n].double().flatten() for n in sorted(g_pad)])   # noqa: E731
    assert rel(flat(g_pack), flat(g_pad)) <= 3e-2
    whole = torch.compile(model, fullgraph=True)      # the packed path has no graph break either
    out_w = whole(packed)
    assert rel(out_w, out_pad) <= 2e-2
    model.compile_blocks()
    out_c, g_c = grads(model, packed)
    assert rel(out_c, out_pad) <= 2e-2
    assert rel(flat(g_c), flat(g_pad)) <= 3e-2


def test_bad_packed_batches_get_a_located_error(tiny):
    """Malformed packed events name the event and key: ragged feature rows, offsets that are not a
    CSR over the rows, an example longer than max_len."""
    model = tiny.Model(backend="torch")
    good = tiny.example_batch(3, seed=1, packed=True)
    name = next(iter(good["events"]))
    feature = next(iter(good["events"][name]["items"]))

    def bad(change):
        batch = {**good, "events": {**good["events"], name: {**good["events"][name]}}}
        batch["events"][name]["items"] = dict(batch["events"][name]["items"])
        change(batch["events"][name])
        return batch

    cases = [
        (lambda ev: ev["items"].__setitem__(feature, ev["items"][feature][:-1]), "packed rows must all be one [N]"),
        (lambda ev: ev.__setitem__("offsets", ev["offsets"][:, None]), "['offsets'] must be integer [B + 1]"),
        (lambda ev: ev.__setitem__("offsets", ev["offsets"] + 1), "must rise from 0 to N"),
        (lambda ev: ev.__setitem__("offsets", ev["offsets"].flip(0)), "must rise from 0 to N"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=re.escape(f"batch['events'][{name!r}]")) as exc:
            model(bad(change))
        assert message in str(exc.value), (message, str(exc.value))
    assert f"['items'][{feature!r}] (" in str(bad_rows(model, bad, feature))
    max_len = dict((e.name, e.max_len) for e in tiny.Config().events)[name]
    packed = tiny.example_batch(1, seed=2, full=True, packed=True)
    ev = packed["events"][name]                     # one example at max_len; give it one more row
    packed["events"][name] = {"offsets": torch.tensor([0, max_len + 1]),
                              "items": {f: torch.cat([ids, ids[:1]]) for f, ids in ev["items"].items()},
                              **({"time_gaps": torch.cat([ev["time_gaps"], ev["time_gaps"][:1]])}
                                 if "time_gaps" in ev else {})}
    with pytest.raises(ValueError, match=f"more than max_len {max_len}"):
        model(packed)


def bad_rows(model, bad, feature):
    """The error for one feature's rows cut short: it lists every key's shape."""
    with pytest.raises(ValueError) as exc:
        model(bad(lambda ev: ev["items"].__setitem__(feature, ev["items"][feature][:-1])))
    return exc.value


@pytest.mark.skipif(torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") != "1",
                    reason="CPU interpreter check")
def test_packed_rows_fall_back_to_the_padded_kernel(tiny, monkeypatch):
    """Where a packed kernel does not take the tensors but the padded one does, the op pads the rows
    and still runs the kernel (not the torch reference)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    ops = tiny.ops
    monkeypatch.setattr(ops, "_use_triton", lambda backend, name, *t, packed=False: backend != "torch" and not packed)
    seen = []

    class Spy(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(str(func).split(".")[-2])
            return func(*args, **(kwargs or {}))

    lengths = torch.tensor([4, 0, 2])
    starts, n = reversed_starts(lengths)
    q, kv = torch.randn(n, 2, 16), torch.randn(3, 2, 5, 16)
    seeds = torch.randn(2, 3, 16)
    with Spy():
        o = ops.gdpa(q, kv, kv, lengths, "silu", 0.5, backend="auto", starts=starts, max_len=4)
        p = ops.seed_pooling(seeds, q, q, lengths, 0.25, backend="auto", starts=starts, max_len=4)
    assert "gdpa_triton" in seen and "seed_pooling_triton" in seen
    assert "gdpa" not in seen and "seed_pooling" not in seen            # the torch ops never ran
    ref = ops.gdpa_reference(q, kv, kv, lengths, "silu", 0.5, starts, 4)
    assert rel(o, ref) <= 1e-5
    assert rel(p, ops.seed_pooling_reference(seeds, q, q, lengths, 0.25, starts, 4)) <= 1e-5
