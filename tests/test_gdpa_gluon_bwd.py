"""bench/gdpa_gluon_bwd.py, the Gluon GDPA backward experiment (dK/dV and dQ), compiles for Hopper (sm_90) on this
machine without a GPU, and its schedule survives ptxas: in the overlap variant the wgmma groups
stay in flight (a handful of waits, two groups left in flight at the loop's waits, not a wait for
zero after every HGMMA, which is what ptxas does when the registers run out) and the activation's
MUFU.TANH ops of at least two query tiles issue while wgmma groups are in flight; the control
variant issues none there. Whether it computes the right numbers is checked on the GPU:
`python3 bench/gdpa_gluon_bwd.py --quick` compares dQ, dK and dV with the float32 reference."""
from __future__ import annotations

import re

import pytest

from genutil import ROOT
from opsload import import_file
from test_gdpa_gluon import _has_gluon_hopper, compile_only_rows

pytestmark = pytest.mark.skipif(not _has_gluon_hopper(), reason="Triton's Gluon for Hopper is not installed")

LINE = re.compile(r"(dkdv|dq) (overlap|control) D(\d+) (\d+)x(\d+) stages (\d+) warps (\d+): regs (\d+) stack (\d+) "
                  r"shared (\d+) tanh_under_wgmma (\d+) hgmma (\d+) waits (\d+) most_left_in_flight (\d+)")


def test_gluon_backward_compiles_and_keeps_its_schedule():
    rows = compile_only_rows("gdpa_gluon_bwd.py", LINE)
    assert len(rows) == 40, rows              # dK/dV and dQ x overlap and control x 5 configs x D 64, 128
    for kind, variant, d, bm, bn, stages, warps, regs, stack, shared, under, hgmma, waits, left in rows:
        where = (kind, variant, d, bm, bn, stages, warps)
        assert shared <= 227 * 1024, where              # fits one SM's shared memory
        assert stack == 0 or d == 128, where            # D 128's 32-row configs may spill a little
        scores_per_thread = bm * bn // (32 * warps)
        if variant == "overlap":
            assert waits <= 8 and hgmma >= 4 * waits, (where, hgmma, waits)   # not serialized
            assert left == 2, where                     # two groups left in flight at a wait
            assert under >= 2 * scores_per_thread, (where, under)
        else:
            assert under == 0 and left == 0, where


def test_wgmma_waits_reads_the_sass():
    waits = import_file(ROOT / "bench" / "gdpa_gluon_bwd.py", "gdpa_gluon_bwd_for_test").wgmma_waits
    sass = ["HGMMA.64x32x16.F32.BF16 R24, gdesc[UR12], RZ, !UPT, gsb0", "WARPGROUP.DEPBAR.LE gsb0, 0x2",
            "@P0 HGMMA.64x64x16.F32.BF16 R56, R8, gdesc[UR4], R56, gsb0", "WARPGROUP.DEPBAR.LE gsb0, 0x0",
            "MUFU.TANH R1, R2", "WARPGROUP.ARRIVE"]
    assert waits(sass) == (2, [2, 0])
    assert waits([]) == (0, [])


def test_the_kernels_formulas_give_the_reference_gradients():
    """The kernels' arithmetic in float64 torch: gelu_tanh and its derivative doubled (the halves in
    the output scale), dV = ½·scale·act₂(S)ᵀ·dO, dK = ½·scale·(dO·Vᵀ ⊙ act₂'(S))ᵀ·Q and dQ the same
    with K, against autograd; and the check fails without the ½."""
    import math

    import torch
    gdpa_reference = import_file(ROOT / "bench" / "benchutil.py", "benchutil_for_gluon_test").gdpa_reference
    torch.manual_seed(0)
    q, k, v, do = (torch.randn(2, 3, 40, 16, dtype=torch.float64) * 0.7 for _ in range(4))
    scale = 0.1
    _, dq_ref, dk_ref, dv_ref = gdpa_reference(q, k, v, do, scale)
    s = q @ k.mT
    c = math.sqrt(2 / math.pi)
    t = torch.tanh(c * (s + 0.044715 * s ** 3))
    act2, dact2 = s + s * t, (1 + t) + s * (1 - t * t) * c * (1 + 3 * 0.044715 * s * s)
    ds = (do @ v.mT) * dact2

    def worst(half: float) -> float:
        got = (half * scale * ds @ k, half * scale * ds.mT @ q, half * scale * act2.mT @ do)
        return max(((x - r.double()).norm() / r.norm()).item() for x, r in zip(got, (dq_ref, dk_ref, dv_ref)))
    assert worst(0.5) < 1e-5
    assert worst(1.0) > 0.5
