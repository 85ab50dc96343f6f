"""The Hopper (Gluon) window-attention kernels, templates/kernels/window_attention_hopper.py: the
backward, and the forward (its compile and schedule checks are tests/test_window_gluon_fwd.py's).

On CPU (no interpreter for Gluon): the 2-D TMA views it reads every layout through address every
element where the tensor holds it; what it refuses, and why; that window_attention_backward runs
the Triton kernels off sm_90; and the kernels compiled for sm_90 (Triton's own ptxas) keep their
wgmma groups unserialized and spill at most a few bytes. On an H100/H200 (`gpu`): its gradients
against the float64 reference at odd shapes, jagged with NaN past every length, padded, transposed
views, packed rows and heads views of one fused projection, bf16 and fp16, and against the Triton
backward; the forward's o and lse against the reference (NaN past the lengths, NaN-filled output)
and its packed rows against its padded ones, bit for bit.
"""
from __future__ import annotations

import functools
import math
import re

import pytest
import torch

from test_gdpa_gluon import _has_gluon_hopper, compile_only_rows
from test_triton_window import TOL, make_inputs, reference, rel_err, wa

needs_gluon = pytest.mark.skipif(not _has_gluon_hopper(), reason="Triton's Gluon for Hopper is not installed")


def _hopper():
    module = wa._hopper_module()
    assert module is not None, "window_attention could not import window_attention_hopper.py"
    return module


def _layouts(B=3, H=4, T=37, D=64):
    """name -> (tensor, packed) in every layout the models and tests pass."""
    N = 50
    base = torch.randn(B, T, 3 * H * D)
    packed_qkv = torch.randn(N, 3 * H * D)
    return {
        "contiguous": (torch.randn(B, H, T, D), False),
        "transposed": (torch.randn(B, T, H * D).view(B, T, H, D).transpose(1, 2), False),
        "qkv padded, k": (base.unflatten(-1, (3, H, D)).permute(2, 0, 3, 1, 4)[1], False),
        "packed": (torch.randn(N, H, D), True),
        "packed qkv, v": (packed_qkv.unflatten(-1, (3, H, D)).unbind(1)[2], True),
        "packed head-major": (torch.randn(H, N, D).transpose(0, 1), True),
        "one head": (torch.randn(B, 1, T, D), False),
        "expanded heads": (torch.randn(B, 1, T, D).expand(B, H, T, D), False),
    }


@needs_gluon
@pytest.mark.parametrize("name", list(_layouts()))
def test_rows_view_addresses_every_element(name):
    """Element (b, h, t, d) sits at row b·B_ROWS + h·H_ROWS + t (packed: n + h·H_ROWS), column
    h·H_COLS + d of the [rows, cols] view with the view's row stride, inside the view's bounds."""
    x, packed = _layouts()[name]
    rows, cols, st, b_rows, h_rows, h_cols = _hopper().rows_view(x, packed)
    if packed:
        n, h, d = torch.meshgrid(*(torch.arange(s) for s in x.shape), indexing="ij")
        row, col = n + h * h_rows, h * h_cols + d
        offset = n * x.stride(0) + h * x.stride(1) + d * x.stride(2)
    else:
        b, h, t, d = torch.meshgrid(*(torch.arange(s) for s in x.shape), indexing="ij")
        row, col = b * b_rows + h * h_rows + t, h * h_cols + d
        offset = b * x.stride(0) + h * x.stride(1) + t * x.stride(2) + d * x.stride(3)
    assert torch.equal(row * st + col, offset)
    assert int(row.max()) < rows and int(col.max()) < cols and cols <= st or h_cols == 0


@needs_gluon
def test_rows_view_refuses_what_tma_cannot_read():
    hop = _hopper()
    x = torch.randn(2, 3, 10, 64)
    assert hop.rows_view(x.transpose(-1, -2).contiguous().transpose(-1, -2), False) is None  # d stride != 1
    odd = torch.randn(2, 10, 3 * 64 + 8)[..., :3 * 64].view(2, 10, 3, 64).permute(0, 2, 1, 3)
    assert hop.rows_view(odd, False) is not None                      # heads side by side: a view
    weird = torch.randn(2, 3 * 10 * 64 + 5)[:, :3 * 10 * 64].view(2, 3, 10, 64)  # batch stride not rows
    assert hop.rows_view(weird, False) is None


