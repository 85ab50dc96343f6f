"""Sliding-window softmax self-attention in Triton: FlashAttention-style forward and backward.

Semantics (those of `window_attention_reference(..., kind="softmax")` in the ops module):
q, k, v are [B, H, T, D] (any strides); lengths [B] says how many positions of example b exist.
Query i may attend key j when both exist (i, j < lengths[b]) and j lies in the band

    i - window <= j <= i + window      (bidirectional)
    i - window <= j <= i               (causal)

written below as  -LEFT <= j - i <= RIGHT  (LEFT = window; RIGHT = window, or 0 when causal;
window >= T is full attention). With s_ij = scale * q_i·k_j over the allowed keys,

    lse_i = log Σ_j exp(s_ij),   P_ij = exp(s_ij - lse_i),   O_i = Σ_j P_ij v_j.

Rows that do not exist output 0 and have lse = -inf (the logsumexp of no key); a valid row always
sees at least itself, so it is never empty. The backward, with dO given and
delta_i = Σ_d dO_id O_id = Σ_j P_ij (dO_i·v_j), is

    dV_j = Σ_i P_ij dO_i,   dS_ij = P_ij (dO_i·v_j - delta_i),
    dQ_i = scale Σ_j dS_ij k_j,   dK_j = scale Σ_i dS_ij q_i,

and every gradient of a position that does not exist is 0.

Tiling. Each program owns one tile of positions of one (b, h) and loops over tiles of the other
axis, keeping its own tile and fp32 accumulators on chip:
  forward   own BLOCK_M queries,  loop over BLOCK_N keys    (online softmax, exp2 domain)
  dQ        own BLOCK_M queries,  loop over BLOCK_N keys    (recomputes P from the saved lse)
  dK/dV     own BLOCK_N keys,     loop over BLOCK_M queries (recomputes P^T, no atomics)
The dQ kernel runs first and also forms delta = rowsum(dO ⊙ O) of its rows (it holds dO already;
one more tile load) for the dK/dV kernel after it. Grids are 1-D, tile index fastest, so
neighbouring programs share K/V (or Q/dO) tiles in L2.

Band and length skipping. For own positions [start, end) (end = min(start + BLOCK, length)) and
the other axis allowed at offsets [-before, after] from an own position, `_tile_ranges` gives
    [lo, mid_lo)      left edge tiles    (masked)
    [mid_lo, mid_hi)  interior tiles     (every pair allowed, every load in bounds: no mask)
    [mid_hi, hi)      right edge tiles   (masked)
with lo = max(start - before, 0) and hi = min(end + after, length): tiles outside the band or
past the length are never visited, and a program whose own tile starts past the length only
writes zeros and returns. Each kernel runs two pipelined loops: one over both edges (the tile
index jumps over the interior) and one over the interior. The head dim D is padded to BLOCK_D
(a power of two >= 16) with masked loads. fp32 inputs use IEEE-precision dots (no TF32).

Layouts. Padded: q, k, v are [B, H, T, D] (any strides) and every row up to T is written (zeros
past a length). Packed (`starts` given): q, k, v are [N, H, D], the batch's rows back to back with
no padding; example b's rows begin at row starts[b] (CSR offsets[:-1]) and T is a bound on every
length. The kernels reach an example's rows through that int64 start, and never read or write a
row outside the examples' rows: the layout for jagged towers that skip padding everywhere, in the
GEMMs and norms around the attention too.

Eagerly, the first call at a new (T, window, causal, D, dtype) autotunes over a few Hopper
configs (BLOCK_M, BLOCK_N, warps, stages); under TRITON_INTERPRET=1 one small config is used.

On sm_90 (H100/H200), bf16/fp16 at D 64 or 128, the backward's dK/dV runs the Gluon kernel of
window_attention_hopper.py instead (K and V read by wgmma from shared memory; 1.03-1.21x this
file's kernel on the H200), after this file's dQ kernel, which writes delta for it; eagerly or
inside a custom op, not under torch.compile's tracing. KUNLUNC_HOPPER_BWD=0 turns it off. At D 64
the forward runs that file's Gluon forward too (1.10-1.12x this file's, full and packed jagged
rows; HOPPER_FWD there), on the same conditions; KUNLUNC_HOPPER_FWD=0 turns it off.

Kernels are launched through `torch.library.wrap_triton` so that torch.compile can trace them.
This file depends on torch and triton only; it is copied as-is into generated packages.
"""
import hashlib
import inspect
import os
from pathlib import Path

import torch
import triton
import triton.language as tl

__all__ = ["unsupported", "window_attention_backward", "window_attention_forward"]

# torch.compile's AOTAutograd cache keys a graph's Triton ops by their kernels' source and the
# globals those read, not by the autotuner's config lists or the host code that launches them
# (torch 2.11-2.13): after an edit of this file a warm cache would run the graph compiled before,
# with the old configs and its old pick (BENCHMARKS.md, seed pooling, twenty-first session). Every
# kernel here reads this digest of the whole file, which puts the file into that key.
try:
    _FILE_DIGEST = tl.constexpr(int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:15], 16))
except OSError:  # no file to read (imported from a zip, say): keyed as torch keys it without this
    _FILE_DIGEST = tl.constexpr(0)

# Autotune timings are kept on disk (Triton's cache dir, keyed by the kernel source, the configs,
# the tuning key's values and the GPU), so a new process reuses them instead of timing every config
# of every kernel again at its first steps; the benchmarks always ran so (TRITON_CACHE_AUTOTUNING=1
# in bench/gpu_run.sh). Triton >= 3.3; older versions tune in every process as before.
_AUTOTUNE_CACHE = ({"cache_results": True}
                   if "cache_results" in inspect.signature(triton.autotune).parameters else {})

_LOG2E = 1.4426950408889634  # log2(e): the kernels work in base 2 (exp2 is the fast path)
_MAX_HEAD_DIM = 256
_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


