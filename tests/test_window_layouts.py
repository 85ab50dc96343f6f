"""bench/window_layouts.py (a GPU script) on the CPU under the interpreter."""
from __future__ import annotations

import os
import sys

import pytest
import torch

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))


def test_window_layouts_runs_one_jagged_batch_in_both_layouts():
    """bench/window_layouts.py's launches (GPU script) on the CPU under the interpreter: the packed
    and padded runs of its jagged batch give the same rows (the comparison times like for like)."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("runs the kernels under TRITON_INTERPRET=1")
    import window_layouts as wl
    fns = wl.launches(3, 2, 37, 16, 5, True, device="cpu", dtype=torch.float32)
    assert set(fns) == {(layout, p) for layout in ("padded", "packed") for p in ("fwd", "bwd")}
    o_pad, _ = fns[("padded", "fwd")]()
    o_pack, _ = fns[("packed", "fwd")]()
    lengths = wl.bw.jagged_batch(3, 2, 37, 16, "cpu", torch.float32)[-1]
    valid = torch.arange(37)[None, :] < lengths[:, None]
    torch.testing.assert_close(o_pack, o_pad.transpose(1, 2)[valid])
    dq_pad, _, _ = fns[("padded", "bwd")]()
    dq_pack, _, _ = fns[("packed", "bwd")]()
    torch.testing.assert_close(dq_pack, dq_pad.transpose(1, 2)[valid])


def test_bench_window_jagged_ratios_both_ways():
    """bench_window's jagged ÷ full ratios: do_bench time and kernel time, each layout's jagged run
    over the padded full-length run of its stage."""
    import bench_window as bw
    results = {"ours fwd": {"ms": 2.0, "kernel_ms": 1.0}, "ours fwd+bwd": {"ms": 8.0, "kernel_ms": 6.0},
               "ours jagged fwd": {"ms": 1.2, "kernel_ms": 0.5}, "ours jagged fwd+bwd": {"ms": 4.0, "kernel_ms": 3.3},
               "ours packed jagged fwd": {"ms": 1.6, "kernel_ms": 0.52},
               "ours packed jagged fwd+bwd": {"ms": 4.4, "kernel_ms": 3.0}}
    expected = {"padded fwd": (0.6, 0.5), "padded fwd+bwd": (0.5, 0.55), "packed fwd": (0.8, 0.52),
                "packed fwd+bwd": (0.55, 0.5)}
    ratios = bw.jagged_ratios(results)
    assert ratios.keys() == expected.keys()
    for key, pair in expected.items():
        assert ratios[key] == pytest.approx(pair, rel=1e-12), key