@needs_gluon
def test_unsupported_says_why():
    hop = _hopper()

    def reason(q, packed=False, B=2, H=3, **others):
        tensors = {"q": q, "k": q, "v": q, "grad_out": q, **others}
        return hop.unsupported(tensors, packed, B, H)

    q = torch.randn(2, 3, 40, 64, dtype=torch.bfloat16)
    assert "bf16 or fp16" in reason(q.float())
    assert "bf16 or fp16" in reason(q, dq=torch.empty_like(q, dtype=torch.float16))
    assert "head dim 64 or 128" in reason(torch.randn(2, 3, 40, 48, dtype=torch.bfloat16))
    assert "65535" in reason(q, B=70000, H=1)
    assert "strides" in reason(q.transpose(-1, -2).contiguous().transpose(-1, -2))
    assert "16-byte" in reason(torch.randn(2 * 3 * 40 * 64 + 1, dtype=torch.bfloat16)[1:].view(2, 3, 40, 64))
    assert "sm_90" in reason(q)                                       # a CPU tensor: every other check passed


def test_the_triton_backward_runs_off_sm90(monkeypatch):
    """window_attention_backward's choice: on CPU (the interpreter) the Triton kernels, and the
    switch KUNLUNC_HOPPER_BWD=0 (the module flag) turns the Hopper kernels off everywhere."""
    q = torch.randn(1, 1, 8, 64)
    assert wa.hopper_backward_reason({"q": q}, False, 1, 1) == "not on a CUDA device"
    monkeypatch.setattr(wa, "_HOPPER_BWD", False)
    assert wa.hopper_backward_reason({"q": q}, False, 1, 1) == "KUNLUNC_HOPPER_BWD=0"


LINE = re.compile(r"(dkdv|dq|dkdv_tma_out) D(\d+) (padded|packed): regs (\d+) stack (\d+) shared (\d+) "
                  r"hgmma (\d+) waits (\d+) tma_stores (\d+)")


@functools.cache
def _compiled_lines() -> tuple[str, ...]:
    """`python3 bench/window_hopper.py --compile-only`'s lines, run once for the tests below."""
    return tuple(line for (line,) in compile_only_rows("window_hopper.py", re.compile(r"(.*)")))


def _compiled(pattern: re.Pattern) -> list[tuple]:
    return [tuple(int(g) if g.isdigit() else g for g in m.groups())
            for m in map(pattern.match, _compiled_lines()) if m]


@needs_gluon
def test_hopper_kernels_compile_for_sm90_with_their_wgmmas_in_groups():
    """Both kernels at D 64 and 128, padded and packed, as window_attention_hopper.VARIANT builds
    them: each tile body (the loop's, three where SPLIT, and the peeled last tile's where PEEL) with its two wgmma
    groups (Sᵀ and dPᵀ, then dV and dK; S and dP, then dQ), so two waits a body and the HGMMA count
    of its four GEMMs; registers within a 4-warp program's budget."""
    rows = _compiled(LINE)
    assert len(rows) == 12, rows
    built = {(kind, d, layout): (hgmma, stores) for kind, d, layout, _, _, _, hgmma, _, stores in rows}
    for d in (64, 128):                          # the dK/dV kernel with TMA_OUT switched: the same
        for layout in ("padded", "packed"):      # GEMMs, and TMA stores (two) only where TMA_OUT is on
            plain, switched = built[("dkdv", d, layout)], built[("dkdv_tma_out", d, layout)]
            assert plain[0] == switched[0] and {plain[1], switched[1]} == {0, 2}, (d, layout, plain, switched)
            assert plain[1] == (2 if _hopper().VARIANT[d]["TMA_OUT"] else 0)
    for kind, d, layout, regs, stack, shared, hgmma, waits, _ in rows:
        kind = kind[:4] if kind != "dq" else kind
        where = (kind, d, layout)
        k_steps = d // 16                       # Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ (or S, dP): K = D
        per_tile = 2 * k_steps + (4 if kind == "dkdv" else 2)   # dV, dK (or dQ): K = 32 walked rows
        variant = _hopper().VARIANT[d]          # SPLIT: edge, interior (no mask), edge loops
        bodies = (3 if kind in variant["SPLIT"] else 1) + (1 if variant["PEEL"] else 0)
        assert hgmma == bodies * per_tile and waits == 2 * bodies, (where, hgmma, waits)
        assert regs <= (128 if (kind, d) == ("dkdv", 64) else 255) and stack <= 64, (where, regs, stack)
        assert shared <= 100 * 1024, where      # two programs an SM at least


