"""bench/window_gluon_fwd.py, the Gluon window forward experiment, compiles for Hopper (sm_90) on this
machine without a GPU, and its schedule does what it is for: the softmax's MUFU.EX2 ops are issued
while a wgmma group is in flight, at every config and layout it offers (a ptxas that serialized the
wgmmas, as an accumulator read across the loop's back edge made it do in the first version, would
leave one or two there), and its control issues none there; nothing spills and every config fits
one SM's shared memory. What it computes is checked on the GPU (`python3 bench/window_gluon_fwd.py
--quick`, against the Triton forward on NaN-filled outputs)."""
from __future__ import annotations

import re

import pytest

from test_gdpa_gluon import _has_gluon_hopper, compile_only_rows

pytestmark = pytest.mark.skipif(not _has_gluon_hopper(), reason="Triton's Gluon for Hopper is not installed")

LINE = re.compile(r"(overlap|control)\s+D(\d+) (padded|packed) \((\d+), (\d+), (\d+), (\d+)\): regs (\d+) "
                  r"stack (\d+) shared (\d+) ex2_under_wgmma (\d+)")


def test_window_forward_compiles_and_overlaps_the_softmax():
    rows = compile_only_rows("window_gluon_fwd.py", LINE)
    assert len(rows) == 2 * 2 * 2 * 7, rows             # overlap/control x D 64, 128 x layouts x configs
    for variant, head_dim, layout, bm, bn, stages, warps, regs, stack, shared, under in rows:
        where = (variant, head_dim, layout, bm, bn, stages, warps)
        assert shared <= 227 * 1024 and stack == 0, where
        scores_per_thread = bm * bn // (32 * warps)
        if variant == "overlap":   # every score's exp2 of a loop tile under the previous tile's P·V
            assert under >= scores_per_thread, (where, under)
        else:                      # the control waits for each wgmma at once
            assert under == 0, (where, under)
