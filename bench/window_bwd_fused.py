"""Experiment: the sliding-window backward in one pass over the band, dQ accumulated atomically.

    python3 bench/window_bwd_fused.py [--json PATH]     # on a GPU: check, then time both backwards

Why. The window-attention backward (templates/kernels/window_attention.py) runs two passes over
the band: dK/dV per key tile (Q·Kᵀ, dO·Vᵀ, Pᵀ·dO, dSᵀ·Q: 4 GEMMs a tile
pair) and dQ per query tile, which recomputes Q·Kᵀ, P and dO·Vᵀ to get dS·K (3 GEMMs). Window
attention is the largest group of the models' GPU time (kunlun_60g: 76 of 185 ms, about three
quarters of it backward). This variant adds dS·K to the dK/dV pass and accumulates it into an
fp32 dQ buffer with atomic adds (FlashAttention-2's scheme): 5 GEMMs a tile pair instead of 7,
one exp2 a score instead of two, for BLOCK_M x D atomics a tile pair and one conversion of the
buffer. Whether the atomics cost less than the recomputation is for the GPU to say: this script
checks the fused backward against the two-pass one and times both at bench_window.py's shapes,
on packed jagged rows (the models' layout; --full adds full lengths).

Scope (an experiment the compiler does not select): the kernel file's layouts, bands and head
dims (BLOCK_D <= 128), one autotuned config list (the dK/dV one). Its gradients are not bitwise
deterministic (atomic order). tests/test_window_bwd_fused.py checks it against the two-pass
backward in Triton's interpreter (CPU).
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
import triton
import triton.language as tl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_window import SHAPES, pack_jagged, wa  # noqa: E402
from benchutil import compare_backwards, describe_comparison, gpu_script_args, write_json  # noqa: E402

# The two-pass kernels' helpers, resolved by the kernel below through this module's globals.
_program_tile, _example_rows, _head = wa._program_tile, wa._example_rows, wa._head
_load_rows, _store_rows, _load_row_stats = wa._load_rows, wa._store_rows, wa._load_row_stats
_tile_ranges, _tile_count, _tile_start, _band_mask = (
    wa._tile_ranges, wa._tile_count, wa._tile_start, wa._band_mask)


# The delta pass the kernel file had before its dQ kernel formed delta itself (the one-pass
# backward has no dQ kernel to fold it into).
@triton.jit(do_not_specialize=["T"])
def _bwd_delta_kernel(O, DO, DELTA, LENGTHS, STARTS,
                      stride_ob, stride_oh, stride_ot, stride_od,
                      stride_gb, stride_gh, stride_gt, stride_gd,
                      H, T,
                      HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
                      PACKED: tl.constexpr):
    """delta_i = rowsum(dO_i ⊙ O_i) in fp32; 0 past the length (dO there may be garbage)."""
    start_m, b, h, bh = _program_tile(T, H, BLOCK_M)
    length, row0, limit = _example_rows(tl.load(LENGTHS + b),
                                        tl.load(STARTS + b) if PACKED else b, T, PACKED)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    o = _load_rows(_head(O, b, h, row0, stride_ob, stride_oh, stride_ot), offs_m, offs_d,
                   stride_ot, stride_od, length, HEAD_D, BLOCK_D, True)
    do = _load_rows(_head(DO, b, h, row0, stride_gb, stride_gh, stride_gt), offs_m, offs_d,
                    stride_gt, stride_gd, length, HEAD_D, BLOCK_D, True)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(DELTA + bh.to(tl.int64) * T + offs_m, delta, mask=offs_m < T)



@triton.jit
def _fused_tiles(dk, dv, k, v, q_base, do_base, dq_base, LSE, DELTA,
                 stride_qt, stride_qd, stride_gt, stride_gd, stride_at, stride_ad,
                 offs_n, offs_d, lo, mid_lo, mid_hi, hi, length, LEFT, RIGHT, scale_log2,
                 HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
                 MASKED: tl.constexpr, PRECISION: tl.constexpr):
    """window_attention._dkdv_tiles plus each query tile's dQ share, dS·K, added atomically."""
    for i in tl.range(0, _tile_count(lo, mid_lo, mid_hi, hi, BLOCK_M, MASKED)):
        offs_m = _tile_start(i, lo, mid_lo, mid_hi, BLOCK_M, MASKED) + tl.arange(0, BLOCK_M)
        q = _load_rows(q_base, offs_m, offs_d, stride_qt, stride_qd, length, HEAD_D, BLOCK_D, MASKED)
        do = _load_rows(do_base, offs_m, offs_d, stride_gt, stride_gd, length, HEAD_D, BLOCK_D,
                        MASKED)
        lse, delta = _load_row_stats(LSE, DELTA, offs_m, length, MASKED)
        qk_t = tl.dot(k, tl.trans(q), input_precision=PRECISION)  # [BLOCK_N, BLOCK_M]
        p_t = tl.exp2(qk_t * scale_log2 - lse[None, :])
        if MASKED:
            p_t = tl.where(_band_mask(offs_n, offs_m, length, RIGHT, LEFT), p_t, 0.0)
        dv = tl.dot(p_t.to(do.dtype), do, dv, input_precision=PRECISION)
        dp_t = tl.dot(v, tl.trans(do), input_precision=PRECISION)
        ds_t = (p_t * (dp_t - delta[None, :])).to(q.dtype)
        dk = tl.dot(ds_t, q, dk, input_precision=PRECISION)
        # keys past the length are zero rows of k: their dS adds nothing here
        dq = tl.dot(tl.trans(ds_t), k, input_precision=PRECISION)  # [BLOCK_M, BLOCK_D]
        rows_ok = offs_m < length
        if HEAD_D == BLOCK_D:
            keep = rows_ok[:, None]
        else:
            keep = rows_ok[:, None] & (offs_d < HEAD_D)[None, :]
        tl.atomic_add(dq_base + offs_m[:, None] * stride_at + offs_d[None, :] * stride_ad, dq,
                      mask=keep, sem="relaxed")
    return dk, dv


