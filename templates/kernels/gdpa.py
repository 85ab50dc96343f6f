"""Triton kernels for GDPA (Generalized Dot-Product Attention): attention without a softmax.

Math (per example b, head h; q [B, H, T, D], k and v [B, H, S, D], any strides):

    O[i]  = scale · Σ_{j allowed} act_h(S_ij) · v[j],          S_ij = q[i]·k[j]
    dV[j] = scale · Σ_{i allowed} act_h(S_ij) · dO[i]
    dS_ij = scale · (dO[i]·v[j]) · act_h'(S_ij)            (zero where (i, j) is not allowed)
    dQ[i] = Σ_j dS_ij · k[j],                     dK[j] = Σ_i dS_ij · q[i]

There is no max, no normalizer and no saved statistic: the backward recomputes S and needs only
q, k, v and dO. (i, j) is allowed when i < q_lengths[b], j < kv_lengths[b] (all S keys when
kv_lengths is None: the personalized-FFN case) and, with a window w, |i - j| <= w (bidirectional)
or i - w <= j <= i (causal; causal with w = -1 is plain causal attention). scale is applied after
the activation (as Meta's kernels do), so it is factored out of every sum and applied once per
output tile.

Tiling (all three kernels): a 1-D grid over (b, h, resident tile); consecutive programs share
(b, h), so the K/V (or Q/dO) they all stream stays in L2. A program keeps one tile of BLOCK rows
in registers and loops over the tiles of the other side that can hold an allowed pair:

    forward   resident q tile [BLOCK_M, D], loops over k/v tiles      2 dots per step
    dk/dv     resident k, v tiles [BLOCK_N, D], loops over q/dO tiles 4 dots per step
    dq        resident q, dO tiles [BLOCK_M, D], loops over k/v tiles 3 dots per step

The backward is two kernels rather than one with atomic dQ: 7 dots instead of 5, but no fp32
scratch buffer, no memset, no conversion pass, deterministic results, and autotuning that can
re-run a kernel freely (it writes its outputs instead of accumulating into them).

Masking and jagged work: a resident tile that starts at or past its example's length writes zeros
and exits before loading anything; the loop covers only [lo, hi), the tiles that touch both the
valid length and the window band, so padding and out-of-band tiles cost nothing. Rows past a
length are loaded as zeros (masked loads: padding, even NaN, is never read); as act(0) = 0 for
every activation and zero rows of v or dO contribute nothing, length masking needs no per-element
select inside the loop. Only the window band needs one (a constexpr mode; it is compiled out when
there is no window). Head dims are padded to BLOCK_D, the next power of two >= 16, by masked loads.

Per-head activations: the activation is always a constexpr (ACT), so the loop is specialized.
With several activations the heads are grouped by activation and each group is one launch whose
programs read their head from an int32 table (HEADS): together the launches run exactly the
programs of one launch over all heads, so no work is multiplied, and no kernel branches on a
run-time activation id (Triton 3.6 fails to software-pipeline a loop around such a branch).

Numerics: dots accumulate in fp32; act(S) and dS are rounded to the input dtype for the second
dot (the tensor-core path). fp32 inputs use input_precision="ieee" (not TF32) and exact
activations; 16-bit inputs on the GPU use the one-instruction tanh.approx.f32 for gelu_tanh and
silu (softmax attention needs one MUFU op per score, and so does this), whose ~2^-11 relative
error is no larger than the 16-bit rounding of act(S) that follows.

On an H100/H200 the backward's kernels at D 64 run in Gluon instead (gdpa_hopper.py: the same
tiles and schedule, operands in shared memory fed by TMA; no window), eagerly or inside a custom op;
under torch.compile's tracing, and with KUNLUNC_HOPPER_BWD=0, the kernels here run.

Calling: every launch goes through torch.library.wrap_triton, so torch.compile and export can
trace these functions. Call them from inside a torch.library.triton_op: in eager mode that op
launches the kernels directly, whereas a bare call dispatches each launch through a higher-order
op that costs about 1 ms of host time. The forward returns a contiguous [B, H, T, D] tensor; the
gradients are torch.empty_like(q / k / v), so they keep the layout of transposed-view inputs.
"""
import functools
import hashlib
import inspect
import os
from pathlib import Path

import torch
import triton
import triton.language as tl

__all__ = ["ACTIVATION_IDS", "gdpa_backward", "gdpa_forward", "unsupported"]

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

# Triton reads TRITON_INTERPRET when kernels are decorated: decide the configs the same way.
_INTERPRET = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")

ACTIVATION_IDS = {"gelu_tanh": 0, "gelu": 1, "silu": 2, "relu": 3, "relu2": 4, "identity": 5}

# constexpr globals (Triton kernels may only read module globals that are constexpr)
GELU_TANH = tl.constexpr(0)
GELU = tl.constexpr(1)
SILU = tl.constexpr(2)
RELU = tl.constexpr(3)
RELU2 = tl.constexpr(4)
IDENTITY = tl.constexpr(5)

NO_WINDOW = tl.constexpr(0)  # every (i, j) below the lengths
BAND = tl.constexpr(1)       # |i - j| <= window
CAUSAL = tl.constexpr(2)     # i - window <= j <= i

SQRT_2_OVER_PI = tl.constexpr(0.7978845608028654)
INV_SQRT_2 = tl.constexpr(0.7071067811865476)
INV_SQRT_2PI = tl.constexpr(0.3989422804014327)
GELU_CUBIC = tl.constexpr(0.044715)  # the constant of GELU's tanh approximation

_MAX_HEAD_DIM = 256
_INT32_MAX = 2**31 - 1


# ----------------------------------------------------------------------------- activations

