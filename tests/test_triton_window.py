"""The Triton sliding-window attention kernels (templates/kernels/window_attention.py) against the
plain-torch reference `window_attention_reference(..., kind="softmax")` run in float64.

On CPU the kernels run in Triton's interpreter (conftest sets TRITON_INTERPRET=1) with one small
tile config (BLOCK_M 32, BLOCK_N 16), so T ~ 130 crosses several tiles, the band's edge and
interior tiles, and the jagged early exits. The interpreter's bf16 is wrong on CPU: CPU tests use
fp32 and fp16; bf16 and the autotuned Hopper configs are covered by the `gpu` tests.

Error measure: ||x - ref|| / max(||ref||, tiny), so an all-zero reference demands an exact zero.
"""
import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

from opsload import load_ops
from packing import pack_rows, reversed_starts, unpack_rows

KERNEL_PATH = Path(__file__).resolve().parent.parent / "templates" / "kernels" / "window_attention.py"


def _load_kernels():
    spec = importlib.util.spec_from_file_location("kunlunc_test_window_attention_kernels",
                                                  KERNEL_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # torch.compile resolves the kernels' globals through it
    spec.loader.exec_module(module)
    return module


wa = _load_kernels()
ops = load_ops("kunlunc_test_triton_window")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
TINY = 1e-30


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    diff = (x.double() - ref).norm().item()
    return diff / max(ref.norm().item(), TINY)


def make_inputs(B, H, T, D, dtype, lengths, transposed=False, seed=0, device=DEVICE):
    """q, k, v, grad_out [B, H, T, D]; transposed: views of [B, T, H*D] tensors, as the model
    passes them (strides (T·H·D, D, H·D, 1))."""
    gen = torch.Generator().manual_seed(seed)

    def one():
        if transposed:
            x = torch.randn(B, T, H * D, generator=gen).view(B, T, H, D).transpose(1, 2)
        else:
            x = torch.randn(B, H, T, D, generator=gen)
        return x.to(device=device, dtype=dtype)

    q, k, v, do = one(), one(), one(), one()
    lengths = torch.tensor(lengths, dtype=torch.int64, device=device)
    return q, k, v, do, lengths


def reference(q, k, v, do, lengths, window, causal, scale):
    """(o, lse, dq, dk, dv) in float64 from the reference op (autograd through it)."""
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    o = ops.window_attention_reference(q64, k64, v64, lengths, window, causal, "softmax", scale)
    o.backward(do.double())
    T = q.shape[2]
    pos = torch.arange(T, device=q.device)
    rel = pos[None, :] - pos[:, None]  # j - i
    band = (rel >= -window) & (rel <= (0 if causal else window))
    valid = pos[None, :] < lengths[:, None]  # [B, T]
    allowed = band & valid[:, None, :] & valid[:, :, None]  # [B, T, T]
    scores = (q64.detach() @ k64.detach().mT) * scale
    lse = scores.masked_fill(~allowed[:, None], float("-inf")).logsumexp(-1)
    grads = [torch.zeros_like(x) if x.grad is None else x.grad for x in (q64, k64, v64)]
    return (o.detach(), lse, *grads)  # (no grads at all when T = 0)


def run_kernels(q, k, v, do, lengths, window, causal, scale):
    o, lse = wa.window_attention_forward(q, k, v, lengths, window, causal, scale)
    dq, dk, dv = wa.window_attention_backward(do, q, k, v, o, lse, lengths, window, causal, scale)
    return o, lse, dq, dk, dv


def check_against_reference(B, H, T, D, window, causal, lengths, dtype, transposed=False):
    q, k, v, do, lengths = make_inputs(B, H, T, D, dtype, lengths, transposed)
    scale = 1 / math.sqrt(D)
    got = run_kernels(q, k, v, do, lengths, window, causal, scale)
    want = reference(q, k, v, do, lengths, window, causal, scale)
    o, lse, dq, dk, dv = got
    for name, x, like in (("o", o, q), ("dq", dq, q), ("dk", dk, k), ("dv", dv, v)):
        assert x.shape == like.shape and x.dtype == like.dtype, name
        assert torch.isfinite(x).all(), name
    assert lse.shape == (B, H, T) and lse.dtype == torch.float32
    valid = (torch.arange(T, device=q.device)[None, :] < lengths[:, None])[:, None].expand(B, H, T)
    assert (lse[~valid] == float("-inf")).all(), "rows past the length have lse = -inf"
    errors = {name: rel_err(x, ref) for name, x, ref in
              (("o", o, want[0]), ("lse", lse[valid], want[1][valid]), ("dv", dv, want[4]))}
    # When every valid row has a single key (T = 1, lengths <= 1) the reference dq, dk are exactly
    # 0: dS = 1·(dO·v - dO·o) cancels. The kernels sum those two dot products in different orders,
    # so measure their rounding against the gradients' natural size ||dO||·||k||·scale instead.
    for name, x, ref, other in (("dq", dq, want[2], k), ("dk", dk, want[3], q)):
        if ref.count_nonzero() == 0:
            natural = do.double().norm() * other.double().norm() * scale
            errors[name] = x.double().norm().item() / max(natural.item(), TINY)
        else:
            errors[name] = rel_err(x, ref)
    bad = {name: e for name, e in errors.items() if not e <= TOL[dtype]}
    assert not bad, f"relative errors above {TOL[dtype]:g}: {bad} (all: {errors})"
    return got


# (B, H, T, D, window, causal, lengths, transposed)
CASES = [
    pytest.param(2, 3, 37, 16, 5, False, [37, 20], False, id="T37-D16-w5-bidir"),
    pytest.param(2, 1, 130, 64, 20, True, [130, 77], False, id="T130-D64-w20-causal"),
    pytest.param(3, 1, 130, 48, 200, False, [0, 1, 130], True, id="T130-D48-full-len0-1-T"),
    pytest.param(2, 1, 130, 48, 1, False, [130, 64], True, id="T130-D48-w1-transposed"),
    pytest.param(1, 3, 37, 16, 40, True, [30], False, id="T37-full-causal"),
    pytest.param(1, 3, 1, 16, 1, True, [1], False, id="T1-causal"),
    pytest.param(2, 1, 1, 48, 3, False, [1, 0], True, id="T1-len1-len0"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("B, H, T, D, window, causal, lengths, transposed", CASES)
def test_matches_reference(B, H, T, D, window, causal, lengths, transposed, dtype):
    check_against_reference(B, H, T, D, window, causal, lengths, dtype, transposed)


@pytest.mark.parametrize("step", [0.05, 0.7, 3.0], ids=["drift", "grow-each-tile", "steep"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
def test_forward_rescale_when_maxima_grow(step, causal):
    """Scores that grow along the keys, so a row's running maximum keeps rising: by about 0.6
    (log2 units) a 16-key tile ("drift"), by about 8 ("grow-each-tile"), by about 35 ("steep": a
    forward that rescaled its running sums wrongly or too rarely would be off or overflow). The
    output and lse against float64 at fp32's bound. (The gradients are left out: with scores this
    far apart the softmax is nearly one-hot and its fp32 gradients lose digits to cancellation in
    any kernel; the backward reads only o and lse of the forward.) A lazy rescale (m moved only past
    a growth of 8) passed this and was slower on the H200 (BENCHMARKS.md, twenty-eighth session)."""
    B, H, T, D, window = 1, 2, 130, 16, 60
    q, k, v, do, lengths = make_inputs(B, H, T, D, torch.float32, [130])
    pos = torch.arange(T, dtype=torch.float32, device=DEVICE)
    # q·k / sqrt(D) = step · j / log2(e) + noise: the log2-scaled score rises by `step` a key
    q = torch.ones_like(q) + 0.1 * q
    k = (pos[:, None] * step * math.sqrt(D) / (D * math.log2(math.e))) * torch.ones_like(k) + 0.1 * k
    scale = 1 / math.sqrt(D)
    got = wa.window_attention_forward(q, k, v, lengths, window, causal, scale)
    want = reference(q, k, v, do, lengths, window, causal, scale)[:2]
    for name, x, ref in zip(("o", "lse"), got, want):
        assert torch.isfinite(x).all(), name
        assert rel_err(x, ref) <= TOL[torch.float32], (name, rel_err(x, ref))


def test_head_dim_128_fp32():
    check_against_reference(1, 1, 130, 128, 33, False, [130], torch.float32, transposed=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_window_0_is_the_identity(dtype):
    """window 0: each row attends only to itself, so o = v, dv = dO and dq = dk = 0 (up to
    rounding: dS = 1·(dO·v - dO·o) cancels, so these are compared in absolute terms)."""
    q, k, v, do, lengths = make_inputs(2, 3, 37, 16, dtype, [37, 1])
    valid = (torch.arange(37, device=q.device)[None, :] < lengths[:, None])[:, None, :, None]
    o, lse, dq, dk, dv = run_kernels(q, k, v, do, lengths, 0, False, 0.25)
    assert torch.equal(o, v.masked_fill(~valid, 0))
    assert torch.equal(dv, do.masked_fill(~valid, 0))
    bound = TOL[dtype] * do.float().norm() * k.float().norm()
    assert dq.float().norm() <= bound and dk.float().norm() <= bound


@pytest.mark.parametrize("B, H, T", [(2, 3, 0), (0, 3, 37), (0, 1, 0)])
def test_empty(B, H, T):
    q, k, v, do, lengths = make_inputs(B, H, T, 16, torch.float32, [T] * B)
    o, lse, dq, dk, dv = run_kernels(q, k, v, do, lengths, 4, False, 0.25)
    assert o.shape == dq.shape == dk.shape == dv.shape == (B, H, T, 16)
    assert lse.shape == (B, H, T)


def test_garbage_past_lengths_changes_nothing():
    """NaN in q, k, v, dO, o and lse past the lengths gives bit-identical results."""
    B, H, T, D, window = 3, 1, 70, 48, 9
    q, k, v, do, lengths = make_inputs(B, H, T, D, torch.float32, [70, 33, 0], transposed=True)
    valid = (torch.arange(T, device=q.device)[None, :] < lengths[:, None])[:, None, :, None]
    clean = [x.masked_fill(~valid, 0) for x in (q, k, v, do)]
    dirty = [x.masked_fill(~valid, float("nan")) for x in (q, k, v, do)]
    for causal in (False, True):
        o, lse = wa.window_attention_forward(*clean[:3], lengths, window, causal, 0.3)
        o2, lse2 = wa.window_attention_forward(*dirty[:3], lengths, window, causal, 0.3)
        assert torch.equal(o, o2) and torch.equal(lse, lse2)
        assert (o.masked_select(~valid) == 0).all()
        grads = wa.window_attention_backward(clean[3], *clean[:3], o, lse, lengths, window,
                                             causal, 0.3)
        o_nan = o2.masked_fill(~valid, float("nan"))
        lse_nan = lse2.masked_fill(~valid[..., 0], float("nan"))
        grads2 = wa.window_attention_backward(dirty[3], *dirty[:3], o_nan, lse_nan, lengths,
                                              window, causal, 0.3)
        for g, g2 in zip(grads, grads2):
            assert torch.equal(g, g2)
            assert (g.masked_select(~valid) == 0).all()


def test_dq_kernel_writes_delta_on_every_row(monkeypatch):
    """delta = rowsum(dO ⊙ O), which the dQ kernel writes for the dK/dV kernel after it, is defined
    on every row < T of every (b, h), 0 past each length, empty examples and whole tiles of padding
    included: the Hopper dK/dV kernel reads whole 32-row tiles of it by TMA, and a walk's last tile
    may reach into the next (b, h)'s rows, where a NaN would enter dK as 0 · NaN."""
    B, H, T, D = 3, 2, 70, 16
    q, k, v, do, lengths = make_inputs(B, H, T, D, torch.float32, [70, 0, 5])
    o, lse = wa.window_attention_forward(q, k, v, lengths, 9, False, 0.3)
    seen = []

    def row_stats(self, device):
        seen.append(torch.full((self.B, self.H, self.T), float("nan"), device=device))
        return seen[-1]

    monkeypatch.setattr(wa._Layout, "row_stats", row_stats)
    wa.window_attention_backward(do, q, k, v, o, lse, lengths, 9, False, 0.3)
    delta, = seen
    past = torch.arange(T, device=q.device)[None, None, :] >= lengths[:, None, None]
    want = (do.double() * o.double()).sum(-1).masked_fill(past, 0)
    assert torch.isfinite(delta).all() and (delta.masked_select(past) == 0).all()
    assert rel_err(delta, want) <= 1e-5


def test_far_tiles_are_never_visited():
    """A NaN at position 80 (inside the length) may only reach rows whose tiles touch its band.

    A visited tile holding a NaN poisons every row it meets (0·NaN = NaN in the matmuls), so
    finite far rows prove that tiles outside the band are skipped. The backward gets the clean
    forward's o and lse, so that each kernel is tested on its own loads: dQ reads the poisoned
    k, v; dK/dV reads the poisoned q, dO.
    """
    T, D, window, poison = 160, 16, 4, 80
    q, k, v, do, lengths = make_inputs(1, 1, T, D, torch.float32, [T])
    o, lse = wa.window_attention_forward(q, k, v, lengths, window, False, 0.25)
    for x in (q, k, v, do):
        x[:, :, poison] = float("nan")
    o_poisoned, _ = wa.window_attention_forward(q, k, v, lengths, window, False, 0.25)
    grads = wa.window_attention_backward(do, q, k, v, o, lse, lengths, window, False, 0.25)
    reach = window + 32 + 16  # the band plus one tile of each axis (interpreter: 32 and 16)
    dist = (torch.arange(T, device=q.device) - poison).abs()
    for name, x in zip(("o", "dq", "dk", "dv"), (o_poisoned, *grads)):
        row_finite = torch.isfinite(x[0, 0]).all(-1)
        assert row_finite[dist > reach].all(), name
        assert not row_finite[dist <= window].any(), name  # the poison does reach the band


def test_unsupported():
    x = torch.randn(2, 3, 5, 16, device=DEVICE)
    assert wa.unsupported(x, x, x) is None
    assert wa.unsupported(x[0], x[0], x[0]) is not None
    assert wa.unsupported(x.double(), x.double(), x.double()) is not None
    assert wa.unsupported(x, x.half(), x) is not None
    assert wa.unsupported(x, x[:, :, :4], x) is not None
    wide = torch.randn(1, 1, 2, 300, device=DEVICE)
    assert wa.unsupported(wide, wide, wide) is not None
    with pytest.raises(ValueError):
        wa.window_attention_forward(x, x, x, torch.tensor([5, 5], device=DEVICE), -1, False, 1.0)


# ----------------------------------------------------------------------------- GPU

def _autotuners():
    return [tuner for table in (wa._FWD, wa._DQ, wa._DKDV) for tuner in table.values()]


@pytest.fixture
def pinned_config(request):
    """Pins each autotuner to its config number `request.param` (mod its count; default 0):
    correctness cases then compile one config each instead of autotuning over all of them."""
    index = getattr(request, "param", 0)
    saved = [(t, t.configs, dict(t.cache)) for t in _autotuners()]
    for tuner in _autotuners():
        tuner.configs = [tuner.configs[index % len(tuner.configs)]]
        tuner.cache.clear()
    yield
    for tuner, configs, cache in saved:
        tuner.configs = configs
        tuner.cache.clear()
        tuner.cache.update(cache)


GPU_CASES = [(T, D) for T in (0, 1, 37, 300) for D in (16, 48, 64, 128)]


@pytest.mark.gpu
@pytest.mark.parametrize("T, D", GPU_CASES, ids=[f"T{T}-D{D}" for T, D in GPU_CASES])
def test_gpu_bf16(T, D, pinned_config):
    idx = GPU_CASES.index((T, D))
    window, causal = [(1, False), (17, True), (64, False), (T + 5, True)][idx % 4]
    lengths = [T, T // 2, 0, min(T, 1)]
    check_against_reference(4, 3, T, D, window, causal, lengths, torch.bfloat16,
                            transposed=idx % 2 == 1)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
def test_gpu_fp32_fp16(dtype, causal, pinned_config):
    """fp32 must reach 1e-5 on the GPU too (IEEE dots, no TF32)."""
    check_against_reference(3, 2, 700, 64, 150, causal, [700, 333, 0], dtype, transposed=True)


@pytest.mark.gpu
def test_gpu_autotuned():
    """The real autotuner, as the model runs it: compiles and times every Hopper config (the
    other GPU tests pin one, to keep compile time down), then checks the winner."""
    for causal in (False, True):
        check_against_reference(3, 2, 700, 64, 150, causal, [700, 333, 0], torch.bfloat16)


@pytest.mark.gpu
def test_gpu_head_dim_256(pinned_config):
    check_against_reference(2, 2, 300, 256, 40, False, [300, 123], torch.bfloat16)


@pytest.mark.gpu
def test_gpu_torch_compile(pinned_config, monkeypatch):
    """The wrap_triton launches trace into a torch.compile(fullgraph=True) graph (and give what the
    same Triton kernels give eagerly: there, the Hopper backward is switched off)."""
    monkeypatch.setattr(wa, "_HOPPER_BWD", False)
    q, k, v, do, lengths = make_inputs(2, 2, 200, 64, torch.bfloat16, [200, 90], transposed=True)

    def fwd_bwd(q, k, v, do, lengths):
        o, lse = wa.window_attention_forward(q, k, v, lengths, 32, False, 0.125)
        return (o, *wa.window_attention_backward(do, q, k, v, o, lse, lengths, 32, False, 0.125))

    eager = fwd_bwd(q, k, v, do, lengths)
    compiled = torch.compile(fwd_bwd, fullgraph=True)(q, k, v, do, lengths)
    for x, y in zip(eager, compiled):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize("lengths, T, window, causal, reverse", [
    ([37, 0, 1, 20], 37, 5, False, False),     # CSR order; an empty and a length-1 example
    ([37, 0, 1, 20], 37, 5, True, True),       # examples laid out last-to-first
    ([70, 3, 130, 64], 130, 200, False, True),  # window >= T: full attention per example
    ([0, 0], 8, 2, False, False),               # no rows at all
])
def test_packed_rows_match_padded(lengths, T, window, causal, reverse):
    """Packed [N, H, D] rows (no padding anywhere) give the padded kernel's outputs and gradients
    on every row of every example, and never touch a row outside them. Laid out last-to-first,
    example b+1's programs run after example b's rows are written, so a store past a length
    would corrupt a finished example, and the row after the last one is a NaN sentinel that no
    load may read into a valid result."""
    B, H, D, scale = len(lengths), 2, 16, 0.25
    q, k, v, do, lens = make_inputs(B, H, T, D, torch.float32, lengths, seed=7)
    starts, rows = reversed_starts(lens, reverse)
    rows += 1                                                 # one sentinel row at the end
    pq, pk, pv, pdo = (pack_rows(x, lens, starts, rows) for x in (q, k, v, do))
    o_ref, lse_ref = wa.window_attention_forward(q, k, v, lens, window, causal, scale)
    grads_ref = wa.window_attention_backward(do, q, k, v, o_ref, lse_ref, lens, window, causal, scale)
    o, lse = wa.window_attention_forward(pq, pk, pv, lens, window, causal, scale, starts=starts, max_len=T)
    grads = wa.window_attention_backward(pdo, pq, pk, pv, o, lse, lens, window, causal, scale,
                                         starts=starts, max_len=T)
    assert o.shape == pq.shape and lse.shape == (B, H, T)
    assert rel_err(unpack_rows(o, lens, starts, T), o_ref.double()) <= 1e-6
    valid = torch.arange(T, device=DEVICE) < lens[:, None]
    assert torch.equal(lse[valid[:, None].expand_as(lse)], lse_ref[valid[:, None].expand_as(lse_ref)])
    assert torch.isinf(lse[~valid[:, None].expand_as(lse)]).all()
    for g, g_ref in zip(grads, grads_ref):
        assert g.shape == pq.shape
        assert rel_err(unpack_rows(g, lens, starts, T), g_ref.double()) <= 1e-6
    # against the float64 reference too, on the packed rows themselves
    ref = reference(q, k, v, do, lens, window, causal, scale)
    for x, r in zip((o, *grads), (ref[0], *ref[2:])):
        assert rel_err(unpack_rows(x, lens, starts, T), r) <= TOL[torch.float32]


def test_packed_layout_errors():
    q = torch.zeros(5, 2, 16, device=DEVICE)
    lens = torch.tensor([2, 3], device=DEVICE)
    starts = torch.tensor([0, 2], device=DEVICE)
    with pytest.raises(ValueError, match="need max_len"):
        wa.window_attention_forward(q, q, q, lens, 2, False, 1.0, starts=starts)
    with pytest.raises(ValueError, match=r"starts must be \[B\] = \[2\]"):
        wa.window_attention_forward(q, q, q, lens, 2, False, 1.0, starts=starts[:1], max_len=3)
    with pytest.raises(ValueError, match=r"must be \[N, H, D\]"):
        wa.window_attention_forward(q[None], q[None], q[None], lens, 2, False, 1.0, starts=starts, max_len=3)
    assert wa.unsupported(q, q, q, packed=True) is None