@needs_gluon
def test_row_stats_by_tma_only_from_aligned_rows():
    """The dK/dV kernel reads lse and delta by TMA only where every row bh·T + 32·i starts on 16
    bytes: T a multiple of 4 and the array aligned and contiguous."""
    hop = _hopper()
    assert hop.stats_by_tma(torch.empty(2, 3, 40), 40)
    assert not hop.stats_by_tma(torch.empty(2, 3, 37), 37)
    assert not hop.stats_by_tma(torch.empty(2 * 3 * 40 + 1)[1:].view(2, 3, 40), 40)    # 4 bytes off
    assert not hop.stats_by_tma(torch.empty(2, 40, 3).transpose(1, 2), 40)


LOOPS = re.compile(r"(dkdv|dq|dkdv_tma_out) D(\d+) (padded|packed): .* loops ((?:L\d+/S\d+/B\d+ ?)+)$")


@needs_gluon
def test_hopper_walks_run_their_interior_unmasked_and_load_no_row_stats_a_tile():
    """SPLIT and STATS as compiled: where VARIANT splits a kernel's walk, its tile loops are three,
    edge (the band mask's selects), interior (none), edge; unsplit, one masked loop. No tile loop
    issues a global load: the dK/dV kernel's lse and delta come by TMA with each tile (STATS), the dQ
    kernel loads its own rows' once."""
    hop = _hopper()
    rows = _compiled(LOOPS)
    assert len(rows) == 12, rows
    for kind, d, layout, loops in rows:
        loops = [tuple(map(int, re.findall(r"\d+", loop))) for loop in loops.split()]
        where = (kind, d, layout, loops)
        split = kind[:4] if kind != "dq" else kind
        if split in hop.VARIANT[d]["SPLIT"]:
            assert len(loops) == 3 and loops[1][1] == 0 and loops[0][1] > 0 and loops[2][1] > 0, where
        else:
            assert len(loops) == 1 and loops[0][1] > 0, where
        if kind == "dq" or hop.VARIANT[d]["STATS"]:
            assert all(loads == 0 for loads, _, _ in loops), where


# ----------------------------------------------------------------------------- on the GPU

def _hopper_grads(q, k, v, do, lengths, window, causal, scale, **layout):
    o, lse = wa.window_attention_forward(q, k, v, lengths, window, causal, scale, **layout)
    tensors = {"q": q, "k": k, "v": v, "grad_out": do, "o": o}
    H = q.shape[1]                                   # [B, H, T, D] or packed [N, H, D]
    reason = wa.hopper_backward_reason(tensors, "starts" in layout, lengths.shape[0], H)
    assert reason is None, reason
    return o, lse, wa.window_attention_backward(do, q, k, v, o, lse, lengths, window, causal, scale, **layout)


GPU_CASES = [  # (B, H, T, D, window, causal, lengths, transposed)
    (4, 3, 37, 64, 5, False, [37, 18, 0, 1], False),
    (4, 3, 300, 128, 17, True, [300, 150, 0, 1], True),
    (3, 2, 1, 64, 3, True, [1, 0, 1], False),
    (3, 2, 300, 64, 1000, False, [300, 299, 33], True),     # window >= T: full attention
    (2, 5, 517, 128, 64, False, [517, 200], False),
    (2, 2, 129, 64, 0, True, [129, 64], False),              # window 0: each row sees itself
    (3, 2, 700, 64, 200, False, [700, 333, 97], False),      # interior tiles (SPLIT) in both walks
    (3, 2, 700, 128, 150, True, [700, 451, 64], True),
]