# KUNLUNC_AUTOTUNE=0: launch each kernel's first (default) config untuned. Autotuning compiles
# every config for every new shape (kunlun_60g's first training step: 31 s on the H200); tests
# and quick runs can skip it at some cost in kernel speed.
_AUTOTUNE = os.environ.get("KUNLUNC_AUTOTUNE", "1") != "0"


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


# ----------------------------------------------------------------------------- device helpers

@triton.jit
def _tile_ranges(start, length, before, after, OWN: tl.constexpr, STEP: tl.constexpr):
    """Tiles of the other axis (step STEP) seen by own positions [start, start + OWN).

    Other position o may pair with own position p when -before <= o - p <= after and o < length.
    Returns lo, mid_lo, mid_hi, hi: [lo, mid_lo) and [mid_hi, hi) need a mask, [mid_lo, mid_hi)
    holds whole tiles where every pair is allowed for every valid own row (and o < length).
    """
    end = tl.minimum(start + OWN, length)  # own rows past the length are discarded later
    lo = tl.maximum(start - before, 0) // STEP * STEP
    hi = tl.minimum(end + after, length)
    hi_tiles = (hi + STEP - 1) // STEP * STEP
    # Interior: o >= (last own row) - before, and o + STEP - 1 <= (first own row) + after.
    mid_lo = (tl.maximum(end - 1 - before, 0) + STEP - 1) // STEP * STEP
    mid_lo = tl.minimum(tl.maximum(mid_lo, lo), hi_tiles)
    mid_hi = tl.minimum(start + after + 1, length) // STEP * STEP
    mid_hi = tl.maximum(mid_hi, mid_lo)
    return lo, mid_lo, mid_hi, hi


@triton.jit
def _tile_count(lo, mid_lo, mid_hi, hi, STEP: tl.constexpr, EDGES: tl.constexpr):
    """Tiles one loop visits: the edge tiles [lo, mid_lo) + [mid_hi, hi), or the interior."""
    if EDGES:
        n = (mid_lo - lo) // STEP + (hi - mid_hi + STEP - 1) // STEP  # (never negative)
    else:
        n = (mid_hi - mid_lo) // STEP
    return n


@triton.jit
def _tile_start(i, lo, mid_lo, mid_hi, STEP: tl.constexpr, EDGES: tl.constexpr):
    """First position of the i-th tile of that loop; the edge loop jumps over the interior, so
    both edges share one pipelined loop (one copy of the loop body, not two)."""
    if EDGES:
        start = lo + i * STEP
        start = tl.where(start >= mid_lo, start + (mid_hi - mid_lo), start)
    else:
        start = mid_lo + i * STEP
    return start


@triton.jit
def _band_mask(own, other, length, before, after):
    """[len(own), len(other)] bool: the pair is in the band and the other position exists."""
    rel = other[None, :] - own[:, None]
    return (rel >= -before) & (rel <= after) & (other[None, :] < length)


@triton.jit
def _load_rows(base, rows, cols, stride_r, stride_c, limit,
               HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, CHECK_ROWS: tl.constexpr):
    """Tile [len(rows), BLOCK_D]; rows >= limit and padded columns read as 0 (never garbage)."""
    ptrs = base + rows[:, None] * stride_r + cols[None, :] * stride_c
    if CHECK_ROWS:
        mask = rows[:, None] < limit
        if HEAD_D != BLOCK_D:
            mask = mask & (cols[None, :] < HEAD_D)
        x = tl.load(ptrs, mask=mask, other=0.0)
    elif HEAD_D != BLOCK_D:
        x = tl.load(ptrs, mask=cols[None, :] < HEAD_D, other=0.0)
    else:
        x = tl.load(ptrs)
    return x


@triton.jit
def _store_rows(base, rows, cols, stride_r, stride_c, value, limit,
                HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr):
    ptrs = base + rows[:, None] * stride_r + cols[None, :] * stride_c
    mask = rows[:, None] < limit
    if HEAD_D != BLOCK_D:
        mask = mask & (cols[None, :] < HEAD_D)
    tl.store(ptrs, value.to(base.dtype.element_ty), mask=mask)


@triton.jit
def _program_tile(T, H, BLOCK: tl.constexpr):
    """(tile start, b, h, bh) of this program; the tile index varies fastest."""
    pid = tl.program_id(0)
    n_tiles = tl.cdiv(T, BLOCK)
    bh = pid // n_tiles
    b = bh // H
    return (pid % n_tiles) * BLOCK, b, bh - b * H, bh


@triton.jit
def _example_rows(length, start, T, PACKED: tl.constexpr):
    """(length, row0, limit) of an example, from its loaded length and start (unused padded).

    Padded layout: example b's rows are its own [T] axis (row0 = 0) and every row up to T is
    written (zeros past the length). Packed layout (PACKED): example b's rows start at row
    STARTS[b] of one [N] axis shared by the batch, and nothing past its length is written (those
    rows belong to the next example).

    The kernels load LENGTHS[b] and STARTS[b] themselves rather than pass the pointers here:
    torch.compile's analysis of a kernel counts every pointer given to a helper whose result
    feeds a store address as written, and would copy the caller's lengths back after each
    launch (tests/test_kernel_mutation.py)."""
    length = tl.minimum(tl.maximum(length.to(tl.int32), 0), T)
    if PACKED:
        row0 = start.to(tl.int64)
        limit = length
    else:
        row0 = start.to(tl.int64) * 0  # a 0-d int64 that every backend accepts
        limit = T
    return length, row0, limit


@triton.jit
def _head(X, b, h, row0, stride_b, stride_h, stride_t):
    """Pointer to row 0 of example b, head h (int64 offsets)."""
    return X + b.to(tl.int64) * stride_b + h.to(tl.int64) * stride_h + row0 * stride_t


