"""The Hopper (Gluon) GDPA backward, templates/kernels/gdpa_hopper.py.

On CPU (no interpreter for Gluon): what it refuses, and why; that gdpa_backward runs the Triton
kernels off sm_90 and with KUNLUNC_HOPPER_BWD=0; and both kernels compiled for sm_90 (Triton's own
ptxas) keep their wgmma groups unserialized, spill nothing and fit two programs an SM. On an
H100/H200 (`gpu`): both kernels' gradients against the float64 reference at odd shapes (T and S 1,
33, 37, 300; every activation, one per head; kv lengths; NaN in every row past a length), bf16 and
fp16, D 64 and 128; packed rows with k and v the heads views of one projection, equal to padded;
and against the Triton backward.
"""
from __future__ import annotations

import re

import pytest
import torch

from test_gdpa_gluon import _has_gluon_hopper, compile_only_rows
from test_triton_gdpa import TOLERANCE, Case, gdpa, make_inputs, reference, rel_err

needs_gluon = pytest.mark.skipif(not _has_gluon_hopper(), reason="Triton's Gluon for Hopper is not installed")


def _hopper():
    module = gdpa._hopper_module()
    assert module is not None, "gdpa could not import gdpa_hopper.py"
    return module


@needs_gluon
def test_unsupported_says_why():
    hop = _hopper()

    def reason(q, packed=False, batch_heads=6, windowed=False, **others):
        tensors = {"q": q, "k": q, "v": q, "grad_out": q, **others}
        return hop.unsupported(tensors, packed, batch_heads, windowed)

    q = torch.randn(2, 3, 40, 64, dtype=torch.bfloat16)
    assert "window" in reason(q, windowed=True)
    off = {key: on and key[1] != 128 for key, on in hop.ENABLED.items()}   # as the defaults: D 128 off
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hop, "ENABLED", off)
        assert "both kernels off" in reason(torch.randn(2, 3, 40, 128, dtype=torch.bfloat16))
    assert "bf16 or fp16" in reason(q.float())
    assert "bf16 or fp16" in reason(q, dq=torch.empty_like(q, dtype=torch.float16))
    assert "head dim 64 or 128" in reason(torch.randn(2, 3, 40, 48, dtype=torch.bfloat16))
    assert "65535" in reason(q, batch_heads=70000)
    assert "strides" in reason(q.transpose(-1, -2).contiguous().transpose(-1, -2))
    assert "16-byte" in reason(torch.randn(2 * 3 * 40 * 64 + 1, dtype=torch.bfloat16)[1:].view(2, 3, 40, 64))
    assert "sm_90" in reason(q)                                       # a CPU tensor: every other check passed
    packed_q = torch.randn(50, 3, 64, dtype=torch.bfloat16)           # packed q and dO beside [B, H, S, D] k, v
    tensors = {"q": packed_q, "grad_out": packed_q, "k": q, "v": q}
    assert "sm_90" in hop.unsupported(tensors, True, 6, False)


def test_the_triton_backward_runs_off_sm90(monkeypatch):
    q = torch.randn(1, 1, 8, 64)
    assert gdpa.hopper_backward_reason({"q": q}, False, 1, False) == "not on a CUDA device"
    monkeypatch.setattr(gdpa, "_HOPPER_BWD", False)
    assert gdpa.hopper_backward_reason({"q": q}, False, 1, False) == "KUNLUNC_HOPPER_BWD=0"


LINE = re.compile(r"(dq|dkdv) D(\d+) (padded|packed): regs (\d+) stack (\d+) shared (\d+) hgmma (\d+) "
                  r"waits (\d+) tanh (\d+)")