@triton.jit
def _tanh(x, FAST: tl.constexpr):
    """FAST: the one-instruction tanh.approx.f32 (one MUFU op); else 2·sigmoid(2x) - 1."""
    if FAST:
        t = tl.inline_asm_elementwise(
            "tanh.approx.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1)
    else:
        t = 2.0 / (1.0 + tl.exp(x * -2.0)) - 1.0
    return t


@triton.jit
def _act_and_grad(x, ID: tl.constexpr, FAST: tl.constexpr):
    """(act(x), act'(x)) for a constexpr activation id, both times _act_factor(ID); callers drop
    what they do not use, and the compiler removes its arithmetic."""
    if ID == GELU_TANH:
        # 2·gelu = x·(1 + tanh(u)), u = sqrt(2/pi)·(x + 0.044715·x³): 4 FP ops and one tanh per
        # score (the halves go into the output tile's scale: one FMUL a score less than 0.5·x·(…))
        x2 = x * x
        t = _tanh(x * (x2 * (SQRT_2_OVER_PI * GELU_CUBIC) + SQRT_2_OVER_PI), FAST)
        y = x + x * t
        du = x2 * (3.0 * SQRT_2_OVER_PI * GELU_CUBIC) + SQRT_2_OVER_PI
        dy = (1.0 + t) + x * (1.0 - t * t) * du
    elif ID == GELU:
        cdf = 0.5 * (1.0 + tl.erf(x * INV_SQRT_2))
        y = x * cdf
        dy = cdf + x * tl.exp(x * x * -0.5) * INV_SQRT_2PI
    elif ID == SILU:
        if FAST:
            s = 0.5 + 0.5 * _tanh(0.5 * x, FAST)  # sigmoid(x) in one MUFU op
        else:
            s = 1.0 / (1.0 + tl.exp(-x))
        y = x * s
        dy = s * (1.0 + x * (1.0 - s))
    elif ID == RELU:
        y = tl.maximum(x, 0.0)
        dy = tl.where(x > 0.0, 1.0, 0.0)
    elif ID == RELU2:
        r = tl.maximum(x, 0.0)
        y = r * r
        dy = 2.0 * r
    else:  # IDENTITY
        y = x
        dy = tl.full(x.shape, 1.0, tl.float32)
    return y, dy


@triton.jit
def _act_factor(ID: tl.constexpr):
    """The factor _act_and_grad's values carry (2 for gelu_tanh, else 1): kernels multiply their
    output tiles' scale by its inverse, once per tile rather than once per score."""
    if ID == GELU_TANH:
        factor = 2.0
    else:
        factor = 1.0
    return factor


# ----------------------------------------------------------------------------- tiles and ranges

@triton.jit
def _tile_of_program(n_rows, n_heads, BLOCK: tl.constexpr):
    """(b, head slot, first row) of this program; programs of one (b, head) are consecutive. The
    slot is the head, or with a head table (HEAD_TABLE) its index in the table: this launch then
    covers the n_heads heads listed there (one activation's).

    No helper takes a pointer and returns an index: torch.compile's analysis of a kernel would
    count every pointer passed to such a helper as written (tests/test_kernel_mutation.py), so
    the kernels load lengths, starts and table entries themselves."""
    n_tiles = tl.cdiv(n_rows, BLOCK)
    pid = tl.program_id(0)
    bh = pid // n_tiles
    return bh // n_heads, bh % n_heads, (pid % n_tiles) * BLOCK


@triton.jit
def _clamp(n, size):
    """A loaded length clamped to [0, size] (a length past the padded size means 'all')."""
    return tl.minimum(tl.maximum(n.to(tl.int32), 0), size)


@triton.jit
def _key_range(m0, m_end, kv_len, window, MODE: tl.constexpr, BLOCK_N: tl.constexpr):
    """[lo, hi): the keys that query rows [m0, m_end) may see, lo aligned to BLOCK_N."""
    lo = m0 * 0
    hi = kv_len
    if MODE == BAND:
        lo = tl.maximum(m0 - window, 0)
        hi = tl.minimum(hi, m_end + window)
    elif MODE == CAUSAL:
        lo = tl.maximum(m0 - window, 0)
        hi = tl.minimum(hi, m_end)
    return lo // BLOCK_N * BLOCK_N, hi


@triton.jit
def _query_range(n0, n_end, q_len, window, MODE: tl.constexpr, BLOCK_M: tl.constexpr):
    """[lo, hi): the query rows that may see keys [n0, n_end), lo aligned to BLOCK_M."""
    lo = n0 * 0
    hi = q_len
    if MODE == BAND:
        lo = tl.maximum(n0 - window, 0)
        hi = tl.minimum(hi, n_end + window)
    elif MODE == CAUSAL:
        lo = n0
        hi = tl.minimum(hi, n_end + window)
    return lo // BLOCK_M * BLOCK_M, hi


@triton.jit
def _in_band(rows, cols, window, MODE: tl.constexpr):
    """Broadcast bool: query rows may see key cols (the window only; lengths are handled by
    zero rows)."""
    behind = rows - cols  # i - j
    if MODE == CAUSAL:
        allowed = (behind >= 0) & (behind <= window)
    else:
        allowed = (behind <= window) & (behind >= -window)
    return allowed


@triton.jit
def _load_rows(base, rows, n_valid, stride_row, stride_d, HEAD_DIM: tl.constexpr,
               BLOCK_D: tl.constexpr):
    """[len(rows), BLOCK_D] tile; rows >= n_valid and columns >= HEAD_DIM read as 0."""
    cols = tl.arange(0, BLOCK_D)
    mask = rows[:, None] < n_valid
    if BLOCK_D != HEAD_DIM:
        mask = mask & (cols[None, :] < HEAD_DIM)
    return tl.load(base + rows[:, None] * stride_row + cols[None, :] * stride_d, mask=mask,
                   other=0.0)


@triton.jit
def _store_rows(base, rows, tile, n_rows, stride_row, stride_d, HEAD_DIM: tl.constexpr,
                BLOCK_D: tl.constexpr):
    """Stores tile's rows < n_rows and columns < HEAD_DIM, in the output's dtype."""
    cols = tl.arange(0, BLOCK_D)
    mask = rows[:, None] < n_rows
    if BLOCK_D != HEAD_DIM:
        mask = mask & (cols[None, :] < HEAD_DIM)
    ptrs = base + rows[:, None] * stride_row + cols[None, :] * stride_d
    tl.store(ptrs, tile.to(base.dtype.element_ty), mask=mask)


@triton.jit
def _head_base(ptr, b, h, stride_b, stride_h):
    """Pointer to x[b, h]; 64-bit, since B·H·T·D can pass 2^31 elements."""
    return ptr + b.to(tl.int64) * stride_b + h.to(tl.int64) * stride_h


@triton.jit
def _q_rows(start, q_len, T, PACKED_Q: tl.constexpr):
    """(row0, limit) of an example's query rows, given its loaded start (unused when padded).
    Padded: its own [T] axis, every row up to T written (zeros past q_len). Packed:
    rows from start of one [N] axis, and nothing past q_len written (the next example's)."""
    if PACKED_Q:
        row0 = start.to(tl.int64)
        limit = q_len
    else:
        row0 = start.to(tl.int64) * 0  # a 0-d int64 that every backend accepts
        limit = T
    return row0, limit


@triton.jit
def _bounds_after_loop(q_len, q_limit, m0):
    """(q_len, q_limit) again, for the masks of the forward's stores after its key loop; only
    called where m0 < q_len, so max(x, m0 + 1) == x. Written so that the compiler cannot prove
    them equal to the values the tile's loads used: it then forms the row masks anew rather than
    keeping the q load's mask live through the loop, which in the packed layout (q_limit ==
    q_len) cost up to 26 registers a thread on sm_90 (D = 128, 64 x 64, 4 warps: 183 -> 157;
    `python3 bench/compile_kernels.py --resources --packed`). Not used in the dQ kernel, where
    it raised the count at D = 64 (64 x 64, 4 warps: 128 -> 164)."""
    return tl.maximum(q_len, m0 + 1), tl.maximum(q_limit, m0 + 1)


# ----------------------------------------------------------------------------- kernels

# Half tiles (forward): a query tile that holds an example's last rows and is at most half full
# runs at half height (_fwd_rows specialized for BLOCK_M // 2 rows), so a jagged batch wastes a
# quarter tile an example on average instead of half a tile: at T = 512 with 128-row tiles and
# lengths uniform in [0, T], 0.5625 of the full-length work instead of 0.625. The helper returns
# the accumulator and _store_output stores it (no helper is handed an input pointer and feeds a
# store address: see _tile_of_program). Not in the dQ kernel: there the second path raised the
# registers of the H200's chosen config (D 128, 128 x 64, 8 warps) from 164 to 245 a thread on
# sm_90, and its full-length forward+backward ran 5-6% slower at the PFFN shapes (BENCHMARKS.md).

@triton.jit
def _fwd_rows(q_base, k_base, v_base, rows, m0, q_len, kv_len, window,
              stride_qt, stride_qd, stride_kn, stride_kd, stride_vn, stride_vd,
              HEAD_DIM: tl.constexpr, ACT: tl.constexpr, MODE: tl.constexpr, FAST: tl.constexpr,
              DOT_PREC: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """Σ_j act(q_i·k_j) v_j over the allowed keys, for query rows `rows` (m0 their first, m0 <
    q_len), unscaled, fp32 [len(rows), BLOCK_D]."""
    lo, hi = _key_range(m0, tl.minimum(m0 + rows.shape[0], q_len), kv_len, window, MODE, BLOCK_N)
    q = _load_rows(q_base, rows, q_len, stride_qt, stride_qd, HEAD_DIM, BLOCK_D)
    acc = tl.zeros((rows.shape[0], BLOCK_D), tl.float32)
    for n0 in range(lo, hi, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        k = _load_rows(k_base, cols, kv_len, stride_kn, stride_kd, HEAD_DIM, BLOCK_D)
        v = _load_rows(v_base, cols, kv_len, stride_vn, stride_vd, HEAD_DIM, BLOCK_D)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PREC)
        p, _ = _act_and_grad(s, ACT, FAST)
        if MODE != NO_WINDOW:
            p = tl.where(_in_band(rows[:, None], cols[None, :], window, MODE), p, 0.0)
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PREC)
    return acc


@triton.jit
def _store_output(o_base, rows, acc, m0, q_len, q_limit, scale, stride_ot, stride_od,
                  HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """Stores the forward's accumulator for query rows `rows`, scaled, zero past q_len (masks
    formed anew after the key loop: _bounds_after_loop)."""
    q_len, q_limit = _bounds_after_loop(q_len, q_limit, m0)
    acc = tl.where(rows[:, None] < q_len, acc * scale, 0.0)
    _store_rows(o_base, rows, acc, q_limit, stride_ot, stride_od, HEAD_DIM, BLOCK_D)


@triton.jit
def _gdpa_fwd_kernel(
    Q, K, V, O, Q_LEN, KV_LEN, HEADS, Q_STARTS,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_ot, stride_od,
    n_heads, T, S, scale, window,
    HEAD_DIM: tl.constexpr, ACT: tl.constexpr, HAS_KV_LEN: tl.constexpr, MODE: tl.constexpr,
    HEAD_TABLE: tl.constexpr, FAST: tl.constexpr, DOT_PREC: tl.constexpr, PACKED_Q: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    tl.static_assert(_FILE_DIGEST >= 0)  # keys torch.compile's caches to this file
    scale = tl.cast(scale, tl.float32) / _act_factor(ACT)  # torch.compile passes floats as fp64
    b, h, m0 = _tile_of_program(T, n_heads, BLOCK_M)
    h = tl.load(HEADS + h) if HEAD_TABLE else h
    rows = m0 + tl.arange(0, BLOCK_M)
    q_len = _clamp(tl.load(Q_LEN + b), T)
    q_row0, q_limit = _q_rows(tl.load(Q_STARTS + b) if PACKED_Q else b, q_len, T, PACKED_Q)
    o_base = _head_base(O, b, h, stride_ob, stride_oh) + q_row0 * stride_ot
    if m0 >= q_len:  # the whole tile is padding: zeros, no loads
        zeros = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
        _store_rows(o_base, rows, zeros, q_limit, stride_ot, stride_od, HEAD_DIM, BLOCK_D)
        return
    kv_len = _clamp(tl.load(KV_LEN + b), S) if HAS_KV_LEN else S
    q_base = _head_base(Q, b, h, stride_qb, stride_qh) + q_row0 * stride_qt
    k_base = _head_base(K, b, h, stride_kb, stride_kh)
    v_base = _head_base(V, b, h, stride_vb, stride_vh)
    # (a branch assigns no name the other does: Triton requires such names to keep one type,
    # and the two tiles' shapes differ)
    if q_len - m0 <= BLOCK_M // 2:  # the example's last rows fill half the tile at most
        half_rows = m0 + tl.arange(0, BLOCK_M // 2)
        half = _fwd_rows(q_base, k_base, v_base, half_rows, m0, q_len, kv_len, window,
                         stride_qt, stride_qd, stride_kn, stride_kd, stride_vn, stride_vd,
                         HEAD_DIM, ACT, MODE, FAST, DOT_PREC, BLOCK_N, BLOCK_D)
        _store_output(o_base, half_rows, half, m0, q_len, q_limit, scale, stride_ot, stride_od,
                      HEAD_DIM, BLOCK_D)
        if not PACKED_Q:  # padded: the tile's other half is padding, written as zeros
            _store_rows(o_base, half_rows + BLOCK_M // 2, tl.zeros((BLOCK_M // 2, BLOCK_D), tl.float32),
                        q_limit, stride_ot, stride_od, HEAD_DIM, BLOCK_D)
    else:
        acc = _fwd_rows(q_base, k_base, v_base, rows, m0, q_len, kv_len, window,
                        stride_qt, stride_qd, stride_kn, stride_kd, stride_vn, stride_vd,
                        HEAD_DIM, ACT, MODE, FAST, DOT_PREC, BLOCK_N, BLOCK_D)
        _store_output(o_base, rows, acc, m0, q_len, q_limit, scale, stride_ot, stride_od, HEAD_DIM, BLOCK_D)


@triton.jit
def _gdpa_bwd_dkdv_kernel(
    Q, K, V, DO, DK, DV, Q_LEN, KV_LEN, HEADS, Q_STARTS,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dot, stride_dod,
    stride_dkb, stride_dkh, stride_dkn, stride_dkd,
    stride_dvb, stride_dvh, stride_dvn, stride_dvd,
    n_heads, T, S, scale, window,
    HEAD_DIM: tl.constexpr, ACT: tl.constexpr, HAS_KV_LEN: tl.constexpr, MODE: tl.constexpr,
    HEAD_TABLE: tl.constexpr, FAST: tl.constexpr, DOT_PREC: tl.constexpr, PACKED_Q: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    tl.static_assert(_FILE_DIGEST >= 0)  # keys torch.compile's caches to this file
    scale = tl.cast(scale, tl.float32) / _act_factor(ACT)  # torch.compile passes floats as fp64
    b, h, n0 = _tile_of_program(S, n_heads, BLOCK_N)
    h = tl.load(HEADS + h) if HEAD_TABLE else h
    cols = n0 + tl.arange(0, BLOCK_N)  # this program's keys, as rows of dK and dV
    dk_base = _head_base(DK, b, h, stride_dkb, stride_dkh)
    dv_base = _head_base(DV, b, h, stride_dvb, stride_dvh)
    kv_len = _clamp(tl.load(KV_LEN + b), S) if HAS_KV_LEN else S
    if n0 >= kv_len:  # padded keys: zero gradient, no loads
        zeros = tl.zeros((BLOCK_N, BLOCK_D), tl.float32)
        _store_rows(dk_base, cols, zeros, S, stride_dkn, stride_dkd, HEAD_DIM, BLOCK_D)
        _store_rows(dv_base, cols, zeros, S, stride_dvn, stride_dvd, HEAD_DIM, BLOCK_D)
        return
    q_len = _clamp(tl.load(Q_LEN + b), T)
    q_row0, _ = _q_rows(tl.load(Q_STARTS + b) if PACKED_Q else b, q_len, T, PACKED_Q)
    lo, hi = _query_range(n0, tl.minimum(n0 + BLOCK_N, kv_len), q_len, window, MODE, BLOCK_M)

    k = _load_rows(_head_base(K, b, h, stride_kb, stride_kh), cols, kv_len, stride_kn, stride_kd,
                   HEAD_DIM, BLOCK_D)
    v = _load_rows(_head_base(V, b, h, stride_vb, stride_vh), cols, kv_len, stride_vn, stride_vd,
                   HEAD_DIM, BLOCK_D)
    q_base = _head_base(Q, b, h, stride_qb, stride_qh) + q_row0 * stride_qt
    do_base = _head_base(DO, b, h, stride_dob, stride_doh) + q_row0 * stride_dot
    dk = tl.zeros((BLOCK_N, BLOCK_D), tl.float32)
    dv = tl.zeros((BLOCK_N, BLOCK_D), tl.float32)
    for m0 in range(lo, hi, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        q = _load_rows(q_base, rows, q_len, stride_qt, stride_qd, HEAD_DIM, BLOCK_D)
        do = _load_rows(do_base, rows, q_len, stride_dot, stride_dod, HEAD_DIM, BLOCK_D)
        # transposed orientation [BLOCK_N, BLOCK_M], so dK and dV need no transposed operand
        s_t = tl.dot(k, tl.trans(q), input_precision=DOT_PREC)
        p_t, dact_t = _act_and_grad(s_t, ACT, FAST)
        ds_t = tl.dot(v, tl.trans(do), input_precision=DOT_PREC) * dact_t
        if MODE != NO_WINDOW:
            allowed = _in_band(rows[None, :], cols[:, None], window, MODE)
            p_t = tl.where(allowed, p_t, 0.0)
            ds_t = tl.where(allowed, ds_t, 0.0)
        dv = tl.dot(p_t.to(do.dtype), do, dv, input_precision=DOT_PREC)
        dk = tl.dot(ds_t.to(q.dtype), q, dk, input_precision=DOT_PREC)
    valid = cols[:, None] < kv_len
    _store_rows(dk_base, cols, tl.where(valid, dk * scale, 0.0), S, stride_dkn, stride_dkd,
                HEAD_DIM, BLOCK_D)
    _store_rows(dv_base, cols, tl.where(valid, dv * scale, 0.0), S, stride_dvn, stride_dvd,
                HEAD_DIM, BLOCK_D)


@triton.jit
def _gdpa_bwd_dq_kernel(
    Q, K, V, DO, DQ, Q_LEN, KV_LEN, HEADS, Q_STARTS,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dot, stride_dod,
    stride_dqb, stride_dqh, stride_dqt, stride_dqd,
    n_heads, T, S, scale, window,
    HEAD_DIM: tl.constexpr, ACT: tl.constexpr, HAS_KV_LEN: tl.constexpr, MODE: tl.constexpr,
    HEAD_TABLE: tl.constexpr, FAST: tl.constexpr, DOT_PREC: tl.constexpr, PACKED_Q: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    tl.static_assert(_FILE_DIGEST >= 0)  # keys torch.compile's caches to this file
    scale = tl.cast(scale, tl.float32) / _act_factor(ACT)  # torch.compile passes floats as fp64
    b, h, m0 = _tile_of_program(T, n_heads, BLOCK_M)
    h = tl.load(HEADS + h) if HEAD_TABLE else h
    rows = m0 + tl.arange(0, BLOCK_M)
    q_len = _clamp(tl.load(Q_LEN + b), T)
    q_row0, q_limit = _q_rows(tl.load(Q_STARTS + b) if PACKED_Q else b, q_len, T, PACKED_Q)
    dq_base = _head_base(DQ, b, h, stride_dqb, stride_dqh) + q_row0 * stride_dqt
    if m0 >= q_len:  # padded rows: zero gradient, no loads
        zeros = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
        _store_rows(dq_base, rows, zeros, q_limit, stride_dqt, stride_dqd, HEAD_DIM, BLOCK_D)
        return
    kv_len = _clamp(tl.load(KV_LEN + b), S) if HAS_KV_LEN else S
    lo, hi = _key_range(m0, tl.minimum(m0 + BLOCK_M, q_len), kv_len, window, MODE, BLOCK_N)

    q = _load_rows(_head_base(Q, b, h, stride_qb, stride_qh) + q_row0 * stride_qt, rows, q_len,
                   stride_qt, stride_qd, HEAD_DIM, BLOCK_D)
    do = _load_rows(_head_base(DO, b, h, stride_dob, stride_doh) + q_row0 * stride_dot, rows, q_len,
                    stride_dot, stride_dod, HEAD_DIM, BLOCK_D)
    k_base = _head_base(K, b, h, stride_kb, stride_kh)
    v_base = _head_base(V, b, h, stride_vb, stride_vh)
    dq = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    for n0 in range(lo, hi, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        k = _load_rows(k_base, cols, kv_len, stride_kn, stride_kd, HEAD_DIM, BLOCK_D)
        v = _load_rows(v_base, cols, kv_len, stride_vn, stride_vd, HEAD_DIM, BLOCK_D)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PREC)
        _, dact = _act_and_grad(s, ACT, FAST)
        ds = tl.dot(do, tl.trans(v), input_precision=DOT_PREC) * dact
        if MODE != NO_WINDOW:
            ds = tl.where(_in_band(rows[:, None], cols[None, :], window, MODE), ds, 0.0)
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=DOT_PREC)
    dq = tl.where(rows[:, None] < q_len, dq * scale, 0.0)
    _store_rows(dq_base, rows, dq, q_limit, stride_dqt, stride_dqd, HEAD_DIM, BLOCK_D)


# ----------------------------------------------------------------------------- autotuning

def _config(block_m: int, block_n: int, warps: int, stages: int) -> triton.Config:
    return triton.Config({"BLOCK_M": block_m, "BLOCK_N": block_n}, num_warps=warps,
                         num_stages=stages)


# (BLOCK_M, BLOCK_N, num_warps, num_stages) for Hopper, by bytes per head row (BLOCK_D x element
# size: bf16 D <= 128 is 256 bytes). The resident tile is BLOCK_M for the forward and dq kernels
# and BLOCK_N for dk/dv. 128-row resident tiles with 8 warps feed wgmma best; configs whose
# registers spill heavily at D = 128 (ptxas) are left out. Wider rows (bf16 D = 256, fp32 D = 128)
# double every tile's registers and shared memory, so their tiles are halved, and halved again
# for fp32 D = 256 (fp32 runs on FMA units with input_precision="ieee" anyway). The first config
# of each list is the one used untuned (AUTOTUNE = False).
_HOPPER_CONFIGS = {
    # (64, 64, 4, 3), (64, 32, 4, 3) and (64, 64, 8, 2), which fit two or three programs on an
    # SM at D = 128, were offered in the tenth session and dropped in the eleventh: the H200's
    # autotuner picked none of them at any bench_gdpa.py shape (BENCHMARKS.md, GDPA).
    "fwd": [(128, 64, 8, 3), (128, 128, 8, 3), (128, 64, 8, 4), (64, 64, 4, 4), (128, 32, 8, 4)],
    "fwd_wide": [(64, 64, 4, 2), (128, 64, 8, 2), (64, 32, 4, 3), (128, 32, 8, 3)],
    "fwd_widest": [(32, 32, 4, 2), (64, 32, 4, 2)],
    # at D = 128 only (64, 64, 4, 3) spills (40 bytes a thread on sm_90, padded or packed:
    # bench/compile_kernels.py --resources [--packed], specialized as a launch is, Triton 3.9's ptxas)
    "dkdv": [(32, 64, 8, 2), (32, 32, 4, 3), (32, 128, 8, 3), (16, 128, 8, 4), (64, 64, 4, 3),
             (64, 64, 8, 3), (32, 64, 4, 4)],
    "dkdv_wide": [(32, 64, 4, 2), (64, 64, 8, 2), (32, 128, 8, 2)],
    "dkdv_widest": [(32, 32, 4, 2), (16, 32, 4, 2)],
    # none spills at D = 64 or 128, padded or packed (same tables); (64, 32, 8, 2) and
    # (64, 32, 4, 3) were dropped as the forward's three were (never picked on the H200)
    "dq": [(64, 64, 4, 3), (128, 64, 8, 3), (128, 64, 8, 2), (128, 32, 8, 3), (64, 32, 4, 4)],
    "dq_wide": [(64, 32, 4, 2), (64, 64, 8, 2), (128, 32, 8, 2)],
    "dq_widest": [(32, 32, 4, 2), (32, 16, 4, 2)],
}
# The interpreter runs programs one by one in Python: one small config that still crosses tiles
# at the tests' shapes, with unequal M and N so that a swapped stride or bound shows.
_INTERPRETER_CONFIG = {"fwd": (32, 16, 4, 1), "dkdv": (16, 32, 4, 1), "dq": (32, 16, 4, 1)}
_TUNE_KEY = ["T", "S", "HEAD_DIM", "ACT", "MODE", "HAS_KV_LEN", "PACKED_Q"]  # (as window_attention)

# False: launch the first config of each list untuned (tests with many shapes set it, since
# autotuning compiles every config for every new specialization). Default from KUNLUNC_AUTOTUNE.
AUTOTUNE = os.environ.get("KUNLUNC_AUTOTUNE", "1") != "0"


@functools.cache
def _tuned(kernel_name: str, width: str, autotune: bool):
    """The autotuned launcher of one kernel for one row-width class (dtypes join the key)."""
    kernel = {"fwd": _gdpa_fwd_kernel, "dkdv": _gdpa_bwd_dkdv_kernel,
              "dq": _gdpa_bwd_dq_kernel}[kernel_name]
    if _INTERPRET:
        configs = [_config(*_INTERPRETER_CONFIG[kernel_name])]
    else:
        configs = [_config(*c) for c in _HOPPER_CONFIGS[kernel_name + width]]
    return triton.autotune(configs=configs if autotune else configs[:1], key=_TUNE_KEY,
                           **_AUTOTUNE_CACHE)(kernel)


def _plain_eager(x: torch.Tensor) -> bool:
    """True when running eagerly on plain tensors (no torch.compile, no dispatch-mode tracer):
    inside an opaque custom op at run time, say."""
    return (type(x) is torch.Tensor and not torch.compiler.is_compiling()
            and torch._C._len_torch_dispatch_stack() == 0)


def _launch(kernel_name: str, block_d: int, x: torch.Tensor, grid, args: tuple, constexprs: dict) -> None:
    """The tuned kernel for x's dtype launched on grid, through torch.library.wrap_triton unless x
    is a plain tensor in eager mode. Outside a triton_op a wrapped kernel dispatches each launch
    through a higher-order op (about a millisecond of host time) and buys nothing there; eager
    launches on CUDA go through bound_launch.launch_tuned where it is there (the autotuner and
    the JIT once a key, not every call)."""
    row_bytes = block_d * x.dtype.itemsize
    width = "" if row_bytes <= 256 else "_wide" if row_bytes <= 512 else "_widest"
    tuned = _tuned(kernel_name, width, AUTOTUNE)
    # torch 2.13 passes interpreted kernels through wrap_triton; older releases reject them.
    if _INTERPRET or _plain_eager(x):
        launch_tuned = _launch_tuned() if x.is_cuda and not _INTERPRET else None
        if launch_tuned is not None:
            launch_tuned(tuned, grid, args, constexprs)
        else:
            tuned[grid](*args, **constexprs)
    else:
        torch.library.wrap_triton(tuned)[grid](*args, **constexprs)


def _launch_tuned():
    """bound_launch.launch_tuned, reached through the Hopper module beside this file (gdpa_hopper.py
    loads window_attention_hopper.py, which loads bound_launch.py as the package's kernel files
    share it); None without it (no Gluon)."""
    hopper = _hopper_module()
    return getattr(getattr(hopper, "_common", None), "launch_tuned", None)


# ----------------------------------------------------------------------------- the Hopper backward

# KUNLUNC_HOPPER_BWD=0: the Triton backward everywhere (A/B timing, or a Triton without Gluon).
_HOPPER_BWD = os.environ.get("KUNLUNC_HOPPER_BWD", "1") != "0"
_HOPPER = {}


def _hopper_module():
    """gdpa_hopper.py beside this file (the backward in Gluon for sm_90), imported on first use;
    None where this Triton has no Gluon for Hopper."""
    if "module" not in _HOPPER:
        import importlib.util
        import sys
        from pathlib import Path
        name = f"{__name__}_hopper"
        module = sys.modules.get(name)          # already loaded (by a sibling kernel file)
        try:
            if module is None:
                spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("gdpa_hopper.py"))
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
        except (ImportError, AttributeError, FileNotFoundError, TypeError):
            sys.modules.pop(name, None)
            module = None
        _HOPPER["module"] = module
    return _HOPPER["module"]


def hopper_backward_reason(tensors: dict, packed: bool, batch_heads: int, windowed: bool) -> str | None:
    """None when gdpa_backward runs the Gluon kernels of gdpa_hopper.py (those its ENABLED table
    turns on): sm_90, bf16/fp16, D 64 or 128, no window, TMA-addressable q, k, v, grad_out, eager on
    plain tensors or inside a custom op; otherwise why the Triton kernels run. Under torch.compile's
    tracing the Triton kernels run (wrap_triton traces them; a Gluon launch it cannot)."""
    q = tensors["q"]
    if not _HOPPER_BWD:
        return "KUNLUNC_HOPPER_BWD=0"
    if q.device.type != "cuda" or _INTERPRET:
        return "not on a CUDA device"
    if not all(_plain_eager(x) for x in tensors.values()):
        return "traced (torch.compile, make_fx): the Triton kernels are traceable"
    module = _hopper_module()
    if module is None:
        return "this Triton has no Gluon for Hopper"
    return module.unsupported(tensors, packed, batch_heads, windowed)


# ----------------------------------------------------------------------------- Python API

def _head_groups(
    activations: str, heads: int, like: torch.Tensor,
) -> list[tuple[int, int, torch.Tensor | None]]:
    """[(ACT, heads in the group, int32 head table on like's device, or None)], one entry per
    distinct activation; a single activation for all heads needs no table."""
    names = [name.strip() for name in activations.split(",")]
    unknown = [name for name in names if name not in ACTIVATION_IDS]
    if unknown:
        raise ValueError(f"unknown activation {unknown[0]!r}; known: {', '.join(ACTIVATION_IDS)}")
    if len(names) not in (1, heads):
        raise ValueError(f"{len(names)} activations for {heads} heads: give one, or one per head")
    if len(set(names)) == 1:
        return [(ACTIVATION_IDS[names[0]], heads, None)]
    groups: dict[str, list[int]] = {}
    for h, name in enumerate(names):
        groups.setdefault(name, []).append(h)
    return [(ACTIVATION_IDS[name], len(hs), _head_table(tuple(hs), like)) for name, hs in groups.items()]


_HEAD_TABLES: dict[tuple[tuple[int, ...], torch.device], torch.Tensor] = {}


def _head_table(heads: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """The int32 table of a group's heads on like's device. In eager (like a plain tensor) it is
    made (a host-to-device copy) once per (heads, device) and kept, so that a step can be captured
    in a CUDA graph and replayed. While tracing (like a fake or functional tensor) it is made
    afresh in the tracing mode: a kept real tensor there would break torch.compile."""
    if type(like) is not torch.Tensor:
        return torch.tensor(heads, dtype=torch.int32, device=like.device)
    table = _HEAD_TABLES.get((heads, like.device))
    if table is None:
        table = _HEAD_TABLES[(heads, like.device)] = torch.tensor(heads, dtype=torch.int32, device=like.device)
    return table


def _window_mode(window: int, causal: bool, T: int, S: int) -> tuple[int, int]:
    """(MODE, window) with the window clamped to the sequence (no int32 overflow in bounds)."""
    longest = max(T, S, 1)
    if causal:
        return CAUSAL.value, longest if window < 0 else min(window, longest)
    if window < 0 or window >= longest:  # the band covers every pair: no mask at all
        return NO_WINDOW.value, 0
    return BAND.value, window


def _launches(q, k, q_lengths, kv_lengths, q_starts, T, activations, window, causal):
    """Per head group: (number of heads, the pointer arguments, the constexprs). kv_lengths None
    passes q_lengths as a placeholder that HAS_KV_LEN=False never reads; likewise HEADS and
    Q_STARTS (read only when PACKED_Q)."""
    mode, window = _window_mode(window, causal, T, k.shape[2])
    head_dim = q.shape[-1]
    shared = dict(
        window=window, MODE=mode, HAS_KV_LEN=kv_lengths is not None, HEAD_DIM=head_dim,
        BLOCK_D=max(16, triton.next_power_of_2(head_dim)),
        FAST=not _INTERPRET and q.dtype != torch.float32,
        DOT_PREC="ieee" if q.dtype == torch.float32 else "tf32", PACKED_Q=q_starts is not None,
    )
    kv_len = kv_lengths if kv_lengths is not None else q_lengths
    starts = q_starts if q_starts is not None else q_lengths
    for act, n_heads, table in _head_groups(activations, k.shape[1], q):
        pointers = (q_lengths, kv_len, table if table is not None else q_lengths, starts)
        yield n_heads, pointers, dict(shared, ACT=act, HEAD_TABLE=table is not None)


def _grid(rows: int, batch_heads: int, block_key: str):
    return lambda meta: (batch_heads * triton.cdiv(rows, meta[block_key]),)


def _q_layout(q: torch.Tensor, k: torch.Tensor, q_lengths: torch.Tensor, q_starts, max_len):
    """(B, T, q strides as (b, h, t, d)) for padded q [B, H, T, D] or packed q [N, H, D]."""
    if q_starts is None:
        return q.shape[0], q.shape[2], tuple(q.stride())
    if q.dim() != 3 or k.dim() != 4 or q.shape[1] != k.shape[1]:
        raise ValueError(f"packed q must be [N, H, D] beside k [B, H, S, D]: q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}")
    if max_len is None or max_len < 0:
        raise ValueError("packed q needs max_len, a bound on every example's length")
    B = k.shape[0]
    for name, x in (("q_lengths", q_lengths), ("q_starts", q_starts)):
        if x.shape != (B,) or x.device != q.device:
            raise ValueError(f"{name} must be [B] = [{B}] on {q.device}, got {tuple(x.shape)} on {x.device}")
    return B, int(max_len), _packed_strides(q)


def _packed_strides(x: torch.Tensor) -> tuple[int, int, int, int]:
    """[N, H, D] as (b, h, t, d) strides: no batch stride, rows found through Q_STARTS."""
    return 0, x.stride(1), x.stride(0), x.stride(2)


def gdpa_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_lengths: torch.Tensor,
    kv_lengths: torch.Tensor | None, activations: str, scale: float, window: int = -1,
    causal: bool = False, q_starts: torch.Tensor | None = None, max_len: int | None = None,
) -> torch.Tensor:
    """O (q's dtype) = scale · act_h(q·kᵀ) · v over allowed pairs.

    Padded: q [B, H, T, D]; O [B, H, T, D] contiguous, rows at or past q_lengths zero. Packed
    (q_starts given): q [N, H, D], the batch's query rows back to back, example b's q_lengths[b]
    rows from row q_starts[b] (CSR offsets[:-1]), max_len bounding every length; O [N, H, D]
    contiguous, and no row outside the examples' rows is read or written. k, v are [B, H, S, D]."""
    B, T, q_strides = _q_layout(q, k, q_lengths, q_starts, max_len)
    S = k.shape[2]
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    o_strides = _packed_strides(out) if q_starts is not None else tuple(out.stride())
    if out.numel() == 0 or S == 0 or T == 0:
        return out.zero_()
    for n_heads, pointers, c in _launches(q, k, q_lengths, kv_lengths, q_starts, T, activations,
                                          window, causal):
        _launch("fwd", c["BLOCK_D"], q, _grid(T, B * n_heads, "BLOCK_M"),
                (q, k, v, out, *pointers, *q_strides, *k.stride(), *v.stride(), *o_strides,
                 n_heads, T, S, float(scale)), c)
    return out


def gdpa_backward(
    grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    q_lengths: torch.Tensor, kv_lengths: torch.Tensor | None, activations: str, scale: float,
    window: int = -1, causal: bool = False, q_starts: torch.Tensor | None = None,
    max_len: int | None = None, grads: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv), laid out like q, k, v (torch.empty_like); padding gets zero gradient (packed:
    rows outside every example's rows get none). `grads`: write them there instead (shaped like
    q, k, v, any strides: dk and dv as the heads views of one fused projection's gradient)."""
    B, T, q_strides = _q_layout(q, k, q_lengths, q_starts, max_len)
    S = k.shape[2]
    H = k.shape[1]
    if grads is None:
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    else:
        for name, g, x in zip(("dq", "dk", "dv"), grads, (q, k, v)):
            if g.shape != x.shape or g.dtype != x.dtype or g.device != x.device:
                raise ValueError(f"{name} must be {tuple(x.shape)} {x.dtype} on {x.device}, "
                                 f"got {tuple(g.shape)} {g.dtype} on {g.device}")
        dq, dk, dv = grads
    if B * H == 0 or T == 0 or S == 0 or q.numel() == 0:  # nothing to accumulate: all zero
        return dq.zero_(), dk.zero_(), dv.zero_()
    packed = q_starts is not None
    g_strides = _packed_strides(grad_out) if packed else tuple(grad_out.stride())
    dq_strides = _packed_strides(dq) if packed else tuple(dq.stride())
    strides = (*q_strides, *k.stride(), *v.stride(), *g_strides)
    tensors = {"q": q, "k": k, "v": v, "grad_out": grad_out, "dq": dq, "dk": dk, "dv": dv}
    windowed = _window_mode(window, causal, T, S)[0] != NO_WINDOW.value
    hopper = _hopper_module() if hopper_backward_reason(tensors, packed, B * H, windowed) is None else None
    on_hopper = {kind: hopper is not None and hopper.ENABLED[(kind, q.shape[-1])] for kind in ("dkdv", "dq")}
    for n_heads, pointers, c in _launches(q, k, q_lengths, kv_lengths, q_starts, T, activations,
                                          window, causal):
        group = (grad_out, q, k, v, pointers, c["ACT"], c["HEAD_TABLE"], c["HAS_KV_LEN"], T, B, n_heads, scale)
        if on_hopper["dkdv"]:
            hopper.backward_hopper("dkdv", *group, (dk, dv))
        else:
            _launch("dkdv", c["BLOCK_D"], q, _grid(S, B * n_heads, "BLOCK_N"),
                    (q, k, v, grad_out, dk, dv, *pointers, *strides, *dk.stride(), *dv.stride(),
                     n_heads, T, S, float(scale)), c)
        if on_hopper["dq"]:
            hopper.backward_hopper("dq", *group, (dq,))
        else:
            _launch("dq", c["BLOCK_D"], q, _grid(T, B * n_heads, "BLOCK_M"),
                    (q, k, v, grad_out, dq, *pointers, *strides, *dq_strides,
                     n_heads, T, S, float(scale)), c)
    return dq, dk, dv


def _max_offset(x: torch.Tensor) -> int:
    """Largest element offset within one x[b, h] (the kernels index a head in 32 bits)."""
    return sum((size - 1) * abs(stride) for size, stride in zip(x.shape[2:], x.stride()[2:]))


def unsupported(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, packed: bool = False) -> str | None:
    """None when these kernels handle q, k, v; else a one-line reason. `packed`: q is [N, H, D]
    (the batch's query rows back to back), k and v [B, H, S, D]."""
    if q.dim() != (3 if packed else 4) or k.dim() != 4 or v.dim() != 4:
        return "q, k, v must be [N, H, D], [B, H, S, D] x 2" if packed else "q, k, v must be 4-D [B, H, T, D]"
    if packed:
        if q.shape[1] != k.shape[1] or k.shape[:3] != v.shape[:3]:
            return f"shapes do not match: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        q = q.unsqueeze(0).transpose(1, 2)      # [1, H, N, D]: the per-head span check below
    if q.shape[1] != k.shape[1] or (not packed and q.shape[0] != k.shape[0]) or k.shape[:3] != v.shape[:3]:
        return f"shapes do not match: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
    if not q.shape[3] == k.shape[3] == v.shape[3]:
        return "q, k and v must share one head dim"
    if not 1 <= q.shape[3] <= _MAX_HEAD_DIM:
        return f"head dim {q.shape[3]} is outside 1..{_MAX_HEAD_DIM}"
    if q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return f"dtype {q.dtype} is not float32, float16 or bfloat16"
    if not q.dtype == k.dtype == v.dtype:
        return "q, k and v must share one dtype"
    if not q.device == k.device == v.device:
        return "q, k and v must be on one device"
    if q.device.type != "cuda" and not _INTERPRET:
        return f"{q.device.type} tensors need CUDA (or TRITON_INTERPRET=1)"
    if _INTERPRET and q.dtype == torch.bfloat16:
        return "bfloat16 is unreliable in the Triton interpreter"
    if max(_max_offset(q), _max_offset(k), _max_offset(v)) > _INT32_MAX:
        return "one head's slice spans more than 2^31 elements"
    return None
