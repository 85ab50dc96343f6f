"""bench/lpt_order.py: the one-launch longest-first order equals a stable descending sort, with
ties, zeros, one example, a batch that is not a multiple of either block, and B = 0 (fp-free:
int64 and int32 lengths), under Triton's interpreter."""
from __future__ import annotations

import pytest
import torch
import triton

from conftest import ROOT
from opsload import import_file

pytestmark = pytest.mark.skipif(not triton.knobs.runtime.interpret,
                                reason="interpreter test (the GPU run is bench/lpt_order.py)")


@pytest.fixture(scope="module")
def lpt():
    return import_file(ROOT / "bench" / "lpt_order.py", "_kunlunc_lpt_order")


@pytest.mark.parametrize("B", [0, 1, 5, 37, 200])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_matches_a_stable_descending_sort(lpt, B, dtype):
    gen = torch.Generator().manual_seed(B)
    lengths = torch.randint(0, 9, (B,), generator=gen, dtype=dtype)   # many ties
    order = lpt.longest_first(lengths, block_i=16, block_j=32)
    assert order.dtype == torch.int32 and order.shape == (B,)
    assert torch.equal(order, lpt.reference(lengths))
    assert lengths[order.long()].tolist() == sorted(lengths.tolist(), reverse=True)
