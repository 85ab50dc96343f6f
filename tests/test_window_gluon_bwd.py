"""bench/window_gluon_bwd.py, the Gluon sliding-window backward experiment (dK/dV and dQ), compiles for Hopper (sm_90)
without a GPU and its schedule survives ptxas (as tests/test_gdpa_gluon_bwd.py checks for GDPA):
in the overlap variant a handful of wgmma waits with two groups left in flight, and the softmax's
MUFU.EX2 of two query tiles at least issued while wgmma groups are in flight; the control issues
none there. Its numbers are checked on the GPU (`python3 bench/window_gluon_bwd.py --quick`); the
tile walk and the formulas are checked here against the float32 reference in plain torch."""
from __future__ import annotations

import re

import pytest
import torch

from genutil import ROOT
from opsload import import_file
from test_gdpa_gluon import _has_gluon_hopper, compile_only_rows

LINE = re.compile(r"(dkdv|dq) (overlap|control) D(\d+) (\d+)x(\d+) stages (\d+) warps (\d+): regs (\d+) stack (\d+) "
                  r"shared (\d+) ex2_under_wgmma (\d+) hgmma (\d+) waits (\d+) most_left_in_flight (\d+)")


@pytest.mark.skipif(not _has_gluon_hopper(), reason="Triton's Gluon for Hopper is not installed")
def test_window_gluon_backward_compiles_and_keeps_its_schedule():
    rows = compile_only_rows("window_gluon_bwd.py", LINE)
    assert len(rows) == 32, rows              # dK/dV and dQ x overlap and control x 4 configs x D 64, 128
    for kind, variant, d, bm, bn, stages, warps, regs, stack, shared, under, hgmma, waits, left in rows:
        where = (kind, variant, d, bm, bn, stages, warps)
        assert shared <= 227 * 1024, where
        assert stack == 0 or d == 128, where            # D 128's 32-row configs may spill
        scores_per_thread = bm * bn // (32 * warps)
        if variant == "overlap":
            assert waits <= 8 and hgmma >= 4 * waits and left == 2, (where, hgmma, waits, left)
            assert under >= 2 * scores_per_thread, (where, under)
        else:
            assert under == 0 and left == 0, where


@pytest.mark.skipif(not _has_gluon_hopper(), reason="the experiment imports Triton's Gluon")
@pytest.mark.parametrize("T, block_m, block_n, window, causal", [
    (256, 32, 64, 32, True), (256, 32, 64, 32, False), (384, 16, 64, 1000, False), (512, 32, 128, 5, False)])
def test_the_kernels_tile_walks_and_formulas_give_the_reference_gradients(T, block_m, block_n, window, causal):
    """The kernels' arithmetic in float64 torch, tile by tile as they walk them: dK/dV over the query
    tiles from `first` to `last` of each owned key tile, dQ over the key tiles of each owned query
    tile (owned tiles twice the walked ones), every pair masked to the band, exp2 of the
    log2-scaled scores less lse2, dS = P ⊙ (dP − delta), the scale at the end; against autograd's
    gradients, and failing with a band one row narrower."""
    w = import_file(ROOT / "bench" / "window_gluon_bwd.py", "window_gluon_bwd_for_test")
    torch.manual_seed(0)
    q, k, v, do = (torch.randn(1, 2, T, 16, dtype=torch.float64) for _ in range(4))
    scale = 0.3
    o, lse, dq_ref, dk_ref, dv_ref = w.reference(q, k, v, do, window, causal, scale)
    delta = (do * o.double()).sum(-1)
    lse2 = lse.double() * w.LOG2E

    def masked_p(rows, keys, left, right):           # [len(keys), len(rows)]
        p_t = torch.exp2(k[..., keys, :] @ q[..., rows, :].mT * scale * w.LOG2E - lse2[..., rows][..., None, :])
        rel = rows[None, :] - keys[:, None]
        return torch.where((rel >= -right) & (rel <= left), p_t, 0.0)

    def ds_t(p_t, rows, keys):
        return p_t * (v[..., keys, :] @ do[..., rows, :].mT - delta[..., rows][..., None, :])

    def walk(left: int, right: int) -> float:
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        for n0 in range(0, T, block_n):                 # dK/dV: owned keys, walked query tiles
            first, last = max(n0 - right, 0) // block_m, -(-min(n0 + block_n + left, T) // block_m)
            assert last - first >= 2                   # the overlap schedule's assumption
            keys = torch.arange(n0, n0 + block_n)
            for t in range(first, last):
                rows = torch.arange(t * block_m, (t + 1) * block_m)
                p_t = masked_p(rows, keys, left, right)
                dv[..., keys, :] += p_t @ do[..., rows, :]
                dk[..., keys, :] += ds_t(p_t, rows, keys) @ q[..., rows, :]
        own, step = block_n, block_m                    # dQ: owned queries (the larger tile), walked keys
        for m0 in range(0, T, own):
            first, last = max(m0 - left, 0) // step, -(-min(m0 + own + right, T) // step)
            assert last - first >= 2
            rows = torch.arange(m0, m0 + own)
            for t in range(first, last):
                keys = torch.arange(t * step, (t + 1) * step)
                dq[..., rows, :] += ds_t(masked_p(rows, keys, left, right), rows, keys).mT @ k[..., keys, :]
        return max(((got - ref.double()).norm() / ref.norm()).item()
                   for got, ref in ((dq * scale, dq_ref), (dk * scale, dk_ref), (dv, dv_ref)))

    left, right = w.band(window, causal, T)
    assert walk(left, right) < 1e-5
    if left < T - 1:                                   # a band one row narrower: the check fails
        assert walk(left - 1, right) > 1e-3