@pytest.fixture(params=[(False, False), (True, False), (False, True)], ids=["triton-dq", "hopper-dq", "tma-out"])
def hopper_dq(request, monkeypatch):
    """Both dQ kernels before the Hopper dK/dV kernel (Triton's and the Hopper one, at every head dim),
    and the dK/dV kernel's whole owned tiles stored by TMA (VARIANT's TMA_OUT) switched from its default."""
    hop = _hopper()
    dq, tma_out = request.param
    monkeypatch.setattr(hop, "HOPPER_DQ", {d: dq for d in hop.HOPPER_DQ})
    monkeypatch.setattr(hop, "VARIANT", {d: {**v, "TMA_OUT": v["TMA_OUT"] != tma_out} for d, v in hop.VARIANT.items()})
    return request.param


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("B, H, T, D, window, causal, lengths, transposed", GPU_CASES)
def test_gpu_hopper_backward_matches_the_reference(B, H, T, D, window, causal, lengths, transposed, dtype,
                                                   hopper_dq):
    """Padded, NaN in every row past a length of q, k, v, dO (and of o, lse): the gradients on the
    valid rows within the tolerance of the float64 reference, exact zeros past the lengths."""
    q, k, v, do, lengths_t = make_inputs(B, H, T, D, dtype, lengths, transposed)
    scale = 1 / math.sqrt(D)
    want = reference(q, k, v, do, lengths_t, window, causal, scale)
    valid = (torch.arange(T, device="cuda")[None, :] < lengths_t[:, None])[:, None, :, None]
    dirty = [x.masked_fill(~valid, float("nan")) for x in (q, k, v, do)]
    o, lse = wa.window_attention_forward(*dirty[:3], lengths_t, window, causal, scale)
    o = o.masked_fill(~valid, float("nan"))
    assert wa.hopper_backward_reason({"q": dirty[0], "k": dirty[1], "v": dirty[2], "grad_out": dirty[3], "o": o},
                                     False, B, H) is None
    dq, dk, dv = wa.window_attention_backward(dirty[3], *dirty[:3], o, lse, lengths_t, window, causal, scale)
    for name, x, ref in (("dq", dq, want[2]), ("dk", dk, want[3]), ("dv", dv, want[4])):
        assert torch.isfinite(x).all() and (x.masked_select(~valid.expand_as(x)) == 0).all(), name
        if ref.count_nonzero():
            assert rel_err(x, ref) <= TOL[dtype], (name, rel_err(x, ref))


@pytest.mark.gpu
@pytest.mark.parametrize("D", [64, 128])
def test_gpu_hopper_dkdv_reads_no_stale_delta(D, monkeypatch):
    """T a multiple of 4 but not of 32 (STATS on), an example whose walks' last tiles reach past T into
    the next (b, h)'s rows of delta, and that next example empty, with delta's memory NaN before the
    dQ kernel writes it: every row of delta must be written (0 past a length), or 0 · NaN reaches dK."""
    B, H, T, window = 2, 1, 300, 40
    assert _hopper().stats_by_tma(torch.empty(B, H, T), T) and T % 32
    q, k, v, do, lengths = make_inputs(B, H, T, D, torch.bfloat16, [T, 0])
    want = reference(q, k, v, do, lengths, window, False, 0.125)
    monkeypatch.setattr(wa._Layout, "row_stats",
                        lambda self, device: torch.full((self.B, self.H, self.T), float("nan"), device=device))
    o, lse = wa.window_attention_forward(q, k, v, lengths, window, False, 0.125)
    dq, dk, dv = wa.window_attention_backward(do, q, k, v, o, lse, lengths, window, False, 0.125)
    for name, x, ref in (("dq", dq, want[2]), ("dk", dk, want[3]), ("dv", dv, want[4])):
        assert torch.isfinite(x).all(), name
        assert rel_err(x, ref) <= TOL[torch.bfloat16], (name, rel_err(x, ref))