@triton.jit
def _bounds_after_loops(length, limit, start):
    """(length, limit) again, for the masks of a tile's stores after its loops; only called where
    start < length, so max(x, start + 1) == x. Written so that the compiler cannot prove them
    equal to the values the tile's loads used: it then forms the row masks anew rather than
    keeping the load's mask live through both loops, which in the packed layout (limit ==
    length) cost up to 53 registers a thread on sm_90, a program fewer on an SM or a spill
    (`python3 bench/compile_kernels.py --resources --packed`)."""
    return tl.maximum(length, start + 1), tl.maximum(limit, start + 1)


# ----------------------------------------------------------------------------- forward

@triton.jit
def _fwd_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_kd, stride_vt, stride_vd,
               offs_m, offs_d, lo, mid_lo, mid_hi, hi, length, LEFT, RIGHT, scale_log2,
               HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
               MASKED: tl.constexpr, PRECISION: tl.constexpr):
    """Online-softmax update of (acc, l, m) over the edge key tiles (MASKED) or the interior
    ones; m is in log2 units."""
    for i in tl.range(0, _tile_count(lo, mid_lo, mid_hi, hi, BLOCK_N, MASKED)):
        offs_n = _tile_start(i, lo, mid_lo, mid_hi, BLOCK_N, MASKED) + tl.arange(0, BLOCK_N)
        k = _load_rows(k_base, offs_n, offs_d, stride_kt, stride_kd, length, HEAD_D, BLOCK_D, MASKED)
        qk = tl.dot(q, tl.trans(k), input_precision=PRECISION)
        if MASKED:
            s = tl.where(_band_mask(offs_m, offs_n, length, LEFT, RIGHT), qk * scale_log2,
                         float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            # A row with no allowed key yet keeps m = -inf; subtract 0 there, not -inf (NaN).
            m_sub = tl.where(m_new == float("-inf"), 0.0, m_new)
            p = tl.exp2(s - m_sub[:, None])
        else:
            m_new = tl.maximum(m_i, tl.max(qk, 1) * scale_log2)
            m_sub = m_new
            p = tl.exp2(qk * scale_log2 - m_sub[:, None])
        alpha = tl.exp2(m_i - m_sub)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = _load_rows(v_base, offs_n, offs_d, stride_vt, stride_vd, length, HEAD_D, BLOCK_D, MASKED)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit(do_not_specialize=["T", "LEFT", "RIGHT"])
def _fwd_kernel(Q, K, V, O, LSE, LENGTHS, STARTS,
                stride_qb, stride_qh, stride_qt, stride_qd,
                stride_kb, stride_kh, stride_kt, stride_kd,
                stride_vb, stride_vh, stride_vt, stride_vd,
                stride_ob, stride_oh, stride_ot, stride_od,
                H, T, LEFT, RIGHT, scale_log2,
                HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr, PACKED: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    tl.static_assert(_FILE_DIGEST >= 0)  # keys torch.compile's caches to this file
    scale_log2 = tl.cast(scale_log2, tl.float32)  # torch.compile passes Python floats as fp64
    start_m, b, h, bh = _program_tile(T, H, BLOCK_M)
    length, row0, limit = _example_rows(tl.load(LENGTHS + b),
                                        tl.load(STARTS + b) if PACKED else b, T, PACKED)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    o_base = _head(O, b, h, row0, stride_ob, stride_oh, stride_ot)
    lse_ptrs = LSE + bh.to(tl.int64) * T + offs_m
    if start_m >= length:  # the whole tile is padding: zeros out, nothing computed
        zeros = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
        _store_rows(o_base, offs_m, offs_d, stride_ot, stride_od, zeros, limit, HEAD_D, BLOCK_D)
        tl.store(lse_ptrs, tl.full([BLOCK_M], float("-inf"), tl.float32), mask=offs_m < T)
        return

    q_base = _head(Q, b, h, row0, stride_qb, stride_qh, stride_qt)
    k_base = _head(K, b, h, row0, stride_kb, stride_kh, stride_kt)
    v_base = _head(V, b, h, row0, stride_vb, stride_vh, stride_vt)
    q = _load_rows(q_base, offs_m, offs_d, stride_qt, stride_qd, length, HEAD_D, BLOCK_D, True)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    lo, mid_lo, mid_hi, hi = _tile_ranges(start_m, length, LEFT, RIGHT, BLOCK_M, BLOCK_N)
    # Edge tiles (masked), then interior tiles (no mask).
    acc, l_i, m_i = _fwd_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_kd, stride_vt,
                               stride_vd, offs_m, offs_d, lo, mid_lo, mid_hi, hi, length, LEFT,
                               RIGHT, scale_log2, HEAD_D, BLOCK_D, BLOCK_N, True, PRECISION)
    acc, l_i, m_i = _fwd_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_kd, stride_vt,
                               stride_vd, offs_m, offs_d, lo, mid_lo, mid_hi, hi, length, LEFT,
                               RIGHT, scale_log2, HEAD_D, BLOCK_D, BLOCK_N, False, PRECISION)

    # Rows past the length were computed on zero queries: discard them (0 out, lse -inf).
    length, limit = _bounds_after_loops(length, limit, start_m)
    keep = (offs_m < length) & (l_i > 0)
    inv_l = tl.where(keep, 1.0 / tl.where(keep, l_i, 1.0), 0.0)
    _store_rows(o_base, offs_m, offs_d, stride_ot, stride_od, acc * inv_l[:, None], limit,
                HEAD_D, BLOCK_D)
    lse = tl.where(keep, (m_i + tl.log2(tl.where(keep, l_i, 1.0))) * 0.6931471805599453,
                   float("-inf"))
    tl.store(lse_ptrs, lse, mask=offs_m < T)


# ----------------------------------------------------------------------------- backward

@triton.jit
def _load_lse2(LSE, rows, length, CHECK_ROWS: tl.constexpr):
    """lse of query rows in log2 units; a missing row gets +inf, so P = 0."""
    if CHECK_ROWS:
        lse = tl.load(LSE + rows, mask=rows < length, other=float("inf"))
    else:
        lse = tl.load(LSE + rows)
    return lse * 1.4426950408889634


