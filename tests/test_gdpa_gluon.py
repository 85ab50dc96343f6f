"""bench/gdpa_gluon.py, the Gluon GDPA forward experiment, compiles for Hopper (sm_90) on this
machine without a GPU, and its schedule does what it is for: the activation's MUFU.TANH ops are
issued while a wgmma group is in flight (the tensor cores busy), at every config it offers, and
its control variant (the same kernel, serial like the Triton GDPA forward) issues none there; no
config overflows shared memory. Whether it computes the right numbers is
checked on the GPU: `python3 bench/gdpa_gluon.py` compares it with the float32 reference."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from genutil import ROOT
from opsload import import_file


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

LINE = re.compile(r"(overlap|control) D(\d+) (\d+)x(\d+) stages (\d+) warps (\d+): regs (\d+) stack (\d+) "
                  r"shared (\d+) tanh_under_wgmma (\d+)")


def compile_only_rows(script: str, line: re.Pattern) -> list[tuple]:
    """The lines of `python3 bench/<script> --compile-only` that `line` matches, each as its groups
    (names as they are, numbers as ints); the script must exit 0. Run apart, without
    TRITON_INTERPRET: triton.jit decides at import whether to compile or interpret."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    p = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--compile-only"],
                       capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    return [tuple(int(g) if g.isdigit() else g for g in m.groups())
            for m in map(line.match, p.stdout.splitlines()) if m]


def test_gluon_forward_compiles_and_overlaps_the_activation():
    rows = compile_only_rows("gdpa_gluon.py", LINE)
    assert len(rows) == 16, rows                        # overlap and control x 4 configs x D 64, 128
    for variant, head_dim, bm, bn, stages, warps, regs, stack, shared, under in rows:
        where = (variant, head_dim, bm, bn, stages, warps)
        assert shared <= 227 * 1024, where              # fits one SM's shared memory
        assert stack == 0 or (head_dim, bn) == (128, 128), where   # 64 x 128 at D 128 may spill a little
        scores_per_thread = bm * bn // (32 * warps)
        if variant == "overlap":   # well past the peeled first tile's activations: the loop's too
            assert under >= 1.5 * scores_per_thread, (where, under)
        else:                      # the control waits for each Q·Kᵀ before its activation
            assert under == 0, (where, under)


def test_overlap_count_reads_the_schedule():
    """The counter behind the test above: a tanh counts while an HGMMA's group is in flight (issued,
    or committed by gsb0 and not yet waited for down to zero); a DEPBAR.LE N leaves N groups."""
    count = import_file(ROOT / "bench" / "gdpa_gluon.py", "gdpa_gluon_for_test").activation_under_wgmma
    mma, commit = "HGMMA.64x64x16.F32.BF16 R24, gdesc[UR12], R24", "HGMMA.64x64x16.F32.BF16 R24, gdesc[UR12], R24, gsb0"
    tanh, wait0, wait1 = "MUFU.TANH R1, R2", "WARPGROUP.DEPBAR.LE gsb0, 0x0", "WARPGROUP.DEPBAR.LE gsb0, 0x1"
    assert count([mma, tanh, tanh, commit, wait0]) == 2            # between the HGMMAs of a group
    assert count([mma, commit, tanh, wait0, tanh]) == 1            # after the commit, before the wait
    assert count([mma, commit, mma, commit, wait1, tanh, wait0, tanh]) == 1   # one group left, then none
    assert count([mma, commit, wait0, tanh]) == 0
    assert count([tanh, mma, commit, wait0]) == 0
    assert count(["@P0 " + tanh]) == 0
