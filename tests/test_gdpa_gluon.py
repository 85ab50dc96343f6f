"""bench/gdpa_gluon.py, the Gluon GDPA forward experiment, compiles for Hopper (sm_90) on this
machine without a GPU, and its schedule does what it is for: the activation's MUFU.TANH ops are
issued while a wgmma group is open (the tensor cores busy), for every score of a tile, at every
config it offers; no config spills or overflows shared memory. (Triton's own GDPA forward issues
none there: it waits for Q·Kᵀ before the activation.) Whether it computes the right numbers is
checked on the GPU: `python3 bench/gdpa_gluon.py` compares it with the float32 reference."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from genutil import ROOT


def _has_gluon_hopper() -> bool:
    try:
        if importlib.util.find_spec("triton.experimental.gluon") is None:
            return False
        from triton.backends.nvidia import compiler  # noqa: F401
        from triton.experimental.gluon.language.nvidia.hopper import warpgroup_mma  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _has_gluon_hopper(), reason="Triton's Gluon for Hopper is not installed")

LINE = re.compile(r"D(\d+) (\d+)x(\d+) stages (\d+) warps (\d+): regs (\d+) stack (\d+) shared (\d+) "
                  r"tanh_under_wgmma (\d+)")


def test_gluon_forward_compiles_and_overlaps_the_activation():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}   # compile, not interpret
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "gdpa_gluon.py"), "--compile-only"],
                       capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = [tuple(map(int, m.groups())) for m in map(LINE.match, p.stdout.splitlines()) if m]
    assert len(rows) == 8, p.stdout                     # 4 configs x D 64, 128
    for head_dim, bm, bn, stages, warps, regs, stack, shared, under in rows:
        assert stack == 0, (head_dim, bm, bn)           # no spilled registers
        assert shared <= 227 * 1024, (head_dim, bm, bn)  # fits one SM's shared memory
        scores_per_thread = bm * bn // (32 * warps)
        assert under >= scores_per_thread, (head_dim, bm, bn, under)


def test_overlap_count_reads_the_schedule():
    """The counter behind the test above: tanh between two HGMMAs of an open group counts; tanh
    after a wait, or after the last HGMMA before a wait, does not."""
    spec = importlib.util.spec_from_file_location("gdpa_gluon_for_test", ROOT / "bench" / "gdpa_gluon.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    count = module.activation_under_wgmma
    assert count(["HGMMA.64x64x16", "MUFU.TANH", "MUFU.TANH", "HGMMA.64x64x16", "WARPGROUP.DEPBAR.LE"]) == 2
    assert count(["HGMMA.64x64x16", "WARPGROUP.DEPBAR.LE", "MUFU.TANH", "HGMMA.64x64x16"]) == 0
    assert count(["HGMMA.64x64x16", "MUFU.TANH", "WARPGROUP.DEPBAR.LE", "HGMMA.64x64x16"]) == 0
    assert count(["MUFU.TANH", "HGMMA.64x64x16", "MUFU.TANH"]) == 0