@triton.jit
def _load_row_stats(LSE, DELTA, rows, length, CHECK_ROWS: tl.constexpr):
    """lse (in log2 units, _load_lse2) and delta of query rows; delta is 0 on a missing row."""
    lse = _load_lse2(LSE, rows, length, CHECK_ROWS)
    if CHECK_ROWS:
        delta = tl.load(DELTA + rows, mask=rows < length, other=0.0)
    else:
        delta = tl.load(DELTA + rows)
    return lse, delta


@triton.jit
def _dkdv_tiles(dk, dv, k, v, q_base, do_base, LSE, DELTA,
                stride_qt, stride_qd, stride_gt, stride_gd,
                offs_n, offs_d, lo, mid_lo, mid_hi, hi, length, LEFT, RIGHT, scale_log2,
                HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
                MASKED: tl.constexpr, PRECISION: tl.constexpr):
    """Accumulates dK (unscaled) and dV of one key tile over the edge query tiles (MASKED) or
    the interior ones. Works on transposed tiles [BLOCK_N, BLOCK_M] so that no P is transposed."""
    for i in tl.range(0, _tile_count(lo, mid_lo, mid_hi, hi, BLOCK_M, MASKED)):
        offs_m = _tile_start(i, lo, mid_lo, mid_hi, BLOCK_M, MASKED) + tl.arange(0, BLOCK_M)
        q = _load_rows(q_base, offs_m, offs_d, stride_qt, stride_qd, length, HEAD_D, BLOCK_D, MASKED)
        do = _load_rows(do_base, offs_m, offs_d, stride_gt, stride_gd, length, HEAD_D, BLOCK_D,
                        MASKED)
        lse, delta = _load_row_stats(LSE, DELTA, offs_m, length, MASKED)
        qk_t = tl.dot(k, tl.trans(q), input_precision=PRECISION)  # [BLOCK_N, BLOCK_M]
        p_t = tl.exp2(qk_t * scale_log2 - lse[None, :])
        if MASKED:  # own = keys, other = queries: i - j in [-RIGHT, LEFT]
            p_t = tl.where(_band_mask(offs_n, offs_m, length, RIGHT, LEFT), p_t, 0.0)
        dv = tl.dot(p_t.to(do.dtype), do, dv, input_precision=PRECISION)
        dp_t = tl.dot(v, tl.trans(do), input_precision=PRECISION)
        ds_t = p_t * (dp_t - delta[None, :])
        dk = tl.dot(ds_t.to(q.dtype), q, dk, input_precision=PRECISION)
    return dk, dv


