"""A longest-first order of a batch's examples in one small Triton kernel, against torch.argsort.

    python3 bench/lpt_order.py [--json PATH]

Why. Seed pooling's programs each take one example, so in a jagged batch a long example launched
last runs alone at the end. Launching examples longest first (16c9486) gained about 7% of the
jagged level-1 forward's kernel time on the H200, but `torch.argsort(lengths, descending=True)`
cost about 35 µs a call, more than the gain, and it was reverted (BENCHMARKS.md, seed pooling,
twenty-first session). Here the order is one launch: program p ranks examples p·BLOCK_I ... against
all B lengths (rank = longer examples, plus equal ones earlier in the batch) and writes
order[rank] = i, the stable descending order. This times it beside argsort at a few batch sizes by
GPU kernel time; if it costs a few µs, 16c9486 with this order is worth measuring again.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the scripts beside this one
from benchutil import kernel_ms, write_json  # noqa: E402


@triton.jit
def _rank_kernel(LENGTHS, ORDER, B, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):
    i = tl.program_id(0) * BLOCK_I + tl.arange(0, BLOCK_I)
    i_ok = i < B
    li = tl.load(LENGTHS + i, mask=i_ok, other=0)
    rank = tl.zeros([BLOCK_I], tl.int32)
    for j0 in range(0, B, BLOCK_J):
        j = j0 + tl.arange(0, BLOCK_J)
        lj = tl.load(LENGTHS + j, mask=j < B, other=0)
        ahead = (lj[None, :] > li[:, None]) | ((lj[None, :] == li[:, None]) & (j[None, :] < i[:, None]))
        rank += tl.sum((ahead & (j < B)[None, :]).to(tl.int32), 1)
    tl.store(ORDER + rank, i.to(tl.int32), mask=i_ok)


def longest_first(lengths: torch.Tensor, block_i: int = 64, block_j: int = 128) -> torch.Tensor:
    """int32 [B]: the examples by length, longest first, ties in batch order."""
    B = lengths.shape[0]
    order = torch.empty(B, dtype=torch.int32, device=lengths.device)
    if B:
        _rank_kernel[(triton.cdiv(B, block_i),)](lengths, order, B, BLOCK_I=block_i, BLOCK_J=block_j)
    return order


def reference(lengths: torch.Tensor) -> torch.Tensor:
    return torch.sort(lengths, descending=True, stable=True).indices.to(torch.int32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, "lpt_order.json") if out else None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("lpt_order: needs a CUDA GPU (tests/test_lpt_order.py checks it on CPU)")
    start, rows = time.time(), []
    for B in (256, 1024, 4096, 16384):
        lengths = torch.randint(0, 2049, (B,), device="cuda")
        assert torch.equal(longest_first(lengths), reference(lengths))
        row = dict(B=B, rank_kernel_us=1e3 * kernel_ms(lambda: longest_first(lengths)),
                   argsort_us=1e3 * kernel_ms(lambda: torch.argsort(lengths, descending=True).to(torch.int32)))
        rows.append(row)
        print(f"B {B:6d}: rank kernel {row['rank_kernel_us']:7.1f} us, argsort {row['argsort_us']:7.1f} us")
    write_json(args.json, rows, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
