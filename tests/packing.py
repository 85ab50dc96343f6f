"""Packed-row test helpers shared by the kernel tests: [B, H, T, D] padded tensors to and from the
kernels' packed layout [rows, H, D], with examples laid out last to first.

Last to first: the interpreter runs example b's programs before example b+1's, so with example
b+1's rows *before* b's in memory, a store past b+1's length lands on rows of example b that are
already finished and corrupts them, which the comparison then sees.
"""
from __future__ import annotations

import torch


def reversed_starts(lengths: torch.Tensor, reverse: bool = True) -> tuple[torch.Tensor, int]:
    """(starts [B] int64 on lengths' device, rows used): example b's rows begin at starts[b],
    packed back to back, last example first (or in order with reverse=False)."""
    n = [int(x) for x in lengths.tolist()]
    order = reversed(range(len(n))) if reverse else range(len(n))
    starts = [0] * len(n)
    row = 0
    for b in order:
        starts[b] = row
        row += n[b]
    return torch.tensor(starts, dtype=torch.int64, device=lengths.device), row


def pack_rows(x: torch.Tensor, lengths, starts, rows: int) -> torch.Tensor:
    """[B, H, T, D] -> [rows, H, D], example b's first lengths[b] rows at starts[b]; every other
    row NaN (a sentinel that no valid result may read)."""
    out = torch.full((rows, x.shape[1], x.shape[3]), float("nan"), dtype=x.dtype, device=x.device)
    for b in range(x.shape[0]):
        n, s = min(int(lengths[b]), x.shape[2]), int(starts[b])
        out[s:s + n] = x[b, :, :n].transpose(0, 1)
    return out


def unpack_rows(x: torch.Tensor, lengths, starts, T: int) -> torch.Tensor:
    """[rows, H, D] -> [B, H, T, D] in float64, zeros past each length."""
    out = torch.zeros((lengths.shape[0], x.shape[1], T, x.shape[2]), dtype=torch.float64, device=x.device)
    for b in range(lengths.shape[0]):
        n, s = min(int(lengths[b]), T), int(starts[b])
        out[b, :, :n] = x[s:s + n].transpose(0, 1).double()
    return out