@triton.jit(do_not_specialize=["T", "LEFT", "RIGHT"])
def _bwd_dkdv_kernel(Q, K, V, DO, LSE, DELTA, DK, DV, LENGTHS, STARTS,
                     stride_qb, stride_qh, stride_qt, stride_qd,
                     stride_kb, stride_kh, stride_kt, stride_kd,
                     stride_vb, stride_vh, stride_vt, stride_vd,
                     stride_gb, stride_gh, stride_gt, stride_gd,
                     stride_dkb, stride_dkh, stride_dkt, stride_dkd,
                     stride_dvb, stride_dvh, stride_dvt, stride_dvd,
                     H, T, LEFT, RIGHT, scale, scale_log2,
                     HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr, PACKED: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    tl.static_assert(_FILE_DIGEST >= 0)  # keys torch.compile's caches to this file
    # torch.compile passes Python floats as fp64: compute in fp32 as eager launches do
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
    if start_n >= length:  # the whole key tile is padding: zero gradients, nothing computed
        _store_rows(dk_base, offs_n, offs_d, stride_dkt, stride_dkd, dk, limit, HEAD_D, BLOCK_D)
        _store_rows(dv_base, offs_n, offs_d, stride_dvt, stride_dvd, dv, limit, HEAD_D, BLOCK_D)
        return

    k = _load_rows(_head(K, b, h, row0, stride_kb, stride_kh, stride_kt), offs_n, offs_d,
                   stride_kt, stride_kd, length, HEAD_D, BLOCK_D, True)
    v = _load_rows(_head(V, b, h, row0, stride_vb, stride_vh, stride_vt), offs_n, offs_d,
                   stride_vt, stride_vd, length, HEAD_D, BLOCK_D, True)
    q_base = _head(Q, b, h, row0, stride_qb, stride_qh, stride_qt)
    do_base = _head(DO, b, h, row0, stride_gb, stride_gh, stride_gt)
    lse_base = LSE + bh.to(tl.int64) * T
    delta_base = DELTA + bh.to(tl.int64) * T
    # Queries that see key j satisfy j - RIGHT <= i <= j + LEFT.
    lo, mid_lo, mid_hi, hi = _tile_ranges(start_n, length, RIGHT, LEFT, BLOCK_N, BLOCK_M)
    dk, dv = _dkdv_tiles(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qt,
                         stride_qd, stride_gt, stride_gd, offs_n, offs_d, lo, mid_lo, mid_hi, hi,
                         length, LEFT, RIGHT, scale_log2, HEAD_D, BLOCK_D, BLOCK_M, True,
                         PRECISION)
    dk, dv = _dkdv_tiles(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qt,
                         stride_qd, stride_gt, stride_gd, offs_n, offs_d, lo, mid_lo, mid_hi, hi,
                         length, LEFT, RIGHT, scale_log2, HEAD_D, BLOCK_D, BLOCK_M, False,
                         PRECISION)
    # Keys past the length were never masked out of P^T: drop their rows here.
    length, limit = _bounds_after_loops(length, limit, start_n)
    keep = (offs_n < length)[:, None]
    _store_rows(dk_base, offs_n, offs_d, stride_dkt, stride_dkd, tl.where(keep, dk * scale, 0.0),
                limit, HEAD_D, BLOCK_D)
    _store_rows(dv_base, offs_n, offs_d, stride_dvt, stride_dvd, tl.where(keep, dv, 0.0),
                limit, HEAD_D, BLOCK_D)


@triton.jit
def _dq_tiles(dq, q, do, lse, delta, k_base, v_base, stride_kt, stride_kd, stride_vt, stride_vd,
              offs_m, offs_d, lo, mid_lo, mid_hi, hi, length, LEFT, RIGHT, scale_log2,
              HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
              MASKED: tl.constexpr, PRECISION: tl.constexpr):
    """Accumulates dQ (unscaled) of one query tile over the edge key tiles (MASKED) or the
    interior ones."""
    for i in tl.range(0, _tile_count(lo, mid_lo, mid_hi, hi, BLOCK_N, MASKED)):
        offs_n = _tile_start(i, lo, mid_lo, mid_hi, BLOCK_N, MASKED) + tl.arange(0, BLOCK_N)
        k = _load_rows(k_base, offs_n, offs_d, stride_kt, stride_kd, length, HEAD_D, BLOCK_D, MASKED)
        v = _load_rows(v_base, offs_n, offs_d, stride_vt, stride_vd, length, HEAD_D, BLOCK_D, MASKED)
        qk = tl.dot(q, tl.trans(k), input_precision=PRECISION)
        p = tl.exp2(qk * scale_log2 - lse[:, None])
        if MASKED:
            p = tl.where(_band_mask(offs_m, offs_n, length, LEFT, RIGHT), p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=PRECISION)
    return dq


@triton.jit(do_not_specialize=["T", "LEFT", "RIGHT"])
def _bwd_dq_kernel(Q, K, V, O, DO, LSE, DELTA, DQ, LENGTHS, STARTS,
                   stride_qb, stride_qh, stride_qt, stride_qd,
                   stride_kb, stride_kh, stride_kt, stride_kd,
                   stride_vb, stride_vh, stride_vt, stride_vd,
                   stride_gb, stride_gh, stride_gt, stride_gd,
                   stride_ob, stride_oh, stride_ot, stride_od,
                   stride_dqb, stride_dqh, stride_dqt, stride_dqd,
                   H, T, LEFT, RIGHT, scale, scale_log2,
                   HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr, PACKED: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """dQ of one query tile; it also forms delta = rowsum(dO ⊙ O) of its rows (fp32) and writes
    it to DELTA for the dK/dV kernel, launched after this one: no separate pass over O and dO."""
    tl.static_assert(_FILE_DIGEST >= 0)  # keys torch.compile's caches to this file
    # torch.compile passes Python floats as fp64: compute in fp32 as eager launches do
    scale, scale_log2 = tl.cast(scale, tl.float32), tl.cast(scale_log2, tl.float32)
    start_m, b, h, bh = _program_tile(T, H, BLOCK_M)
    length, row0, limit = _example_rows(tl.load(LENGTHS + b),
                                        tl.load(STARTS + b) if PACKED else b, T, PACKED)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    dq_base = _head(DQ, b, h, row0, stride_dqb, stride_dqh, stride_dqt)
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    delta_ptrs = DELTA + bh.to(tl.int64) * T + offs_m
    if start_m >= length:  # the whole query tile is padding: zero gradient and delta, nothing computed
        _store_rows(dq_base, offs_m, offs_d, stride_dqt, stride_dqd, dq, limit, HEAD_D, BLOCK_D)
        # every row < T gets a delta: the Hopper dK/dV kernel reads whole 32-row tiles of it by TMA,
        # the last of a walk reaching past its row's length (where its score is 0, times delta)
        tl.store(delta_ptrs, tl.zeros([BLOCK_M], tl.float32), mask=offs_m < T)
        return

    q = _load_rows(_head(Q, b, h, row0, stride_qb, stride_qh, stride_qt), offs_m, offs_d,
                   stride_qt, stride_qd, length, HEAD_D, BLOCK_D, True)
    do = _load_rows(_head(DO, b, h, row0, stride_gb, stride_gh, stride_gt), offs_m, offs_d,
                    stride_gt, stride_gd, length, HEAD_D, BLOCK_D, True)
    o = _load_rows(_head(O, b, h, row0, stride_ob, stride_oh, stride_ot), offs_m, offs_d,
                   stride_ot, stride_od, length, HEAD_D, BLOCK_D, True)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)   # 0 on rows past the length
    tl.store(delta_ptrs, delta, mask=offs_m < T)
    lse = _load_lse2(LSE + bh.to(tl.int64) * T, offs_m, length, True)
    k_base = _head(K, b, h, row0, stride_kb, stride_kh, stride_kt)
    v_base = _head(V, b, h, row0, stride_vb, stride_vh, stride_vt)
    lo, mid_lo, mid_hi, hi = _tile_ranges(start_m, length, LEFT, RIGHT, BLOCK_M, BLOCK_N)
    dq = _dq_tiles(dq, q, do, lse, delta, k_base, v_base, stride_kt, stride_kd, stride_vt,
                   stride_vd, offs_m, offs_d, lo, mid_lo, mid_hi, hi, length, LEFT, RIGHT,
                   scale_log2, HEAD_D, BLOCK_D, BLOCK_N, True, PRECISION)
    dq = _dq_tiles(dq, q, do, lse, delta, k_base, v_base, stride_kt, stride_kd, stride_vt,
                   stride_vd, offs_m, offs_d, lo, mid_lo, mid_hi, hi, length, LEFT, RIGHT,
                   scale_log2, HEAD_D, BLOCK_D, BLOCK_N, False, PRECISION)
    # Rows past the length were computed on zero queries (lse = +inf gives P = 0): drop them.
    length, limit = _bounds_after_loops(length, limit, start_m)
    dq = tl.where((offs_m < length)[:, None], dq * scale, 0.0)
    _store_rows(dq_base, offs_m, offs_d, stride_dqt, stride_dqd, dq, limit, HEAD_D, BLOCK_D)


# ----------------------------------------------------------------------------- autotuning

def _configs(shapes, large_d: bool):
    """triton.Configs from (BLOCK_M, BLOCK_N, num_warps, num_stages); one small one when
    interpreting. For BLOCK_D = 256 the fp32 accumulators and the K/V pipeline buffers only fit
    with 64-wide tiles and two stages."""
    shapes = shapes[:1] if _interpreting() else shapes[1:] if _AUTOTUNE else shapes[1:2]
    if large_d:
        shapes = [(min(m, 64), min(n, 64), w, min(s, 2)) for m, n, w, s in shapes]
        shapes = list(dict.fromkeys(shapes))
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s)
            for m, n, w, s in shapes]