@triton.jit(do_not_specialize=["T", "LEFT", "RIGHT"])
def _bwd_fused_kernel(Q, K, V, DO, LSE, DELTA, DK, DV, DQA, LENGTHS, STARTS,
                      stride_qb, stride_qh, stride_qt, stride_qd,
                      stride_kb, stride_kh, stride_kt, stride_kd,
                      stride_vb, stride_vh, stride_vt, stride_vd,
                      stride_gb, stride_gh, stride_gt, stride_gd,
                      stride_dkb, stride_dkh, stride_dkt, stride_dkd,
                      stride_dvb, stride_dvh, stride_dvt, stride_dvd,
                      stride_ab, stride_ah, stride_at, stride_ad,
                      H, T, LEFT, RIGHT, scale, scale_log2,
                      HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
                      PACKED: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """window_attention._bwd_dkdv_kernel, also adding dQ (unscaled, fp32) into DQA."""
    scale, scale_log2 = tl.cast(scale, tl.float32), tl.cast(scale_log2, tl.float32)
    start_n, b, h, bh = _program_tile(T, H, BLOCK_N)
    length, row0, limit = _example_rows(tl.load(LENGTHS + b),
                                        tl.load(STARTS + b) if PACKED else b, T, PACKED)
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    dk_base = _head(DK, b, h, row0, stride_dkb, stride_dkh, stride_dkt)
    dv_base = _head(DV, b, h, row0, stride_dvb, stride_dvh, stride_dvt)
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    if start_n >= length:
        _store_rows(dk_base, offs_n, offs_d, stride_dkt, stride_dkd, dk, limit, HEAD_D, BLOCK_D)
        _store_rows(dv_base, offs_n, offs_d, stride_dvt, stride_dvd, dv, limit, HEAD_D, BLOCK_D)
        return
    k = _load_rows(_head(K, b, h, row0, stride_kb, stride_kh, stride_kt), offs_n, offs_d,
                   stride_kt, stride_kd, length, HEAD_D, BLOCK_D, True)
    v = _load_rows(_head(V, b, h, row0, stride_vb, stride_vh, stride_vt), offs_n, offs_d,
                   stride_vt, stride_vd, length, HEAD_D, BLOCK_D, True)
    q_base = _head(Q, b, h, row0, stride_qb, stride_qh, stride_qt)
    do_base = _head(DO, b, h, row0, stride_gb, stride_gh, stride_gt)
    dq_base = _head(DQA, b, h, row0, stride_ab, stride_ah, stride_at)
    lse_base = LSE + bh.to(tl.int64) * T
    delta_base = DELTA + bh.to(tl.int64) * T
    lo, mid_lo, mid_hi, hi = _tile_ranges(start_n, length, RIGHT, LEFT, BLOCK_N, BLOCK_M)
    dk, dv = _fused_tiles(dk, dv, k, v, q_base, do_base, dq_base, lse_base, delta_base,   # edges
                          stride_qt, stride_qd, stride_gt, stride_gd, stride_at, stride_ad,
                          offs_n, offs_d, lo, mid_lo, mid_hi, hi, length, LEFT, RIGHT,
                          scale_log2, HEAD_D, BLOCK_D, BLOCK_M, True, PRECISION)
    dk, dv = _fused_tiles(dk, dv, k, v, q_base, do_base, dq_base, lse_base, delta_base,   # interior
                          stride_qt, stride_qd, stride_gt, stride_gd, stride_at, stride_ad,
                          offs_n, offs_d, lo, mid_lo, mid_hi, hi, length, LEFT, RIGHT,
                          scale_log2, HEAD_D, BLOCK_D, BLOCK_M, False, PRECISION)
    keep = (offs_n < length)[:, None]
    _store_rows(dk_base, offs_n, offs_d, stride_dkt, stride_dkd, tl.where(keep, dk * scale, 0.0),
                limit, HEAD_D, BLOCK_D)
    _store_rows(dv_base, offs_n, offs_d, stride_dvt, stride_dvd, tl.where(keep, dv, 0.0),
                limit, HEAD_D, BLOCK_D)


# the autotuner times each config on the same buffer: it zeroes the dQ accumulator before each run
_FUSED = triton.autotune(configs=wa._configs(wa._DKDV_SHAPES, False), key=wa._KEY,
                         reset_to_zero=["DQA"])(_bwd_fused_kernel)


def window_attention_backward_fused(grad_out, q, k, v, o, lse, lengths, window: int, causal: bool,
                                    scale: float, starts=None, max_len=None):
    """window_attention_backward's gradients (same arguments and layouts) from one pass over the
    band (after a delta pass): dK, dV and an fp32 dQ accumulated atomically, then cast."""
    lay = wa._Layout(q, k, v, lengths, starts, max_len)
    meta = wa._head_meta(q, lay.packed)
    if meta["BLOCK_D"] > 128:
        raise ValueError("window_bwd_fused: head dims up to 128 only")
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    dq_acc = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    if q.numel() == 0 or lse.numel() == 0:
        return dq_acc.to(q.dtype), dk, dv
    lse = lse.to(torch.float32).contiguous()
    left, right = wa._band(window, causal, lay.T)
    delta = lay.row_stats(q.device)
    wa._launch(_bwd_delta_kernel, wa._grid(lay.B, lay.H, lay.T, "BLOCK_M"),
               o, grad_out, delta, lay.lengths, lay.starts, *lay.strides(o), *lay.strides(grad_out),
               lay.H, lay.T, HEAD_D=meta["HEAD_D"], BLOCK_D=meta["BLOCK_D"],
               BLOCK_M=16 if wa._interpreting() else 64, PACKED=lay.packed)
    wa._launch(_FUSED, wa._grid(lay.B, lay.H, lay.T, "BLOCK_N"),
               q, k, v, grad_out, lse, delta, dk, dv, dq_acc, lay.lengths, lay.starts,
               *lay.strides(q), *lay.strides(k), *lay.strides(v), *lay.strides(grad_out),
               *lay.strides(dk), *lay.strides(dv), *lay.strides(dq_acc), lay.H, lay.T, left, right,
               float(scale), float(scale) * wa._LOG2E, **meta)
    return (dq_acc * scale).to(q.dtype), dk, dv


def main() -> int:
    args = gpu_script_args(__doc__, "window_bwd_fused.json")
    if args is None:
        return 1
    rows, start = [], time.time()
    for B, H, T, D, window in SHAPES:
        for causal in (True, False):
            gen = torch.Generator(device="cuda").manual_seed(0)
            q, k, v, do = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, generator=gen)
                           for _ in range(4))
            scale = 1 / math.sqrt(D)
            full = torch.full((B,), T, device="cuda", dtype=torch.int64)
            jagged = torch.randint(0, T + 1, (B,), device="cuda", generator=gen)
            pq, pk, pv, pdo, lengths, starts, _ = pack_jagged((q, k, v, do), jagged)
            row = {"B": B, "H": H, "T": T, "D": D, "window": window, "causal": causal}
            layouts = [("packed jagged", (pdo, pq, pk, pv, lengths), {"starts": starts, "max_len": T})]
            if args.full:
                layouts.append(("full", (do, q, k, v, full), {}))
            for layout, (g, qq, kk, vv, n), kw in layouts:
                o, lse = wa.window_attention_forward(qq, kk, vv, n, window, causal, scale, **kw)
                row[layout] = compare_backwards(
                    lambda: wa.window_attention_backward(g, qq, kk, vv, o, lse, n, window, causal,
                                                         scale, **kw),
                    lambda: window_attention_backward_fused(g, qq, kk, vv, o, lse, n, window,
                                                            causal, scale, **kw))
            rows.append(row)
            print(f"B{B} H{H} T{T} D{D} W{window} {'causal' if causal else 'bidir '}: "
                  + "; ".join(describe_comparison(lay, row[lay]) for lay, _, _ in layouts),
                  flush=True)
            write_json(args.json, rows)
    write_json(args.json, rows, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