@pytest.fixture
def one_config(monkeypatch):
    """Each Triton window kernel's autotuner limited to its first config: padded and packed rows are
    separate tuning keys, and two picks could differ in tile size and so in rounding (a bitwise
    comparison of the two layouts then fails by chance; s25 call 4)."""
    for tuners in (wa._FWD, wa._DQ, wa._DKDV):
        for tuner in tuners.values():
            monkeypatch.setattr(tuner, "configs", tuner.configs[:1])
            monkeypatch.setattr(tuner, "cache", {})


def _packed_projection(q, k, v, lengths):
    """(starts, N, fused, heads): padded q, k, v packed last-to-first into one bf16 [N, 3·H·D]
    projection with a NaN sentinel row after the examples (N counts it), and its q, k, v heads views."""
    from packing import pack_rows, reversed_starts
    B, H, T, D = q.shape
    starts, _ = reversed_starts(lengths)
    N = int(lengths.sum()) + 1                                          # + the sentinel row
    fused = torch.full((N, 3 * H * D), float("nan"), device="cuda", dtype=torch.bfloat16)
    heads = fused.view(N, 3, H, D).unbind(1)
    for x, dst in zip((q, k, v), heads):
        dst.copy_(pack_rows(x, lengths, starts, N))
    return starts, N, fused, heads