# First entry: the interpreter's config (small tiles with BLOCK_M != BLOCK_N, so CPU tests
# cross several tiles and the edge/interior split). The rest: Hopper candidates, the second the
# untuned default (KUNLUNC_AUTOTUNE=0): one that spills no registers on sm_90 at D = 64 or 128,
# padded or packed (bench/compile_kernels.py --resources [--packed], specialized as a launch is,
# Triton 3.9's ptxas; the previous defaults spilled 88-976 bytes a thread at D = 128).
_FWD_SHAPES = [(32, 16, 4, 1), (64, 64, 8, 3), (128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3),
               (128, 32, 4, 4), (64, 64, 4, 3), (64, 32, 4, 3), (64, 32, 4, 4)]
_DQ_SHAPES = [(32, 16, 4, 1), (64, 32, 8, 3), (128, 32, 4, 3), (128, 64, 8, 3), (64, 64, 4, 3),
              (64, 32, 4, 3), (128, 32, 8, 2), (64, 64, 8, 3)]
# dK/dV: BLOCK_N is the key tile a program owns, BLOCK_M the query tiles it loops over. At D = 128
# (32, 128, 4, 3), (64, 128, 8, 3) and (64, 64, 4, 3) spill 24-976 bytes a thread on sm_90, padded
# or packed (bench/compile_kernels.py --resources [--packed], Triton 3.9's ptxas); the others do not.
# The last two: two-stage twins of the configs the H200 picked at 11 of the window benchmark's
# 12 keys (64 x 64 and 32 x 64, 4 warps, 3 stages; bench/results/2026-11-30-h200-s12/call4),
# with fewer registers a thread on sm_90 (Triton 3.6): 32 x 64 at D = 64 146 against 175 (three
# programs an SM instead of two), at D = 128 238 against 255; 64 x 64 at D = 64 233 against 255.
_DKDV_SHAPES = [(16, 32, 4, 1), (64, 32, 8, 3), (32, 128, 4, 3), (64, 128, 8, 3), (64, 64, 4, 3),
                (32, 64, 4, 3), (32, 128, 8, 2), (32, 64, 8, 3), (64, 64, 8, 3), (32, 32, 4, 3),
                (32, 64, 4, 2), (64, 64, 4, 2)]
# PACKED: packed rows tune apart from padded ones (the eleventh session saw a packed launch run
# 2x slower on the config tuned for a padded launch of the same key)
_KEY = ["T", "LEFT", "RIGHT", "HEAD_D", "PACKED"]  # (dtype is added by the autotuner)


def _tuned(kernel, shapes):
    """{large_d: autotuned kernel}: a config list for BLOCK_D <= 128 and one for 256."""
    return {large: triton.autotune(configs=_configs(shapes, large), key=_KEY, **_AUTOTUNE_CACHE)(kernel)
            for large in (False, True)}


_FWD = _tuned(_fwd_kernel, _FWD_SHAPES)
_DQ = _tuned(_bwd_dq_kernel, _DQ_SHAPES)
_DKDV = _tuned(_bwd_dkdv_kernel, _DKDV_SHAPES)


def _plain_eager(args) -> bool:
    """True when running eagerly on plain tensors (no torch.compile, no dispatch-mode tracer)."""
    return (not torch.compiler.is_compiling() and torch._C._len_torch_dispatch_stack() == 0
            and all(type(a) is torch.Tensor for a in args if isinstance(a, torch.Tensor)))


def _launch(kernel, grid, *args, **kwargs):
    """Launches kernel[grid](*args, **kwargs) through torch.library.wrap_triton, so that
    torch.compile / make_fx / export trace it as a kernel call. Eagerly on plain tensors the
    wrapper's dispatch costs about a millisecond of Python per launch and buys nothing, so
    there the kernel is launched directly (as torch.library.triton_op does): on CUDA through
    bound_launch.launch_tuned where it is there (the autotuner and the JIT once a key, not every
    call), else through Triton's own launch."""
    if not _plain_eager(args):
        try:
            kernel = torch.library.wrap_triton(kernel)
        except RuntimeError:  # older torch refuses interpreted kernels: plain launch
            pass
    elif args[0].is_cuda and not _interpreting():
        launch_tuned = _launch_tuned()
        if launch_tuned is not None:
            launch_tuned(kernel, grid, args, kwargs)
            return
    kernel[grid](*args, **kwargs)


def _launch_tuned():
    """bound_launch.launch_tuned, reached through the Hopper module beside this file (which loads
    bound_launch.py as the package's kernel files share it); None without it (no Gluon)."""
    hopper = _hopper_module()
    return getattr(hopper, "launch_tuned", None)


# ----------------------------------------------------------------------------- the Hopper kernels

# KUNLUNC_HOPPER_BWD=0: the Triton backward everywhere (A/B timing, or a Triton without Gluon).
_HOPPER_BWD = os.environ.get("KUNLUNC_HOPPER_BWD", "1") != "0"
# KUNLUNC_HOPPER_FWD=0: the Triton forward everywhere.
_HOPPER_FWD = os.environ.get("KUNLUNC_HOPPER_FWD", "1") != "0"
_HOPPER = {}


def _hopper_module():
    """window_attention_hopper.py beside this file (the forward and backward in Gluon for sm_90), imported on
    first use; None where this Triton has no Gluon for Hopper."""
    if "module" not in _HOPPER:
        import importlib.util
        import sys
        from pathlib import Path
        name = f"{__name__}_hopper"
        module = sys.modules.get(name)          # already loaded (by a sibling kernel file)
        try:
            if module is None:
                spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("window_attention_hopper.py"))
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
        except (ImportError, AttributeError, FileNotFoundError, TypeError):
            sys.modules.pop(name, None)
            module = None
        _HOPPER["module"] = module
    return _HOPPER["module"]