@needs_gluon
def test_hopper_kernels_compile_for_sm90_with_their_wgmmas_in_groups():
    """Each tile body with its two wgmma groups (S and dP, then dQ; Sᵀ and dPᵀ, then dV and dK): two
    waits and the HGMMA count of its GEMMs at the configured tiles; one tanh a score of the walked
    tile a thread (gelu_tanh); no spill; two programs an SM by shared memory."""
    rows = compile_only_rows("gdpa_hopper.py", LINE)
    assert len(rows) == 8, rows
    configs = _hopper().CONFIGS
    for kind, d, layout, regs, stack, shared, hgmma, waits, tanh in rows:
        bm, bn, _, warps = configs[(kind, d)]
        k_steps = d // 16                         # S = Q·Kᵀ and dP = dO·Vᵀ: K = D, 16 a step
        m_rows, walked = (bm, bn) if kind == "dq" else (bn, bm)
        # each wgmma instruction covers 64 rows of a warpgroup's M: (M / 64 / warpgroups) a K-step
        per_step = max(1, m_rows // (64 * (warps // 4)))
        gemms = (2 * k_steps + walked // 16) if kind == "dq" else (2 * k_steps + 2 * (walked // 16))
        assert hgmma == gemms * per_step and waits == 2, ((kind, d, layout), hgmma, waits)
        assert tanh == bm * bn // (32 * warps), ((kind, d, layout), tanh)
        assert stack == 0 and regs <= 255, ((kind, d, layout), regs, stack)
        assert shared <= 114 * 1024, (kind, d, layout)


# ----------------------------------------------------------------------------- on the GPU

@pytest.fixture
def both_kernels(monkeypatch):
    """Both Hopper kernels on, whatever ENABLED's defaults."""
    hop = _hopper()
    monkeypatch.setattr(hop, "ENABLED", {key: True for key in hop.ENABLED})
    return hop


GPU_CASES = {   # Case(B, H, T, S, D, activations, q_lengths, kv_lengths)
    "pffn_odd": Case(3, 2, 37, 33, 64, "gelu_tanh", (37, 0, 1)),
    "pffn_d128_heads": Case(3, 3, 300, 96, 128, "gelu_tanh,silu,relu2", (300, 150, 1)),
    "one_row_one_key": Case(2, 2, 1, 1, 64, "gelu", (1, 0)),
    "every_activation": Case(2, 6, 130, 70, 64, "gelu_tanh,gelu,silu,relu,relu2,identity", (130, 65)),
    "kv_lengths": Case(3, 2, 37, 300, 128, "identity,silu", (37, 5, 36), kv_lengths=(300, 0, 33)),
    "long": Case(2, 4, 517, 512, 64, "gelu_tanh", (517, 200), views=False),
}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", list(GPU_CASES))
def test_gpu_hopper_backward_matches_the_reference(name, dtype, both_kernels):
    """Padded, NaN in every row past a length of q, dO (and k, v past kv lengths): the gradients
    within the tolerance of the float64 reference, finite, exact zeros past every length."""
    case = GPU_CASES[name]
    q, k, v, do, q_lengths, kv_lengths = make_inputs(case, dtype)
    tensors = {"q": q, "k": k, "v": v, "grad_out": do}
    assert gdpa.hopper_backward_reason(tensors, False, case.B * case.H, False) is None
    grads = gdpa.gdpa_backward(do, q, k, v, q_lengths, kv_lengths, case.activations, case.scale)
    _, want = reference(case, q, k, v, do, q_lengths, kv_lengths)
    q_valid = torch.arange(case.T, device="cuda")[None, :] < q_lengths[:, None]
    kv_valid = (torch.arange(case.S, device="cuda")[None, :] < kv_lengths[:, None] if kv_lengths is not None
                else torch.ones(case.B, case.S, dtype=torch.bool, device="cuda"))
    for label, x, ref, valid in zip(("dq", "dk", "dv"), grads, want, (q_valid, kv_valid, kv_valid)):
        assert torch.isfinite(x).all(), label
        assert (x.masked_select(~valid[:, None, :, None].expand_as(x)) == 0).all(), label
        if ref.count_nonzero():
            assert rel_err(x, ref) <= TOLERANCE[dtype], (label, rel_err(x, ref))


@pytest.mark.gpu
@pytest.mark.parametrize("D, activations", [(64, "gelu_tanh"), (128, "silu,relu2")])
def test_gpu_hopper_backward_packed_heads_views(D, activations, both_kernels):
    """Packed query rows laid out last to first with a NaN sentinel row after them, k and v the
    heads views of one [B, S, 2·H·D] projection, dK and dV written into one such tensor: the same
    gradients as the padded Hopper backward, and no row outside the examples written."""
    from packing import pack_rows, reversed_starts, unpack_rows
    B, H, T, S = 4, 2, 300, 96
    lengths = [T, 0, 1, 150]
    case = Case(B, H, T, S, D, activations, tuple(lengths))
    q, _, _, do, q_lengths, _ = make_inputs(case, torch.bfloat16, padding=0.0)
    kv = torch.randn(B, S, 2 * H * D, device="cuda").bfloat16()
    k, v = kv.view(B, S, 2, H, D).permute(2, 0, 3, 1, 4).unbind(0)
    padded = gdpa.gdpa_backward(do, q, k, v, q_lengths, None, activations, case.scale)
    starts, row = reversed_starts(q_lengths)
    N = row + 1
    pq, pg = pack_rows(q, q_lengths, starts, N), pack_rows(do, q_lengths, starts, N)
    tensors = {"q": pq, "k": k, "v": v, "grad_out": pg}
    assert gdpa.hopper_backward_reason(tensors, True, B * H, False) is None
    dq = torch.full_like(pq, 7.0)
    dkv = torch.full_like(kv, float("nan"))
    dk, dv = dkv.view(B, S, 2, H, D).permute(2, 0, 3, 1, 4).unbind(0)
    gdpa.gdpa_backward(pg, pq, k, v, q_lengths, None, activations, case.scale, q_starts=starts, max_len=T,
                       grads=(dq, dk, dv))
    assert torch.equal(unpack_rows(dq, q_lengths, starts, T), padded[0].double())
    assert torch.equal(dk, padded[1]) and torch.equal(dv, padded[2])
    assert (dq[-1] == 7.0).all(), "the row after the examples was written"


@pytest.mark.gpu
def test_gpu_hopper_backward_agrees_with_triton(monkeypatch, both_kernels):
    """At a PFFN-like shape, jagged, the Hopper and Triton backwards within bf16 rounding."""
    case = Case(8, 8, 1024, 512, 64, "gelu_tanh", (1024, 700, 3, 0, 512, 1023, 64, 900), views=False,
                scale=1 / 512)
    q, k, v, do, q_lengths, _ = make_inputs(case, torch.bfloat16)
    hopper = gdpa.gdpa_backward(do, q, k, v, q_lengths, None, case.activations, case.scale)
    monkeypatch.setattr(gdpa, "_HOPPER_BWD", False)
    triton_grads = gdpa.gdpa_backward(do, q, k, v, q_lengths, None, case.activations, case.scale)
    for label, x, y in zip(("dq", "dk", "dv"), hopper, triton_grads):
        assert rel_err(x, y.double()) <= 5e-3, label


def test_gdpa_backward_dispatches_each_head_group_to_the_enabled_kernels(monkeypatch):
    """Where the Hopper kernels are allowed, gdpa_backward hands each head group (activation, head
    table, kv lengths) to the kernels ENABLED names at that head dim and runs Triton for the others;
    a window never reaches them. A stand-in module records the calls (no GPU here)."""
    calls = []

    class FakeHopper:
        ENABLED = {("dq", 64): True, ("dkdv", 64): False, ("dq", 128): False, ("dkdv", 128): False}

        @staticmethod
        def backward_hopper(kind, grad_out, q, k, v, pointers, act, head_table, has_kv_len, T, B, n_heads, scale,
                            outs):
            calls.append((kind, act, head_table, has_kv_len, T, B, n_heads, scale, len(outs)))
            for out in outs:
                out.fill_(3.0)

    monkeypatch.setattr(gdpa, "_hopper_module", lambda: FakeHopper)
    reasons = []

    def reason(tensors, packed, batch_heads, windowed):
        reasons.append((packed, batch_heads, windowed))
        return "a window" if windowed else None

    monkeypatch.setattr(gdpa, "hopper_backward_reason", reason)
    case = Case(2, 4, 9, 5, 64, "silu,relu2,silu,relu2", (9, 3), kv_lengths=(5, 2))
    q, k, v, do, q_lengths, kv_lengths = make_inputs(case, torch.float32, padding=0.0)
    dq, dk, dv = gdpa.gdpa_backward(do, q, k, v, q_lengths, kv_lengths, case.activations, case.scale)
    assert reasons == [(False, 8, False)]
    ids = gdpa.ACTIVATION_IDS
    assert calls == [("dq", ids["silu"], True, True, 9, 2, 2, case.scale, 1),
                     ("dq", ids["relu2"], True, True, 9, 2, 2, case.scale, 1)]
    assert (dq == 3.0).all()                                  # the stand-in wrote dq; Triton dK and dV
    _, want = reference(case, q, k, v, do, q_lengths, kv_lengths)
    assert rel_err(dk, want[1]) <= TOLERANCE[torch.float32] and rel_err(dv, want[2]) <= TOLERANCE[torch.float32]
    calls.clear()
    gdpa.gdpa_backward(do, q, k, v, q_lengths, kv_lengths, case.activations, case.scale, window=2)
    assert calls == [] and reasons[-1] == (False, 8, True)


@needs_gluon
def test_a_generated_package_loads_one_window_hopper_module():
    """In a generated package gdpa_hopper.py uses window_attention_hopper.py's helpers through the
    module window_attention.py loads (one module, one set of Gluon functions), whichever file asks
    first."""
    import os
    import subprocess
    import sys
    from genutil import ROOT
    snippet = """
import importlib, sys
sys.path.insert(0, sys.argv[1])
first, second = sys.argv[2:4]
mods = {name: importlib.import_module("kunlun_tiny.kernels." + name) for name in (first, second)}
loaded = {name: m._hopper_module() for name, m in mods.items()}
print(loaded["gdpa"]._common is loaded["window_attention"], sys.modules["kunlun_tiny.kernels.window_attention_hopper"]
      is loaded["window_attention"])
"""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    for order in (("gdpa", "window_attention"), ("window_attention", "gdpa")):
        p = subprocess.run([sys.executable, "-c", snippet, str(ROOT / "generated"), *order], capture_output=True,
                           text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        assert p.stdout.split() == ["True", "True"], (order, p.stdout)


def test_the_bench_reference_matches_the_tests_reference():
    """bench/gdpa_hopper.py checks the kernels against its own float32 reference (padded, per-head
    activations, NaN past a length read as zero): it agrees with the tests' float64 one."""
    import sys
    from genutil import ROOT
    sys.path.insert(0, str(ROOT / "bench"))
    import gdpa_hopper as bench
    case = Case(3, 3, 37, 20, 16, "gelu_tanh,silu,relu2", (37, 0, 9))
    q, k, v, do, q_lengths, _ = make_inputs(case, torch.float32)
    got = bench.reference(q, k, v, do, q_lengths, case.activations, case.scale)
    _, want = reference(case, q, k, v, do, q_lengths, None)
    for label, x, ref in zip(("dq", "dk", "dv"), got, want):
        assert rel_err(x, ref) <= 1e-5, label
