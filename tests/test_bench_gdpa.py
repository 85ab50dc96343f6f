"""bench/bench_gdpa.py's packed-layout timing runs what it claims: on the CPU (Triton interpreter,
fp32) its packed kernel steps give the padded steps' values on the valid rows, for self-attention
and for the PFFN's short KV. (The timing itself needs a GPU.)"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from opsload import import_file

pytest.importorskip("triton")
pytestmark = pytest.mark.skipif(torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") != "1",
                                reason="CPU interpreter check")

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_gdpa.py"


@pytest.fixture(scope="module")
def bench():
    module = import_file(BENCH, "kunlunc_bench_gdpa")
    module.DEVICE = "cpu"
    return module


@pytest.mark.parametrize("kind", ["self", "cross"])
def test_packed_steps_match_the_padded_ones(bench, kind):
    torch.manual_seed(0)
    B, T, S = 3, 37, 37 if kind == "self" else 16
    lengths = torch.tensor([0, 37, 20])
    kv_lengths = lengths if kind == "self" else None
    q, k, v, grad_out = bench.inputs(B, T, S, torch.float32)
    q_rows, grad_rows, starts = bench.packed_rows(lengths, torch.float32)
    assert q_rows.shape == (57, bench.H, bench.D) and starts.tolist() == [0, 0, 37]
    valid = torch.arange(T) < lengths[:, None]                      # [B, T]
    q = q.transpose(1, 2).clone()                                   # padded q holding the packed rows
    q[valid] = q_rows
    q = q.transpose(1, 2).contiguous()
    g = torch.zeros(B, T, bench.H, bench.D)
    g[valid] = grad_rows
    grad_out = g.transpose(1, 2).contiguous()
    scale = 1.0 / T
    fwd, both = bench.kernel_steps(q, k, v, grad_out, lengths, kv_lengths, scale)
    pfwd, pboth = bench.kernel_steps(q_rows, k, v, grad_rows, lengths, kv_lengths, scale, starts, T)
    out, packed = fwd(), pfwd()
    assert packed.shape == q_rows.shape
    torch.testing.assert_close(packed, out.transpose(1, 2)[valid], rtol=1e-5, atol=1e-5)
    (dq, dk, dv), (pdq, pdk, pdv) = both(), pboth()
    torch.testing.assert_close(pdq, dq.transpose(1, 2)[valid], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pdk, dk, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pdv, dv, rtol=1e-5, atol=1e-5)
    assert dk.abs().sum() > 0 and pdq.abs().sum() > 0


def test_jagged_kernel_ratios(bench):
    """Jagged over full kernel time per layout and stage: the padded jagged run over the padded
    full run, the packed jagged run over the packed full run."""
    kernel = {"gdpa_fwd": 2.0, "gdpa_fwd_bwd": 8.0, "jagged_fwd": 1.0, "jagged_fwd_bwd": 4.4,
              "packed_fwd": 1.6, "packed_fwd_bwd": 6.0, "packed_jagged_fwd": 0.8, "packed_jagged_fwd_bwd": 3.3}
    ratios = bench.jagged_kernel_ratios(kernel)
    assert ratios == pytest.approx({"jagged_kernel_vs_full_fwd": 0.5, "jagged_kernel_vs_full_fwd_bwd": 0.55,
                                    "packed_jagged_kernel_vs_full_fwd": 0.5,
                                    "packed_jagged_kernel_vs_full_fwd_bwd": 0.55}, rel=1e-12)