def _hopper_reason(tensors: dict, packed: bool, B: int, H: int, switch: bool, name: str,
                   head_dims: str | None = None) -> str | None:
    """Why the Gluon kernels of window_attention_hopper.py cannot run here (None: they can): the
    switch `name` off, off sm_90, traced, no Gluon, the head dim off in that module's table
    `head_dims` (where one is named), or what that module's `unsupported` says."""
    if not switch:
        return f"{name}=0"
    if tensors["q"].device.type != "cuda" or _interpreting():
        return "not on a CUDA device"
    if not _plain_eager(tensors.values()):
        return "traced (torch.compile, make_fx): the Triton kernels are traceable"
    module = _hopper_module()
    if module is None:
        return "this Triton has no Gluon for Hopper"
    D = tensors["q"].shape[-1]
    if head_dims is not None and not getattr(module, head_dims).get(D, False):
        return f"head dim {D}: the Triton kernel is as fast there ({head_dims})"
    return module.unsupported(tensors, packed, B, H)


def hopper_backward_reason(tensors: dict, packed: bool, B: int, H: int) -> str | None:
    """None when window_attention_backward runs the Gluon dK/dV kernel of window_attention_hopper.py
    (and its dQ kernel at the head dims HOPPER_DQ names): sm_90, bf16/fp16, D 64 or 128, TMA-addressable q, k,
    v, grad_out, eager on plain tensors or inside a custom op; otherwise why the Triton kernels
    run. Under torch.compile's tracing the Triton kernels run (wrap_triton traces them; a Gluon
    launch it cannot)."""
    return _hopper_reason(tensors, packed, B, H, _HOPPER_BWD, "KUNLUNC_HOPPER_BWD")


def hopper_forward_reason(tensors: dict, packed: bool, B: int, H: int) -> str | None:
    """None when window_attention_forward runs the Gluon forward of window_attention_hopper.py: as
    hopper_backward_reason (q, k, v read by TMA), at the head dims its HOPPER_FWD names; otherwise why
    the Triton kernel runs."""
    return _hopper_reason(tensors, packed, B, H, _HOPPER_FWD, "KUNLUNC_HOPPER_FWD", "HOPPER_FWD")


# ----------------------------------------------------------------------------- public API

def unsupported(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, packed: bool = False) -> str | None:
    """None when these kernels can run on (q, k, v); otherwise a one-line reason. `packed`: the
    tensors are [N, H, D] (the batch's rows back to back), else [B, H, T, D]."""
    tensors = {"q": q, "k": k, "v": v}
    dims = 3 if packed else 4
    for name, x in tensors.items():
        if x.dim() != dims:
            return f"{name} must be {'[N, H, D]' if packed else '[B, H, T, D]'}, got {x.dim()} dims"
    if not (q.shape == k.shape == v.shape):
        return f"q, k, v shapes differ: {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in _DTYPES:
        return f"dtypes must match and be fp16, bf16 or fp32, got {q.dtype}, {k.dtype}, {v.dtype}"
    if not (q.device == k.device == v.device):
        return "q, k, v are on different devices"
    if q.device.type != "cuda" and not (q.device.type == "cpu" and _interpreting()):
        return f"needs a CUDA device (or TRITON_INTERPRET=1 on CPU), got {q.device.type}"
    D = q.shape[-1]
    if not 1 <= D <= _MAX_HEAD_DIM:
        return f"head dim {D} is outside 1..{_MAX_HEAD_DIM}"
    for name, x in tensors.items():
        # Offsets within one (b, h) are int32 in the kernels (b, h offsets are int64); packed rows
        # are reached through an int64 row start, so only the head and feature axes count there.
        axes = slice(1, None) if packed else slice(2, None)
        span = sum((n - 1) * abs(st) for n, st in zip(x.shape[axes], x.stride()[axes]))
        if span >= 2**31:
            return f"{name} spans {span} elements within one head; at most 2**31 - 1"
    return None


def _band(window: int, causal: bool, T: int) -> tuple[int, int]:
    """(LEFT, RIGHT) with -LEFT <= j - i <= RIGHT; clamped to T (window >= T is full)."""
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    left = min(int(window), T)
    return left, 0 if causal else left


def _head_meta(q: torch.Tensor, packed: bool) -> dict:
    D = q.shape[-1]
    return {"HEAD_D": D, "BLOCK_D": max(16, triton.next_power_of_2(D)),
            "PRECISION": "ieee" if q.dtype == torch.float32 else "tf32", "PACKED": packed}


