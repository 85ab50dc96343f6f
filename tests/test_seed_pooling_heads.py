"""bench/seed_pooling_heads.py: the several-heads-a-program seed-pooling forward (an experiment,
slower on the H200: BENCHMARKS.md, seed pooling, twenty-first session) matches the production
kernel in fp32 under Triton's interpreter: odd lengths (1, 37, 70), empty and one-key examples,
1, 2 and 4 heads a program."""
from __future__ import annotations

import pytest
import triton

from conftest import ROOT
from opsload import import_file

pytestmark = pytest.mark.skipif(not triton.knobs.runtime.interpret,
                                reason="interpreter test (the GPU run is bench/seed_pooling_heads.py)")


def test_matches_the_production_kernel():
    heads = import_file(ROOT / "bench" / "seed_pooling_heads.py", "_kunlunc_seed_pooling_heads")
    rows = heads.quick("cpu")   # asserts each error <= 1e-5 itself
    assert {r["hp"] for r in rows} == {1, 2, 4} and {r["jagged"] for r in rows} == {False, True}
    assert len(rows) == 16 and all(r["rel_err"] <= 1e-5 for r in rows)