@pytest.mark.gpu
@pytest.mark.parametrize("T, D, window, causal", [(37, 64, 5, False), (300, 128, 40, True), (130, 64, 1000, False)])
def test_gpu_hopper_backward_packed_and_fused_projection(T, D, window, causal, hopper_dq, one_config):
    """Packed rows laid out last-to-first with a NaN sentinel row after them, read through heads
    views of one [N, 3·H·D] projection and written into one [N, 3·H·D] gradient: every example's
    gradients equal the padded Hopper backward's, and no row outside the examples is written."""
    from packing import pack_rows
    B, H, scale = 4, 3, 0.2
    lengths = [T, 0, 1, T // 2]
    q, k, v, do, lengths_t = make_inputs(B, H, T, D, torch.bfloat16, lengths)
    _, _, padded = _hopper_grads(q, k, v, do, lengths_t, window, causal, scale)
    starts, N, fused, heads = _packed_projection(q, k, v, lengths_t)
    grad_rows = pack_rows(do, lengths_t, starts, N)
    dfused = torch.full_like(fused, 7.0)
    grads = dfused.view(N, 3, H, D).unbind(1)
    o, lse = wa.window_attention_forward(*heads, lengths_t, window, causal, scale, starts=starts, max_len=T)
    assert wa.hopper_backward_reason({"q": heads[0], "k": heads[1], "v": heads[2], "grad_out": grad_rows, "o": o},
                                     True, B, H) is None
    wa.window_attention_backward(grad_rows, *heads, o, lse, lengths_t, window, causal, scale, starts=starts,
                                 max_len=T, grads=grads)
    from packing import unpack_rows
    for name, g, want in zip(("dq", "dk", "dv"), grads, padded):
        assert torch.equal(unpack_rows(g, lengths_t, starts, T), want.double()), name
    assert (dfused[-1] == 7.0).all(), "the row after the examples was written"


@pytest.mark.gpu
def test_gpu_hopper_backward_agrees_with_triton(monkeypatch, hopper_dq):
    """At a benchmark-like shape, jagged, the Hopper and Triton backwards within bf16 rounding."""
    q, k, v, do, lengths = make_inputs(8, 4, 1024, 64, torch.bfloat16, [1024, 700, 3, 0, 512, 1023, 64, 900])
    o, lse, hopper = _hopper_grads(q, k, v, do, lengths, 128, True, 0.125)
    monkeypatch.setattr(wa, "_HOPPER_BWD", False)
    triton_grads = wa.window_attention_backward(do, q, k, v, o, lse, lengths, 128, True, 0.125)
    for name, x, y in zip(("dq", "dk", "dv"), hopper, triton_grads):
        assert rel_err(x, y.double()) <= 5e-3, name


# ----------------------------------------------------------------------------- the forward

def test_the_triton_forward_runs_off_sm90(monkeypatch):
    """window_attention_forward's choice: on CPU the Triton kernel; KUNLUNC_HOPPER_FWD=0 (the module
    flag) turns the Gluon forward off everywhere; HOPPER_FWD names a choice for every head dim the
    Hopper kernels are built for."""
    q = torch.randn(1, 1, 8, 64)
    assert wa.hopper_forward_reason({"q": q}, False, 1, 1) == "not on a CUDA device"
    monkeypatch.setattr(wa, "_HOPPER_FWD", False)
    assert wa.hopper_forward_reason({"q": q}, False, 1, 1) == "KUNLUNC_HOPPER_FWD=0"
    hop = _hopper()
    assert set(hop.HOPPER_FWD) == set(hop.HEAD_DIMS)
    bm, _, stages, warps = hop.CONFIGS["fwd"]
    assert bm == 16 * warps and stages >= 2


@pytest.fixture
def hopper_fwd(monkeypatch):
    """The Gluon forward at every head dim it is built for (production: HOPPER_FWD), counting its calls."""
    hop = _hopper()
    monkeypatch.setattr(hop, "HOPPER_FWD", {d: True for d in hop.HOPPER_FWD})
    calls = []
    real = hop.fwd_hopper
    monkeypatch.setattr(hop, "fwd_hopper", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    return calls


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("B, H, T, D, window, causal, lengths, transposed", GPU_CASES)
def test_gpu_hopper_forward_matches_the_reference(B, H, T, D, window, causal, lengths, transposed, dtype,
                                                  hopper_fwd):
    """Padded, NaN in every row past a length of q, k, v and in o's memory: o and lse on the valid rows
    within the tolerance of the float64 reference, o exactly 0 and lse -inf past the lengths."""
    q, k, v, do, lengths_t = make_inputs(B, H, T, D, dtype, lengths, transposed)
    scale = 1 / math.sqrt(D)
    want = reference(q, k, v, do, lengths_t, window, causal, scale)
    valid = (torch.arange(T, device="cuda")[None, :] < lengths_t[:, None])[:, None, :, None]
    dirty = [x.masked_fill(~valid, float("nan")) for x in (q, k, v)]
    out = torch.full_like(dirty[0], float("nan"))
    o, lse = wa.window_attention_forward(*dirty, lengths_t, window, causal, scale, out=out)
    assert hopper_fwd == [1], "the Gluon forward did not run"
    rows = valid[..., 0].expand(B, H, T)
    assert torch.isfinite(o).all() and (o.masked_select(~valid.expand_as(o)) == 0).all()
    assert (lse[~rows] == float("-inf")).all()
    if rows.any():
        assert rel_err(o, want[0]) <= TOL[dtype], rel_err(o, want[0])
        assert rel_err(lse[rows], want[1][rows]) <= TOL[dtype], rel_err(lse[rows], want[1][rows])


@pytest.mark.gpu
@pytest.mark.parametrize("T, D, window, causal", [(37, 64, 5, False), (300, 128, 40, True), (700, 64, 200, False)])
def test_gpu_hopper_forward_packed_rows(T, D, window, causal, hopper_fwd):
    """Packed rows laid out last-to-first with a NaN sentinel row after them, read through heads
    views of one [N, 3·H·D] projection, o written into a heads view of a [N, H·D] buffer: every
    example's o equals the padded Gluon forward's bit for bit, and the sentinel row is not written."""
    from packing import unpack_rows
    B, H, scale = 4, 3, 0.2
    q, k, v, _, lengths_t = make_inputs(B, H, T, D, torch.bfloat16, [T, 0, 1, T // 2])
    padded, padded_lse = wa.window_attention_forward(q, k, v, lengths_t, window, causal, scale)
    starts, N, _, heads = _packed_projection(q, k, v, lengths_t)
    out = torch.full((N, H * D), 7.0, device="cuda", dtype=torch.bfloat16)
    o, lse = wa.window_attention_forward(*heads, lengths_t, window, causal, scale, starts=starts, max_len=T,
                                         out=out.view(N, H, D))
    assert len(hopper_fwd) == 2
    assert torch.equal(unpack_rows(o, lengths_t, starts, T), padded.double())
    assert torch.equal(lse, padded_lse)
    assert (out[-1] == 7.0).all(), "the row after the examples was written"