class _Layout:
    """How the kernels address the batch: B examples, H heads, T rows at most per example; the
    per-example `lengths` and row `starts`; each tensor's (b, h, t, d) strides."""

    def __init__(self, q, k, v, lengths, starts, max_len):
        self.packed = starts is not None
        reason = unsupported(q, k, v, self.packed)
        if reason is not None:
            raise ValueError(f"window attention kernel: {reason}")
        if lengths.dim() != 1:
            raise ValueError(f"lengths must be [B], got {tuple(lengths.shape)}")
        if self.packed:
            if max_len is None or max_len < 0:
                raise ValueError("packed rows need max_len, a bound on every example's length")
            self.B, self.H, self.T = lengths.shape[0], q.shape[1], int(max_len)
        else:
            self.B, self.H, self.T = q.shape[:3]
        self.lengths = lengths
        self.starts = starts if self.packed else lengths   # (not read when padded)
        for name, x in {"lengths": lengths, "starts": self.starts}.items():
            if x.shape != (self.B,) or x.device != q.device:
                raise ValueError(f"{name} must be [B] = [{self.B}] on {q.device}, "
                                 f"got {tuple(x.shape)} on {x.device}")

    def strides(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        if self.packed:            # [N, H, D]: no batch stride, rows found through `starts`
            return 0, x.stride(1), x.stride(0), x.stride(2)
        return tuple(x.stride())

    def row_stats(self, device) -> torch.Tensor:
        return torch.empty((self.B, self.H, self.T), dtype=torch.float32, device=device)


def _checked_out(name: str, out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """An output buffer the caller passed: shaped like `like`, same dtype and device."""
    if out.shape != like.shape or out.dtype != like.dtype or out.device != like.device:
        raise ValueError(f"{name} must be {tuple(like.shape)} {like.dtype} on {like.device}, "
                         f"got {tuple(out.shape)} {out.dtype} on {out.device}")
    return out


def _grid(B: int, H: int, T: int, block: str):
    return lambda meta: (triton.cdiv(T, meta[block]) * B * H,)


def window_attention_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: torch.Tensor,
    window: int, causal: bool, scale: float,
    starts: torch.Tensor | None = None, max_len: int | None = None, out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sliding-window softmax attention: returns (o in q's dtype and layout, lse float32 [B, H, T]).

    Padded (starts None): q, k, v are [B, H, T, D] and example b has lengths[b] rows; o is
    [B, H, T, D], 0 past each length. Packed: q, k, v are [N, H, D], example b's lengths[b] rows
    start at row starts[b] (CSR offsets give starts = offsets[:-1]); max_len (T) bounds every
    length; o is [N, H, D], and no row outside the examples' rows is read or written. o has q's
    memory layout (torch.empty_like): transposed views of [B, T, H*D] or [N, H*D] give one too.
    lse is the natural-log logsumexp of the allowed scaled scores; -inf for rows past the length.
    `out`: write o there instead (shaped like q, any strides: a heads view of a [B, T, H*D] or
    [N, H*D] tensor, so that merging the heads afterwards is free).
    """
    lay = _Layout(q, k, v, lengths, starts, max_len)
    o = torch.empty_like(q) if out is None else _checked_out("out", out, q)
    lse = lay.row_stats(q.device)
    if o.numel() == 0 or lse.numel() == 0:
        return o, lse.fill_(float("-inf"))
    left, right = _band(window, causal, lay.T)
    if hopper_forward_reason({"q": q, "k": k, "v": v, "o": o}, lay.packed, lay.B, lay.H) is None:
        _hopper_module().fwd_hopper(q, k, v, lay.lengths, starts if lay.packed else None, lay.B, lay.H, lay.T,
                                    left, right, scale, o, lse)
        return o, lse
    meta = _head_meta(q, lay.packed)
    _launch(_FWD[meta["BLOCK_D"] > 128], _grid(lay.B, lay.H, lay.T, "BLOCK_M"),
            q, k, v, o, lse, lay.lengths, lay.starts, *lay.strides(q), *lay.strides(k), *lay.strides(v),
            *lay.strides(o), lay.H, lay.T, left, right, float(scale) * _LOG2E, **meta)
    return o, lse


def window_attention_backward(
    grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    o: torch.Tensor, lse: torch.Tensor, lengths: torch.Tensor,
    window: int, causal: bool, scale: float,
    starts: torch.Tensor | None = None, max_len: int | None = None,
    grads: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dq, dk, dv) in the inputs' dtypes and layouts, from the forward's o and lse
    (the same layout arguments as the forward). Packed, rows outside every example's rows are
    left as allocated: no gradient is written there. `grads`: write them there instead (shaped
    like q, k, v, any strides: the heads views of one [.., 3·H·D] gradient of a fused projection)."""
    lay = _Layout(q, k, v, lengths, starts, max_len)
    if grad_out.shape != q.shape or o.shape != q.shape or lse.shape != (lay.B, lay.H, lay.T):
        raise ValueError("grad_out and o must be shaped like q, and lse [B, H, T]")
    if grads is None:
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    else:
        dq, dk, dv = (_checked_out(name, g, x) for name, g, x in zip(("dq", "dk", "dv"), grads, (q, k, v)))
    if q.numel() == 0 or lse.numel() == 0:
        return dq, dk, dv
    lse = lse.to(torch.float32).contiguous()
    left, right = _band(window, causal, lay.T)
    meta = _head_meta(q, lay.packed)
    delta = lay.row_stats(q.device)   # written by the dQ kernel, read by the dK/dV kernel after it
    tensors = {"q": q, "k": k, "v": v, "grad_out": grad_out, "o": o, "dq": dq, "dk": dk, "dv": dv}
    hopper = _hopper_module() if hopper_backward_reason(tensors, lay.packed, lay.B, lay.H) is None else None
    hopper_args = (lay.lengths, starts if lay.packed else None, lay.B, lay.H, lay.T, left, right, scale)
    scales = (float(scale), float(scale) * _LOG2E)
    common = (*lay.strides(q), *lay.strides(k), *lay.strides(v), *lay.strides(grad_out))
    large = meta["BLOCK_D"] > 128
    if hopper is not None and hopper.HOPPER_DQ[q.shape[-1]]:
        hopper.dq_hopper(grad_out, q, k, v, o, lse, *hopper_args, dq, delta)
    else:
        _launch(_DQ[large], _grid(lay.B, lay.H, lay.T, "BLOCK_M"),
                q, k, v, o, grad_out, lse, delta, dq, lay.lengths, lay.starts, *common, *lay.strides(o),
                *lay.strides(dq), lay.H, lay.T, left, right, *scales, **meta)
    if hopper is not None:
        hopper.dkdv_hopper(grad_out, q, k, v, lse, delta, *hopper_args, dk, dv)
    else:
        _launch(_DKDV[large], _grid(lay.B, lay.H, lay.T, "BLOCK_N"),
                q, k, v, grad_out, lse, delta, dk, dv, lay.lengths, lay.starts, *common,
                *lay.strides(dk), *lay.strides(dv), lay.H, lay.T, left, right, *scales, **meta)
    return dq, dk, dv
