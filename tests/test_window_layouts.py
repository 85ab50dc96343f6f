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
