"""bench/gdpa_bwd_fused.py: the one-pass GDPA backward (dQ added atomically) against the two-pass
backward of templates/kernels/gdpa.py, in fp32 under Triton's interpreter (CPU): odd shapes,
self-attention with a band and short KV, per-head activations (two head groups), padded and
packed queries, empty and length-1 examples."""
from __future__ import annotations

import pytest
import torch
import triton

from conftest import ROOT
from opsload import import_file
from packing import pack_rows, reversed_starts

pytestmark = pytest.mark.skipif(not triton.knobs.runtime.interpret,
                                reason="interpreter test (the GPU run is bench/gdpa_bwd_fused.py)")


@pytest.fixture(scope="module")
def fused():
    return import_file(ROOT / "bench" / "gdpa_bwd_fused.py", "_kunlunc_gdpa_bwd_fused")


def _rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return ((x.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("kind", ["self_band", "short_kv"])
@pytest.mark.parametrize("D", [16, 48])
def test_matches_the_two_pass_backward(fused, kind, packed, D):
    g = fused.g
    B, H, T = 4, 2, 37
    S = T if kind == "self_band" else 5
    gen = torch.Generator().manual_seed(D + packed + (kind == "short_kv") * 7)
    q, do = (torch.randn(B, H, T, D, generator=gen) * D ** -0.25 for _ in range(2))
    k, v = (torch.randn(B, H, S, D, generator=gen) * D ** -0.25 for _ in range(2))
    q_lengths = torch.tensor([T, 0, 1, 20])
    kv_lengths = None if kind == "self_band" else torch.tensor([5, 3, 1, 0])
    window, causal = (6, False) if kind == "self_band" else (-1, False)
    acts = "gelu_tanh,silu"
    kw = {}
    if packed:
        starts, rows = reversed_starts(q_lengths)
        q, do = (pack_rows(x, q_lengths, starts, rows) for x in (q, do))
        kw = {"q_starts": starts, "max_len": T}
    args = (do, q, k, v, q_lengths, kv_lengths, acts, 0.3, window, causal)
    ref = g.gdpa_backward(*args, **kw)
    got = fused.gdpa_backward_fused(*args, **kw)
    for name, x, r in zip(("dq", "dk", "dv"), got, ref):
        assert x.shape == r.shape and x.dtype == r.dtype, name
        if packed and name == "dq":   # only the examples' rows are defined
            x, r = x[:int(q_lengths.sum())], r[:int(q_lengths.sum())]
        assert torch.isfinite(x).all(), name
        assert _rel(x, r) <= 1e-5, (name, _rel(x, r))
    assert got[0].abs().sum() > 0
