"""bench/gdpa_gluon_ws.py, the warp-specialized Gluon GDPA forward experiment (a TMA producer warp,
two consumer warpgroups), compiles for Hopper (sm_90) on this machine without a GPU: every config
fits one SM's shared memory, spills nothing, hands registers between its partitions (setmaxnreg),
and keeps its wgmma groups unserialized (ptxas serializes them, a wait after every HGMMA, where a
partition's registers run out: the in-warpgroup overlap schedule did, and is left out). Whether it
computes the right numbers is checked on the GPU (`python3 bench/gdpa_gluon_ws.py --quick`)."""
from __future__ import annotations

import re

import pytest

from test_gdpa_gluon import _has_gluon_hopper, compile_only_rows

pytestmark = pytest.mark.skipif(not _has_gluon_hopper(), reason="Triton's Gluon for Hopper is not installed")

LINE = re.compile(r"D(\d+) (\d+)x(\d+) stages (\d+)(?: bf16x2)?: regs (\d+) stack (\d+) shared (\d+) "
                  r"tanh_under_wgmma (\d+) hgmma (\d+) waits (\d+) setmaxnreg (\d+)")


def test_warp_specialized_forward_compiles_unserialized():
    rows = compile_only_rows("gdpa_gluon_ws.py", LINE)
    assert len(rows) == 10, rows                         # 5 configs (one with the bf16x2 activation) x D 64, 128
    for d, bm, bn, stages, regs, stack, shared, under, hgmma, waits, setmaxnreg in rows:
        where = (d, bm, bn, stages)
        assert shared <= 227 * 1024, where               # fits one SM's shared memory
        assert stack == 0 and regs <= 168, where         # three warpgroups an SM: 168 x 384 registers
        assert setmaxnreg > 0, where                     # the partitions' register split is in the code
        assert waits <= 8 and hgmma >= 4 * waits, (where, hgmma, waits)   # not serialized
        assert under == 0, where                         # each consumer's activation: after its S wait


FWD_LINE = re.compile(r"fwd D(\d+) (padded|packed) act (\d+): regs (\d+) stack (\d+) shared (\d+) hgmma (\d+) "
                      r"waits (\d+) tanh (\d+) setmaxnreg (\d+)")


def test_production_scope_forward_compiles_unserialized():
    """bench/gdpa_hopper_fwd.py, the same schedule with jagged padded or packed rows, heads views,
    the head table and every activation (gelu_tanh and relu compiled here): it fits, spills nothing,
    keeps its wgmma groups, and issues one tanh a score for gelu_tanh and none for relu."""
    rows = compile_only_rows("gdpa_hopper_fwd.py", FWD_LINE)
    assert len(rows) == 8, rows                          # D 64, 128 x padded, packed x 2 activations
    for d, layout, act, regs, stack, shared, hgmma, waits, tanh, setmaxnreg in rows:
        where = (d, layout, act)
        assert shared <= 227 * 1024 and stack == 0 and regs <= 168 and setmaxnreg > 0, where
        assert waits <= 8 and hgmma >= 4 * waits, (where, hgmma, waits)
        block_n = 128 if d == 64 else 64
        scores = 2 * 64 * block_n // 128                 # a consumer thread's scores, peeled tile and loop
        assert tanh == (2 * scores if act == 0 else 0), (where, tanh)   # two consumers
