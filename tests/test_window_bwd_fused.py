"""bench/window_bwd_fused.py: the one-pass window backward (dQ added atomically) against the
two-pass backward of templates/kernels/window_attention.py, in fp32 under Triton's interpreter
(CPU), at odd shapes, both bands, both layouts, with empty and length-1 examples."""
from __future__ import annotations

import pytest
import torch
import triton

from opsload import import_file
from packing import pack_rows, reversed_starts
from conftest import ROOT

pytestmark = pytest.mark.skipif(not triton.knobs.runtime.interpret,
                                reason="interpreter test (the GPU run is bench/window_bwd_fused.py)")


@pytest.fixture(scope="module")
def fused():
    return import_file(ROOT / "bench" / "window_bwd_fused.py", "_kunlunc_window_bwd_fused")


def _rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return ((x.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("D", [16, 48])
def test_matches_the_two_pass_backward(fused, packed, causal, D):
    wa = fused.wa
    B, H, T, window = 4, 2, 37, 5
    g = torch.Generator().manual_seed(D + 2 * causal + packed)
    q, k, v, do = (torch.randn(B, H, T, D, generator=g) for _ in range(4))
    lengths = torch.tensor([T, 0, 1, 20])
    kw = {}
    if packed:
        starts, rows = reversed_starts(lengths)
        q, k, v, do = (pack_rows(x, lengths, starts, rows) for x in (q, k, v, do))
        kw = {"starts": starts, "max_len": T}
    o, lse = wa.window_attention_forward(q, k, v, lengths, window, causal, 0.3, **kw)
    ref = wa.window_attention_backward(do, q, k, v, o, lse, lengths, window, causal, 0.3, **kw)
    got = fused.window_attention_backward_fused(do, q, k, v, o, lse, lengths, window, causal,
                                                0.3, **kw)
    for name, x, r in zip(("dq", "dk", "dv"), got, ref):
        assert x.shape == r.shape and x.dtype == r.dtype, name
        if packed:   # only the examples' rows are defined (pack_rows fills the rest with NaN)
            x, r = x[:int(lengths.sum())], r[:int(lengths.sum())]
        assert torch.isfinite(x).all(), name
        assert _rel(x, r) <= 1e-5, (name, _rel(x, r))
    assert got[0].abs().sum() > 0


def test_head_dims_past_128_are_refused(fused):
    q = torch.zeros(1, 1, 4, 160)
    lengths = torch.tensor([4])
    o, lse = fused.wa.window_attention_forward(q, q, q, lengths, 2, False, 1.0)
    with pytest.raises(ValueError, match="up to 128"):
        fused.window_attention_backward_fused(q, q, q, q, o, lse, lengths, 2, False, 1.0)
