"""Sliding-window softmax attention on Hopper (sm_90), in Gluon: a dK/dV kernel that
`window_attention.window_attention_backward` runs on an H100/H200 in place of its Triton one, after
the Triton dQ kernel (which writes delta for it), a dQ kernel of its own, run where HOPPER_DQ says,
and a forward that `window_attention.window_attention_forward` runs where HOPPER_FWD says.

Same semantics, layouts and results as the Triton backward (window_attention.py's docstring): the
band -LEFT <= j - i <= RIGHT, jagged lengths, padded [B, H, T, D] or packed [N, H, D] rows, zero
gradients past a length (padded) and no write outside the examples' rows (packed).

Why a second backward. On the H200 (bench/window_gluon_bwd.py, BENCHMARKS.md seventeenth session),
the Triton kernels' tiles and serial schedule written in Gluon ran the dK/dV kernel 1.24-1.41x and
the dQ kernel 1.04-1.48x faster than the Triton kernels. Compiled for sm_90, the Triton dK/dV
kernel keeps its owned K and V tiles in registers as wgmma A operands (175 registers a thread at
D 64, 255 at D 128, through shared-memory round trips) and splits each walk into two pipelined
loops (band edges, interior). Here K and V stay in shared memory (wgmma reads both operands there),
the walked tiles arrive by TMA into a ring of STAGES buffers, and the band-edge tiles are masked in
loops of their own while the interior ones run unmasked (SPLIT; before, one loop masked every tile);
the dK/dV kernel's rows of lse and delta come by TMA with each walked tile (STATS). With
what production needs (lengths, layouts, NaN-safety, masked stores) this file's dK/dV kernel
measured 1.03-1.21x the Triton one (1.07-1.10x on packed jagged rows) and its dQ kernel 0.89-1.05x
at D 64 and 1.04-1.20x at D 128 (0.99-1.00x on packed bidirectional rows), hence HOPPER_DQ on at
D 128 only (bench/window_hopper.py; BENCHMARKS.md, seventeenth to nineteenth sessions).

dK/dV: a program owns BLOCK_N keys of one (b, h) and walks the BLOCK_M-row query tiles that touch
its band, on transposed tiles (no operand transposed in registers):
    Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ;  Pᵀ = exp2(Sᵀ·scale·log2 e − lse2) in the band, dSᵀ = Pᵀ ⊙ (dPᵀ − delta)
    dV += Pᵀ·dO,  dK += dSᵀ·Q
dQ: a program owns BLOCK_M queries and walks the key tiles of their band: S = Q·Kᵀ, dP = dO·Vᵀ,
dQ += dS·K; it also writes delta = rowsum(dO ⊙ O) for the dK/dV kernel after it.
Forward: a program owns BLOCK_M queries and walks the key tiles of their band with the online
softmax (S = Q·Kᵀ, m and l per row, O += P·V), the band mask only on the tiles that need it (the
band's edges and the tile that crosses the length); lse = m + log l per row.

Rows past a length. TMA reads whole tiles: rows past an example's length are the padding or rows
outside every example (either may hold anything, NaN included) or the next example's rows, and
rows past the tensor read as zeros. Every score outside the band or the length is masked to zero
with a select (NaN-safe), and in the one walked tile that can reach past the length (the last) the
rows there (Q and dO for dK/dV, K and V for dQ, V for the forward) are zeroed in shared memory
before the GEMMs read them, so that 0·NaN never enters an accumulator. Owned rows past the length
are not masked: their garbage reaches only their own rows of a gradient or of o, never stored. Gradients are written by
masked stores (or, with TMA_OUT, whole owned tiles inside the length by TMA). With STATS the walked
rows' lse and delta come by TMA too: lse past a length is -inf or anything (its scores are masked by
the select), delta there 0 or another row's (finite), so dSᵀ = 0 · (dPᵀ − delta) stays 0.

Interior tiles (SPLIT). The walked tiles whose every score lies in the band and every walked row
inside the length form one contiguous range of a walk (_interior); they run in a loop of their own
with no select and no zeroing, the band's edge tiles before and after it in masked loops.

Addressing. A TMA descriptor is two-dimensional [rows, columns] over a tensor's memory: row r of
example b, head h is descriptor row (starts[b] if packed else b·B_ROWS) + h·H_ROWS + r, columns
h·H_COLS .. + D. `rows_view` finds (B_ROWS, H_ROWS, H_COLS) for contiguous tensors, heads views of a
[B, T, H·D] or [N, 3·H·D] projection (what the models pass) and most other strides; where none
exists, `unsupported` says so and the Triton kernels run.

Scope: bf16 and fp16, D 64 or 128, sm_90 only (wgmma); a Triton with Gluon (3.6 and later).
Gluon has no interpreter: on CPU the kernels are compiled for sm_90 and their SASS checked
(tests/test_window_hopper.py); what they compute is checked on the GPU (`gpu` tests).
This file depends on torch and triton only; it is copied as-is into generated packages.
"""
import functools
import importlib.util
import sys
from pathlib import Path

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared, mbarrier, tma, warpgroup_mma, warpgroup_mma_wait)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

def _beside(filename: str):
    """The kernel module in `filename` beside this file (kernel files are loaded by path, standalone).
    Inside a package (a generated model's kernels) it is the sibling module's own name, so that
    every kernel file's import of it shares one module."""
    package, dot, _ = __name__.rpartition(".")
    name = f"{package}.{Path(filename).stem}" if dot else f"{__name__}_{Path(filename).stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(filename))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    return sys.modules[name]


__all__ = ["CONFIGS", "FWD_OVERLAP", "HOPPER_DQ", "HOPPER_FWD", "VARIANT", "dkdv_hopper", "dq_hopper", "fwd_hopper",
           "launch", "launch_options", "launch_tuned",
           "rows_view", "stats_by_tma", "tensors_reason", "unsupported"]

_tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared
_tma_store = getattr(tma, "async_store", None) or tma.async_copy_shared_to_global
_barrier = getattr(gl, "thread_barrier", None) or gl.barrier      # Triton 3.6 / 3.7+
_LOG2E = 1.4426950408889634

# (BLOCK_M, BLOCK_N, STAGES, num_warps) of each kernel: the serial control's best configs on the H200
# (bench/results/2026-11-30-h200-s17/call1: dK/dV at 4 of 6 shapes, within 1% at the other two;
# dQ at 5 of 6). dK/dV walks 32-row
# query tiles (at 64 rows ptxas serializes the wgmmas); dQ owns 64 rows and walks 32-row key tiles.
# The forward owns 64 rows and walks 64-key tiles in a ring of two (HOPPER_FWD below says why).
CONFIGS = {"dkdv": (32, 64, 3, 4), "dq": (64, 32, 3, 4), "fwd": (64, 64, 2, 4)}
# Registers a thread, capped where the cap buys a program more an SM: the dK/dV kernel at D 64 takes
# 137-143 uncapped on sm_90 (three programs an SM), 128 capped (four; 0-48 bytes of stack).
_MAXNREG = {("dkdv", 64): 128}
# How the kernels are built, per head dim (constexprs and the register cap), each choice timed on
# the H200 by bench/window_hopper.py --variants (bench/results/2026-11-30-h200-s17/call4 and
# 2026-11-30-h200-s18/call2): PEEL runs a walk's last tile (the only one that can reach past the
# length, where Q/dO or K/V rows are zeroed) after the loop instead of testing every tile; EARLY
# loads the dK/dV tile's lse and delta before waiting for its Q and dO; MAXNREG applies _MAXNREG;
# TMA_OUT stores the dK/dV kernel's whole owned tiles by TMA through K and V's shared tiles, as the
# serial control does. At D 64 the dK/dV kernel was fastest unpeeled, late and capped (1.03-1.21x
# the Triton kernel, 7 of 8 rows); TMA_OUT gave full lengths 1.05-1.29x against 1.07-1.17x but the
# packed jagged rows (the models' layout) 1.03-1.10x against 1.06-1.10x, so it stays off there. At
# D 128 peeled and early, with TMA_OUT: 1.13-1.21x full and 1.00-1.04x packed, against 1.08-1.14x
# and 0.98-1.02x without it (s18 call 2).
# SPLIT names the kernels whose walks run their interior tiles (every score in the band, every walked
# row inside the length) in a loop of their own without the band mask (s25 call 1, `--variants`): the
# dK/dV kernel at D 64 1.00-1.10x on full lengths (the wider the band, the more: 1.10x at W 512
# bidirectional) and 0.98-1.05x on packed jagged rows; the dQ kernel at D 64 1.08-1.12x (it stays
# Triton's there, HOPPER_DQ). At D 128 (W 128, the one shape there) dK/dV 0.99-1.02x, dQ 0.97-0.99x
# (164 registers against 139): dK/dV only.
# STATS: the dK/dV kernel's walked tiles bring their rows' lse and delta by TMA with Q and dO, read
# from shared memory, instead of 16 global loads a thread a tile waited on after the score GEMMs
# (s25 call 3): 1.07-1.12x on top of SPLIT on packed jagged rows, 1.08-1.19x on full lengths, at
# both head dims. Only where T is a multiple of 4 (a TMA box starts at a 16-byte aligned address).
VARIANT = {64: {"PEEL": False, "EARLY": False, "MAXNREG": True, "TMA_OUT": False, "SPLIT": ("dkdv", "dq"),
                "STATS": True},
           128: {"PEEL": True, "EARLY": True, "MAXNREG": False, "TMA_OUT": True, "SPLIT": ("dkdv",),
                 "STATS": True}}
# Which head dims run the dQ kernel here (it also forms delta) rather than Triton's, which then
# writes delta for the dK/dV kernel here. At D 64 it measured 0.92-1.05x the Triton dQ kernel on full
# lengths and 0.85-1.00x on packed jagged rows: off. At D 128 1.09-1.20x full, 1.04-1.05x packed
# causal and 0.99-1.00x packed bidirectional (s17 call 4, s18 call 2): on since the launches here
# are bound once (launch(), below). Before, the second Gluon launch's host time made bench_window.py's
# eager D 128 causal forward+backward host-bound (s18 call 6: 1.145 ms wall for 0.788 of kernels);
# with it bound, 0.772 ms wall, 1.51x Flex against 1.43x with Triton's dQ (s19 call 6).
HOPPER_DQ = {64: False, 128: True}
# The forward (_fwd_kernel, CONFIGS["fwd"]): 64 query rows against 64-key tiles in a ring of two, four warps,
# each wgmma waited for at once. bench/window_gluon_fwd.py timed it against the Triton forward at
# bench_window.py's shapes (bench/results/2026-12-01-h200-s28/call7, GPU kernel time, seven configs): at D 64
# 1.10-1.12x on full lengths and 1.10-1.12x on packed jagged rows (two stages leave 40 KB of shared memory a
# program, five programs an SM; three stages 0.96-1.03x); at D 128 1.07-1.11x full but 0.93-1.01x packed
# (the models' layout), so on at D 64 only. FWD_OVERLAP, FlashAttention-3's intra-warpgroup overlap
# (_fwd_overlap: tile j's softmax under tile j-1's P·V), measured 1.05-1.10x Triton at D 64, behind the
# serial schedule at every row: off.
HOPPER_FWD = {64: True, 128: False}
FWD_OVERLAP = False


def launch_options(kind: str, head_dim: int) -> dict:
    """The `kind` kernel's launch options at this head dim: warps, register cap and the VARIANT
    constexprs it takes."""
    variant = VARIANT[head_dim]
    options = {"num_warps": CONFIGS[kind][3], "PEEL": variant["PEEL"], "SPLIT": kind in variant["SPLIT"],
               "maxnreg": _MAXNREG.get((kind, head_dim)) if variant["MAXNREG"] else None}
    if kind == "dkdv":
        options["EARLY"] = variant["EARLY"]
        options["TMA_OUT"] = variant["TMA_OUT"]
        options["STATS"] = variant["STATS"]
    return options


_DTYPES = {torch.bfloat16: gl.bfloat16, torch.float16: gl.float16}


@gluon.jit
def _ring(ring_desc, STAGES: gl.constexpr):
    """A ring of STAGES pairs of walked tiles (K and V, or Q and dO) shaped as ring_desc's block, and
    its barriers (one a stage), initialized. Returns (ring_a, ring_b, bars)."""
    dtype: gl.constexpr = ring_desc.dtype
    ring_a = gl.allocate_shared_memory(dtype, [STAGES] + ring_desc.block_type.shape, ring_desc.layout)
    ring_b = gl.allocate_shared_memory(dtype, [STAGES] + ring_desc.block_type.shape, ring_desc.layout)
    bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for stage in gl.static_range(STAGES):
        mbarrier.init(bars.index(stage), count=1)
    return ring_a, ring_b, bars


@gluon.jit
def _buffers(own_desc, ring_desc, STAGES: gl.constexpr):
    """A program's shared memory: its two owned tiles (K and V, or Q and dO) shaped as own_desc's
    block, a ring of STAGES pairs of walked tiles shaped as ring_desc's (_ring), and their barriers
    (one for the owned pair, one a stage), initialized. Returns (own_a, own_b, ring_a, ring_b,
    own_bar, bars)."""
    dtype: gl.constexpr = own_desc.dtype
    own_a = gl.allocate_shared_memory(dtype, own_desc.block_type.shape, own_desc.layout)
    own_b = gl.allocate_shared_memory(dtype, own_desc.block_type.shape, own_desc.layout)
    own_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    mbarrier.init(own_bar, count=1)
    ring_a, ring_b, bars = _ring(ring_desc, STAGES)
    return own_a, own_b, ring_a, ring_b, own_bar, bars


@gluon.jit
def _release(own_bar, bars, STAGES: gl.constexpr):
    """The barriers of _buffers invalidated (the walk is over)."""
    mbarrier.invalidate(own_bar)
    for stage in gl.static_range(STAGES):
        mbarrier.invalidate(bars.index(stage))


@gluon.jit
def _wait_tile(bars, tile, STAGES: gl.constexpr):
    mbarrier.wait(bars.index(tile % STAGES), (tile // STAGES) & 1)


@gluon.jit
def _load_pair(a_desc, b_desc, a_smem, b_smem, bars, tile, a_row, b_row, a_col, b_col,
               ROWS: gl.constexpr, STAGES: gl.constexpr, MORE_BYTES: gl.constexpr = 0):
    """TMA walked tile `tile` of two tensors (Q and dO, or K and V) into stage tile % STAGES; its
    barrier also expects MORE_BYTES that the caller loads onto it next (_load_query_tile)."""
    slot = tile % STAGES
    bar = bars.index(slot)
    mbarrier.expect(bar, a_desc.block_type.nbytes + b_desc.block_type.nbytes + MORE_BYTES)
    _tma_load(a_desc, [a_row + tile * ROWS, a_col], bar, a_smem.index(slot))
    _tma_load(b_desc, [b_row + tile * ROWS, b_col], bar, b_smem.index(slot))


@gluon.jit
def _load_query_tile(q_desc, do_desc, lse_desc, delta_desc, q_smem, do_smem, lse_ring, delta_ring, bars, tile,
                     q_row, g_row, q_col, g_col, stat_row, ROWS: gl.constexpr, STAGES: gl.constexpr,
                     STATS: gl.constexpr):
    """The dK/dV kernel's walked tile `tile`: Q and dO by _load_pair, and with STATS the rows' lse and
    delta (1-D descriptors over [B·H·T]) on the same stage barrier."""
    if STATS:
        more: gl.constexpr = lse_desc.block_type.nbytes + delta_desc.block_type.nbytes
        _load_pair(q_desc, do_desc, q_smem, do_smem, bars, tile, q_row, g_row, q_col, g_col, ROWS, STAGES, more)
        slot = tile % STAGES
        _tma_load(lse_desc, [stat_row + tile * ROWS], bars.index(slot), lse_ring.index(slot))
        _tma_load(delta_desc, [stat_row + tile * ROWS], bars.index(slot), delta_ring.index(slot))
    else:
        _load_pair(q_desc, do_desc, q_smem, do_smem, bars, tile, q_row, g_row, q_col, g_col, ROWS, STAGES)


@gluon.jit
def _zero_rows_from(smem, first_row, length, ROWS: gl.constexpr, HEAD_D: gl.constexpr,
                    num_warps: gl.constexpr):
    """Rows of a [ROWS, HEAD_D] shared tile at positions first_row + r >= length set to zero."""
    layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [num_warps, 1], [1, 0])
    tile = smem.load(layout)
    rows = first_row + gl.arange(0, ROWS, layout=gl.SliceLayout(1, layout))
    smem.store(gl.where(gl.expand_dims(rows < length, 1), tile, gl.zeros_like(tile)))


@gluon.jit
def _store_rows(base, stride_t, stride_d, acc, first_row, length, limit, ROWS: gl.constexpr,
                HEAD_D: gl.constexpr, dtype: gl.constexpr, num_warps: gl.constexpr):
    """Rows first_row + r < limit of a [ROWS, HEAD_D] fp32 tile stored at base (row stride stride_t),
    zero at rows >= length."""
    layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [num_warps, 1], [1, 0])
    x = gl.convert_layout(acc, layout)
    rows = first_row + gl.arange(0, ROWS, layout=gl.SliceLayout(1, layout))
    cols = gl.arange(0, HEAD_D, layout=gl.SliceLayout(0, layout))
    x = gl.where(gl.expand_dims(rows < length, 1), x, gl.zeros_like(x))
    ptrs = base + gl.expand_dims(rows.to(gl.int64) * stride_t, 1) + gl.expand_dims(cols * stride_d, 0)
    gl.store(ptrs, x.to(dtype), mask=gl.expand_dims(rows < limit, 1))


@gluon.jit
def _lse2(lse_base, rows, in_len):
    """The forward's lse of query rows in log2 units (exp2 is the fast path); 0 where not in_len
    (those scores are masked)."""
    return gl.load(lse_base + rows, mask=in_len, other=0.0) * 1.4426950408889634


@gluon.jit
def _example(LENGTHS, STARTS, b, T, PACKED: gl.constexpr):
    """(length, first row, rows a gradient is written to) of example b: padded, every row up to T
    (zeros past the length); packed, only the example's own rows."""
    length = gl.load(LENGTHS + b).to(gl.int32)
    if PACKED:
        start = gl.load(STARTS + b).to(gl.int32)
        limit = length
    else:
        start = b * 0
        limit = T
    return length, start, limit


@gluon.jit
def _out_base(X, b, h, start, stride_b, stride_h, stride_t, PACKED: gl.constexpr):
    if PACKED:
        return X + start.to(gl.int64) * stride_t + h.to(gl.int64) * stride_h
    return X + b.to(gl.int64) * stride_b + h.to(gl.int64) * stride_h


@gluon.jit
def _dkdv_tile(t, k_smem, v_smem, q_smem, do_smem, lse_ring, delta_ring, bars, dk, dv, m_first, length,
               lse_base, delta_base, n0, LEFT, RIGHT, scale_log2, STAGES: gl.constexpr, ZERO_TAIL: gl.constexpr,
               EARLY: gl.constexpr, MASK: gl.constexpr, STATS: gl.constexpr, num_warps: gl.constexpr):
    """dK, dV += walked query tile t (stage t % STAGES) against the owned keys from n0. ZERO_TAIL:
    first zero the tile's Q and dO rows past the length (padded rows may hold NaN). EARLY: load
    the rows' lse and delta before waiting for the tile (their latency under the wait). MASK: keep
    only the scores in the band and the length; off for an interior tile (_interior), where every
    score is in both. STATS: the rows' lse and delta came with the tile, by TMA, into lse_ring and
    delta_ring (EARLY does not apply)."""
    BLOCK_M: gl.constexpr = q_smem.shape[1]
    HEAD_D: gl.constexpr = q_smem.shape[2]
    BLOCK_N: gl.constexpr = k_smem.shape[0]
    dtype: gl.constexpr = q_smem.dtype
    st_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_M, 16])
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_D, 16])
    a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=acc_layout, k_width=2)
    slot = t % STAGES
    row0 = m_first + t * BLOCK_M
    rows = row0 + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(0, st_layout))
    in_len = rows < length
    if EARLY and not STATS:
        lse2 = _lse2(lse_base, rows, in_len)
        delta = gl.load(delta_base + rows, mask=in_len, other=0.0)
    _wait_tile(bars, t, STAGES)
    if STATS:   # rows past the length: lse -inf or anything (masked), delta finite (0, or another row's)
        lse2 = lse_ring.index(slot).load(gl.SliceLayout(0, st_layout)) * 1.4426950408889634
        delta = delta_ring.index(slot).load(gl.SliceLayout(0, st_layout))
    if ZERO_TAIL:
        if row0 + BLOCK_M > length:
            _zero_rows_from(q_smem.index(slot), row0, length, BLOCK_M, HEAD_D, num_warps)
            _zero_rows_from(do_smem.index(slot), row0, length, BLOCK_M, HEAD_D, num_warps)
            fence_async_shared()
            _barrier()
    st_zero = gl.zeros([BLOCK_N, BLOCK_M], gl.float32, st_layout)
    s_t = warpgroup_mma(k_smem, q_smem.index(slot).permute((1, 0)), st_zero, use_acc=False, is_async=True)
    dp_t = warpgroup_mma(v_smem, do_smem.index(slot).permute((1, 0)), st_zero, use_acc=False, is_async=True)
    s_t, dp_t = warpgroup_mma_wait(num_outstanding=0, deps=(s_t, dp_t))
    if not EARLY and not STATS:
        lse2 = _lse2(lse_base, rows, in_len)
        delta = gl.load(delta_base + rows, mask=in_len, other=0.0)
    p_t = gl.exp2(s_t * scale_log2 - gl.expand_dims(lse2, 0))
    if MASK:
        offs_n = n0 + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, st_layout))
        # the band -RIGHT <= i - j <= LEFT and the length i < length in two compares: i - j <= length - 1 - j
        # (key rows j past the length are not masked: they reach only their own dK, dV rows, never stored)
        rel = gl.expand_dims(rows, 0) - gl.expand_dims(offs_n, 1)          # i - j
        keep = (rel >= -RIGHT) & (rel <= gl.expand_dims(gl.minimum(length - 1 - offs_n, LEFT), 1))
        p_t = gl.where(keep, p_t, 0.0)
    ds_t = p_t * (dp_t - gl.expand_dims(delta, 0))
    p_op = gl.convert_layout(p_t.to(dtype), a_layout)
    ds_op = gl.convert_layout(ds_t.to(dtype), a_layout)
    dv = warpgroup_mma(p_op, do_smem.index(slot), dv, is_async=True)
    dk = warpgroup_mma(ds_op, q_smem.index(slot), dk, is_async=True)
    dv, dk, p_op, ds_op = warpgroup_mma_wait(num_outstanding=0, deps=(dv, dk, p_op, ds_op))
    return dk, dv


@gluon.jit
def _interior(lo, hi, first, n_loop, STEP: gl.constexpr):
    """[t_lo, t_hi) within [0, n_loop): the walked tiles (tile t's first row first + t·STEP) whose
    first row lies in [lo, hi], the interior of a walk; t_lo <= t_hi."""
    t_lo = gl.cdiv(gl.maximum(lo - first, 0), STEP)
    t_hi = gl.minimum(gl.maximum(hi - first + STEP, 0) // STEP, n_loop)
    return gl.minimum(t_lo, t_hi), t_hi


@gluon.jit
def _dkdv_walk(t0, t1, n_tiles, k_smem, v_smem, q_smem, do_smem, lse_ring, delta_ring, bars, dk, dv, m_first,
               length, lse_base, delta_base, n0, LEFT, RIGHT, scale_log2, q_desc, do_desc, lse_desc, delta_desc,
               q_row, g_row, q_col, g_col, stat_row, STAGES: gl.constexpr, ZERO_TAIL: gl.constexpr,
               EARLY: gl.constexpr, MASK: gl.constexpr, STATS: gl.constexpr, num_warps: gl.constexpr):
    """_dkdv_tile over walked tiles t0 .. t1 - 1, each stage refilled with tile t + STAGES once free."""
    BLOCK_M: gl.constexpr = q_smem.shape[1]
    for t in range(t0, t1):
        dk, dv = _dkdv_tile(t, k_smem, v_smem, q_smem, do_smem, lse_ring, delta_ring, bars, dk, dv, m_first,
                            length, lse_base, delta_base, n0, LEFT, RIGHT, scale_log2, STAGES, ZERO_TAIL,
                            EARLY, MASK, STATS, num_warps)
        if t + STAGES < n_tiles:  # tile t's stage is free
            _load_query_tile(q_desc, do_desc, lse_desc, delta_desc, q_smem, do_smem, lse_ring, delta_ring, bars,
                             t + STAGES, q_row, g_row, q_col, g_col, stat_row, BLOCK_M, STAGES, STATS)
    return dk, dv


@gluon.jit
def _dkdv_kernel(q_desc, k_desc, v_desc, do_desc, dk_desc, dv_desc, lse_desc, delta_desc, DK, DV, LSE, DELTA,
                 LENGTHS, STARTS,
                 q_b, q_h, q_c, k_b, k_h, k_c, v_b, v_h, v_c, g_b, g_h, g_c,
                 dk_b, dk_h, dk_c, dv_b, dv_h, dv_c,
                 stride_dkb, stride_dkh, stride_dkt, stride_dkd,
                 stride_dvb, stride_dvh, stride_dvt, stride_dvd,
                 H, T, LEFT, RIGHT, scale, scale_log2,
                 PACKED: gl.constexpr, STAGES: gl.constexpr, PEEL: gl.constexpr, EARLY: gl.constexpr,
                 TMA_OUT: gl.constexpr, SPLIT: gl.constexpr, STATS: gl.constexpr, num_warps: gl.constexpr):
    """dK, dV of BLOCK_N owned keys over the query tiles of their band. TMA_OUT: an owned tile inside
    the length leaves through K and V's shared-memory tiles by TMA (dk_desc, dv_desc, addressed as
    the inputs are); others, and every tile without TMA_OUT, by masked stores. SPLIT: the walk's
    interior tiles (every score in the band, every row inside the length) run without the mask.
    STATS: each walked tile's lse and delta rows arrive by TMA with its Q and dO (lse_desc, delta_desc:
    1-D over the [B·H·T] arrays) instead of by global loads a tile."""
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_D: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_D, 16])

    n0 = gl.program_id(0) * BLOCK_N
    bh = gl.program_id(1)
    b = bh // H
    h = bh % H
    length, start, limit = _example(LENGTHS, STARTS, b, T, PACKED)
    dk_base = _out_base(DK, b, h, start, stride_dkb, stride_dkh, stride_dkt, PACKED)
    dv_base = _out_base(DV, b, h, start, stride_dvb, stride_dvh, stride_dvt, PACKED)
    dk = gl.zeros([BLOCK_N, HEAD_D], gl.float32, acc_layout)
    dv = gl.zeros([BLOCK_N, HEAD_D], gl.float32, acc_layout)
    k_smem, v_smem, q_smem, do_smem, kv_bar, bars = _buffers(k_desc, q_desc, STAGES)
    lse_ring = gl.allocate_shared_memory(gl.float32, [STAGES, BLOCK_M], lse_desc.layout)
    delta_ring = gl.allocate_shared_memory(gl.float32, [STAGES, BLOCK_M], delta_desc.layout)
    lse_base = LSE + bh.to(gl.int64) * T
    delta_base = DELTA + bh.to(gl.int64) * T
    if n0 < length:
        # the query tiles that see a key of [n0, n0 + BLOCK_N): rows n0 - RIGHT .. n0 + BLOCK_N - 1 + LEFT
        first = gl.maximum(n0 - RIGHT, 0) // BLOCK_M
        n_tiles = gl.cdiv(gl.minimum(n0 + BLOCK_N + LEFT, length), BLOCK_M) - first
        m_first = first * BLOCK_M
        q_row = start + b * q_b + h * q_h + m_first
        g_row = start + b * g_b + h * g_h + m_first
        stat_row = bh * T + m_first

        mbarrier.expect(kv_bar, k_desc.block_type.nbytes + v_desc.block_type.nbytes)
        _tma_load(k_desc, [start + b * k_b + h * k_h + n0, h * k_c], kv_bar, k_smem)
        _tma_load(v_desc, [start + b * v_b + h * v_h + n0, h * v_c], kv_bar, v_smem)
        for stage in gl.static_range(STAGES):  # fill every stage
            if stage < n_tiles:
                _load_query_tile(q_desc, do_desc, lse_desc, delta_desc, q_smem, do_smem, lse_ring, delta_ring,
                                 bars, stage, q_row, g_row, h * q_c, h * g_c, stat_row, BLOCK_M, STAGES, STATS)
        mbarrier.wait(kv_bar, 0)
        # every tile but the last in the loop; the last (the only one that can reach past the length) after it
        n_loop = n_tiles
        if PEEL:
            n_loop = n_tiles - 1
        t_lo = n_loop
        t_hi = n_loop
        if SPLIT:   # interior: first row >= n0 + BLOCK_N - 1 - RIGHT, last row <= n0 + LEFT and < length
            t_lo, t_hi = _interior(n0 + BLOCK_N - 1 - RIGHT, gl.minimum(n0 + LEFT + 1, length) - BLOCK_M,
                                   m_first, n_loop, BLOCK_M)
        walk = (n_tiles, k_smem, v_smem, q_smem, do_smem, lse_ring, delta_ring, bars)
        at = (m_first, length, lse_base, delta_base, n0, LEFT, RIGHT, scale_log2, q_desc, do_desc, lse_desc,
              delta_desc, q_row, g_row, h * q_c, h * g_c, stat_row)
        dk, dv = _dkdv_walk(0, t_lo, *walk, dk, dv, *at, STAGES, not PEEL, EARLY, True, STATS, num_warps)
        if SPLIT:
            dk, dv = _dkdv_walk(t_lo, t_hi, *walk, dk, dv, *at, STAGES, False, EARLY, False, STATS, num_warps)
            dk, dv = _dkdv_walk(t_hi, n_loop, *walk, dk, dv, *at, STAGES, not PEEL, EARLY, True, STATS, num_warps)
        if PEEL:
            dk, dv = _dkdv_tile(n_tiles - 1, k_smem, v_smem, q_smem, do_smem, lse_ring, delta_ring, bars, dk, dv,
                                m_first, length, lse_base, delta_base, n0, LEFT, RIGHT, scale_log2, STAGES,
                                True, EARLY, True, STATS, num_warps)
    _release(kv_bar, bars, STAGES)
    whole = False
    if TMA_OUT:
        whole = n0 + BLOCK_N <= length
    if whole:    # K and V are read by nothing now: their tiles take dK and dV out
        k_smem.store((dk * scale).to(dtype))
        v_smem.store(dv.to(dtype))
        fence_async_shared()
        _tma_store(dk_desc, [start + b * dk_b + h * dk_h + n0, h * dk_c], k_smem)
        _tma_store(dv_desc, [start + b * dv_b + h * dv_h + n0, h * dv_c], v_smem)
        tma.store_wait(pendings=0)
    else:        # owned keys past the length: zeros (padded) or not written (packed)
        _store_rows(dk_base, stride_dkt, stride_dkd, dk * scale, n0, length, limit, BLOCK_N, HEAD_D,
                    dtype, num_warps)
        _store_rows(dv_base, stride_dvt, stride_dvd, dv, n0, length, limit, BLOCK_N, HEAD_D, dtype, num_warps)


@gluon.jit
def _dq_tile(j, q_smem, do_smem, k_smem, v_smem, bars, dq, n_first, offs_m, lo, lse2, delta, length,
             LEFT, scale_log2, STAGES: gl.constexpr, ZERO_TAIL: gl.constexpr, MASK: gl.constexpr,
             num_warps: gl.constexpr):
    """dQ += walked key tile j (stage j % STAGES) against the owned queries offs_m. ZERO_TAIL: first
    zero the tile's K and V rows past the length (padded rows may hold NaN). lo: each row's least i - j,
    max(-RIGHT, i - length + 1). MASK: keep only the scores in the band and the length; off for an
    interior tile (_interior)."""
    BLOCK_M: gl.constexpr = q_smem.shape[0]
    HEAD_D: gl.constexpr = q_smem.shape[1]
    BLOCK_N: gl.constexpr = k_smem.shape[1]
    dtype: gl.constexpr = q_smem.dtype
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_N, 16])
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_D, 16])
    a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=acc_layout, k_width=2)
    _wait_tile(bars, j, STAGES)
    slot = j % STAGES
    col0 = n_first + j * BLOCK_N
    if ZERO_TAIL:
        if col0 + BLOCK_N > length:
            _zero_rows_from(k_smem.index(slot), col0, length, BLOCK_N, HEAD_D, num_warps)
            _zero_rows_from(v_smem.index(slot), col0, length, BLOCK_N, HEAD_D, num_warps)
            fence_async_shared()
            _barrier()
    s_zero = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, s_layout)
    s = warpgroup_mma(q_smem, k_smem.index(slot).permute((1, 0)), s_zero, use_acc=False, is_async=True)
    dp = warpgroup_mma(do_smem, v_smem.index(slot).permute((1, 0)), s_zero, use_acc=False, is_async=True)
    s, dp = warpgroup_mma_wait(num_outstanding=0, deps=(s, dp))
    p = gl.exp2(s * scale_log2 - gl.expand_dims(lse2, 1))
    if MASK:
        cols = col0 + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s_layout))
        # the band -RIGHT <= i - j <= LEFT and the length j < length in two compares: i - j >= i - length + 1
        # (query rows i past the length are not masked: they reach only their own dQ rows, never stored)
        rel = gl.expand_dims(offs_m, 1) - gl.expand_dims(cols, 0)          # i - j
        keep = (rel >= gl.expand_dims(lo, 1)) & (rel <= LEFT)
        p = gl.where(keep, p, 0.0)
    ds_op = gl.convert_layout((p * (dp - gl.expand_dims(delta, 1))).to(dtype), a_layout)
    dq = warpgroup_mma(ds_op, k_smem.index(slot), dq, is_async=True)
    dq, ds_op = warpgroup_mma_wait(num_outstanding=0, deps=(dq, ds_op))
    return dq


@gluon.jit
def _dq_walk(j0, j1, n_tiles, q_smem, do_smem, k_smem, v_smem, bars, dq, n_first, offs_m, lo, lse2, delta,
             length, LEFT, scale_log2, k_desc, v_desc, k_row, v_row, k_col, v_col, STAGES: gl.constexpr,
             ZERO_TAIL: gl.constexpr, MASK: gl.constexpr, num_warps: gl.constexpr):
    """_dq_tile over walked tiles j0 .. j1 - 1, each stage refilled with tile j + STAGES once free."""
    BLOCK_N: gl.constexpr = k_smem.shape[1]
    for j in range(j0, j1):
        dq = _dq_tile(j, q_smem, do_smem, k_smem, v_smem, bars, dq, n_first, offs_m, lo, lse2, delta,
                      length, LEFT, scale_log2, STAGES, ZERO_TAIL, MASK, num_warps)
        if j + STAGES < n_tiles:  # tile j's stage is free
            _load_pair(k_desc, v_desc, k_smem, v_smem, bars, j + STAGES, k_row, v_row, k_col, v_col,
                       BLOCK_N, STAGES)
    return dq


@gluon.jit
def _dq_kernel(q_desc, k_desc, v_desc, do_desc, O, DQ, LSE, DELTA, LENGTHS, STARTS,
               q_b, q_h, q_c, k_b, k_h, k_c, v_b, v_h, v_c, g_b, g_h, g_c,
               stride_ob, stride_oh, stride_ot, stride_od,
               stride_dqb, stride_dqh, stride_dqt, stride_dqd,
               H, T, LEFT, RIGHT, scale, scale_log2,
               PACKED: gl.constexpr, STAGES: gl.constexpr, PEEL: gl.constexpr, SPLIT: gl.constexpr,
               num_warps: gl.constexpr):
    """dQ of BLOCK_M owned query rows; also delta = rowsum(dO ⊙ O) of those rows, written to DELTA
    (0 past the length) for the dK/dV kernel launched after this one. SPLIT: the walk's interior
    tiles (every score in the band, every key inside the length) run without the mask."""
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_D: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_N, 16])
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_D, 16])
    row_layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [num_warps, 1], [1, 0])

    m0 = gl.program_id(0) * BLOCK_M
    bh = gl.program_id(1)
    b = bh // H
    h = bh % H
    length, start, limit = _example(LENGTHS, STARTS, b, T, PACKED)
    dq_base = _out_base(DQ, b, h, start, stride_dqb, stride_dqh, stride_dqt, PACKED)
    dq = gl.zeros([BLOCK_M, HEAD_D], gl.float32, acc_layout)
    lse_base = LSE + bh.to(gl.int64) * T
    delta_base = DELTA + bh.to(gl.int64) * T
    q_smem, do_smem, k_smem, v_smem, q_bar, bars = _buffers(q_desc, k_desc, STAGES)
    if m0 < length:
        # the key tiles a query of [m0, m0 + BLOCK_M) sees: keys m0 - LEFT .. m0 + BLOCK_M - 1 + RIGHT
        first = gl.maximum(m0 - LEFT, 0) // BLOCK_N
        n_tiles = gl.cdiv(gl.minimum(m0 + BLOCK_M + RIGHT, length), BLOCK_N) - first
        n_first = first * BLOCK_N
        k_row = start + b * k_b + h * k_h + n_first
        v_row = start + b * v_b + h * v_h + n_first

        mbarrier.expect(q_bar, q_desc.block_type.nbytes + do_desc.block_type.nbytes)
        _tma_load(q_desc, [start + b * q_b + h * q_h + m0, h * q_c], q_bar, q_smem)
        _tma_load(do_desc, [start + b * g_b + h * g_h + m0, h * g_c], q_bar, do_smem)
        for stage in gl.static_range(STAGES):  # fill every stage
            if stage < n_tiles:
                _load_pair(k_desc, v_desc, k_smem, v_smem, bars, stage, k_row, v_row, h * k_c, h * v_c,
                           BLOCK_N, STAGES)

        offs_m = m0 + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, s_layout))
        lse2 = _lse2(lse_base, offs_m, offs_m < length)
        lo = gl.maximum(offs_m - length + 1, -RIGHT)
        # delta of the owned rows, from O (loaded here) and dO (once its tile lands)
        o_rows = m0 + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, row_layout))
        o_cols = gl.arange(0, HEAD_D, layout=gl.SliceLayout(0, row_layout))
        o_in = gl.expand_dims(o_rows < length, 1)
        o_ptrs = (_out_base(O, b, h, start, stride_ob, stride_oh, stride_ot, PACKED)
                  + gl.expand_dims(o_rows.to(gl.int64) * stride_ot, 1) + gl.expand_dims(o_cols * stride_od, 0))
        o = gl.load(o_ptrs, mask=o_in, other=0.0).to(gl.float32)
        mbarrier.wait(q_bar, 0)
        do = do_smem.load(row_layout).to(gl.float32)
        delta_rows = gl.sum(gl.where(o_in, o * do, 0.0), 1)
        gl.store(delta_base + o_rows, delta_rows, mask=o_rows < T)

        delta = gl.convert_layout(delta_rows, gl.SliceLayout(1, s_layout))
        n_loop = n_tiles
        if PEEL:
            n_loop = n_tiles - 1
        j_lo = n_loop
        j_hi = n_loop
        if SPLIT:   # interior: first key >= m0 + BLOCK_M - 1 - LEFT, last key <= m0 + RIGHT and < length
            j_lo, j_hi = _interior(m0 + BLOCK_M - 1 - LEFT, gl.minimum(m0 + RIGHT + 1, length) - BLOCK_N,
                                   n_first, n_loop, BLOCK_N)
        walk = (n_tiles, q_smem, do_smem, k_smem, v_smem, bars)
        at = (n_first, offs_m, lo, lse2, delta, length, LEFT, scale_log2, k_desc, v_desc, k_row, v_row,
              h * k_c, h * v_c)
        dq = _dq_walk(0, j_lo, *walk, dq, *at, STAGES, not PEEL, True, num_warps)
        if SPLIT:
            dq = _dq_walk(j_lo, j_hi, *walk, dq, *at, STAGES, False, False, num_warps)
            dq = _dq_walk(j_hi, n_loop, *walk, dq, *at, STAGES, not PEEL, True, num_warps)
        if PEEL:
            dq = _dq_tile(n_tiles - 1, q_smem, do_smem, k_smem, v_smem, bars, dq, n_first, offs_m, lo, lse2,
                          delta, length, LEFT, scale_log2, STAGES, True, True, num_warps)
    else:
        rows = m0 + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, row_layout))
        gl.store(delta_base + rows, gl.zeros([BLOCK_M], gl.float32, gl.SliceLayout(1, row_layout)),
                 mask=rows < T)
    _release(q_bar, bars, STAGES)
    _store_rows(dq_base, stride_dqt, stride_dqd, dq * scale, m0, length, limit, BLOCK_M, HEAD_D,
                dtype, num_warps)


# ----------------------------------------------------------------------------- forward

@gluon.jit
def _softmax_tile(s, m_i, l_i, j, n_first, m0, offs_m, lo, length, LEFT, RIGHT, scale_log2,
                  BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, s_layout: gl.constexpr):
    """Online softmax of key tile j's scores s [BLOCK_M, BLOCK_N] (raw Q·Kᵀ): (p, m, l, alpha), m in
    log2 units. The band and length mask only where the tile needs it: some key of it outside some
    owned row's band, or past the length."""
    col0 = n_first + j * BLOCK_N
    masked = (col0 < m0 + BLOCK_M - 1 - LEFT) | (col0 + BLOCK_N - 1 > m0 + RIGHT) | (col0 + BLOCK_N > length)
    if masked:
        cols = col0 + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s_layout))
        # -RIGHT <= i - j <= LEFT and j < length as two compares: i - j >= max(-RIGHT, i - length + 1)
        rel = gl.expand_dims(offs_m, 1) - gl.expand_dims(cols, 0)
        keep = (rel >= gl.expand_dims(lo, 1)) & (rel <= LEFT)
        x = gl.where(keep, s * scale_log2, float("-inf"))
        m_new = gl.maximum(m_i, gl.max(x, 1))
        m_sub = gl.where(m_new == float("-inf"), 0.0, m_new)     # no allowed key yet: subtract 0
        p = gl.exp2(x - gl.expand_dims(m_sub, 1))
    else:
        m_new = gl.maximum(m_i, gl.max(s, 1) * scale_log2)       # every owned row has a key here
        m_sub = m_new
        p = gl.exp2(s * scale_log2 - gl.expand_dims(m_sub, 1))
    alpha = gl.exp2(m_i - m_sub)
    l_i = l_i * alpha + gl.sum(p, 1)
    return p, m_new, l_i, alpha


@gluon.jit
def _scale_rows(x, row_scale, layout: gl.constexpr):
    """x [ROWS, COLS] in `layout` times row_scale [ROWS] (a slice of the score tiles' layout) a row."""
    return x * gl.expand_dims(gl.convert_layout(row_scale, gl.SliceLayout(1, layout)), 1)


@gluon.jit
def _zero_v_tail(v_smem, j, n_first, length, BLOCK_N: gl.constexpr, HEAD_D: gl.constexpr,
                 STAGES: gl.constexpr, num_warps: gl.constexpr):
    """V rows of tile j past the length zeroed in shared memory (padded rows may hold NaN, and a
    masked p of 0 times NaN is NaN); K's need not be: their scores are masked by a select."""
    col0 = n_first + j * BLOCK_N
    if col0 + BLOCK_N > length:
        _zero_rows_from(v_smem.index(j % STAGES), col0, length, BLOCK_N, HEAD_D, num_warps)
        fence_async_shared()
        _barrier()


@gluon.jit
def _fwd_serial(acc, m_i, l_i, n_tiles, q_smem, k_smem, v_smem, bars, s_zero, n_first, m0, offs_m, lo, length, LEFT,
            RIGHT, scale_log2, k_desc, v_desc, k_row, v_row, k_col, v_col, BLOCK_M: gl.constexpr,
            BLOCK_N: gl.constexpr, HEAD_D: gl.constexpr, STAGES: gl.constexpr, s_layout: gl.constexpr,
            o_layout: gl.constexpr, p_layout: gl.constexpr, num_warps: gl.constexpr):
    """The control's schedule (and a walk of one tile): each wgmma waited for at once."""
    dtype: gl.constexpr = q_smem.dtype
    for j in range(0, n_tiles):
        _wait_tile(bars, j, STAGES)
        s = warpgroup_mma(q_smem, k_smem.index(j % STAGES).permute((1, 0)), s_zero, use_acc=False,
                          is_async=True)
        s = warpgroup_mma_wait(num_outstanding=0, deps=(s, ))
        p, m_i, l_i, alpha = _softmax_tile(s, m_i, l_i, j, n_first, m0, offs_m, lo, length, LEFT, RIGHT,
                                           scale_log2, BLOCK_M, BLOCK_N, s_layout)
        p_op = gl.convert_layout(p.to(dtype), p_layout)
        _zero_v_tail(v_smem, j, n_first, length, BLOCK_N, HEAD_D, STAGES, num_warps)
        acc = _scale_rows(acc, alpha, o_layout)
        acc = warpgroup_mma(p_op, v_smem.index(j % STAGES), acc, is_async=True)
        acc, p_op = warpgroup_mma_wait(num_outstanding=0, deps=(acc, p_op))
        if j + STAGES < n_tiles:  # tile j's stage is free
            _load_pair(k_desc, v_desc, k_smem, v_smem, bars, j + STAGES, k_row, v_row, k_col, v_col,
                       BLOCK_N, STAGES)
    return acc, m_i, l_i


@gluon.jit
def _fwd_overlap(acc, m_i, l_i, n_tiles, q_smem, k_smem, v_smem, bars, s_zero, n_first, m0, offs_m, lo, length,
                 LEFT, RIGHT, scale_log2, k_desc, v_desc, k_row, v_row, k_col, v_col, BLOCK_M: gl.constexpr,
                 BLOCK_N: gl.constexpr, HEAD_D: gl.constexpr, STAGES: gl.constexpr, s_layout: gl.constexpr,
                 o_layout: gl.constexpr, p_layout: gl.constexpr, num_warps: gl.constexpr):
    """The walk with FlashAttention-3's intra-warpgroup overlap (FWD_OVERLAP: off, measured slower
    than _fwd_serial at more programs an SM)."""
    dtype: gl.constexpr = q_smem.dtype
    at = (n_first, m0, offs_m, lo, length, LEFT, RIGHT, scale_log2)
    # FlashAttention-3's order (ptxas keeps the wgmmas asynchronous only if no accumulator
    # in flight is read across the loop's back edge): tile j's Q·Kᵀ under the rescale of
    # acc, then tile j-1's P·V under tile j's softmax; nothing in flight between iterations.
    _wait_tile(bars, 0, STAGES)
    s = warpgroup_mma(q_smem, k_smem.index(0).permute((1, 0)), s_zero, use_acc=False, is_async=True)
    s = warpgroup_mma_wait(num_outstanding=0, deps=(s, ))
    p, m_i, l_i, alpha = _softmax_tile(s, m_i, l_i, 0, *at, BLOCK_M, BLOCK_N, s_layout)
    p_prev = gl.convert_layout(p.to(dtype), p_layout)
    for j in range(1, n_tiles):
        _wait_tile(bars, j, STAGES)
        s = warpgroup_mma(q_smem, k_smem.index(j % STAGES).permute((1, 0)), s_zero, use_acc=False,
                          is_async=True)
        acc = _scale_rows(acc, alpha, o_layout)
        acc = warpgroup_mma(p_prev, v_smem.index((j - 1) % STAGES), acc, is_async=True)
        s = warpgroup_mma_wait(num_outstanding=1, deps=(s, ))                        # Q·K_jᵀ
        p, m_i, l_i, alpha = _softmax_tile(s, m_i, l_i, j, *at, BLOCK_M, BLOCK_N, s_layout)
        acc, p_prev = warpgroup_mma_wait(num_outstanding=0, deps=(acc, p_prev))    # P_{j-1}·V_{j-1}
        if j - 1 + STAGES < n_tiles:  # tile j-1's stage is free
            _load_pair(k_desc, v_desc, k_smem, v_smem, bars, j - 1 + STAGES, k_row, v_row,
                       k_col, v_col, BLOCK_N, STAGES)
        p_prev = gl.convert_layout(p.to(dtype), p_layout)
    j_last = n_tiles - 1
    _zero_v_tail(v_smem, j_last, n_first, length, BLOCK_N, HEAD_D, STAGES, num_warps)
    acc = _scale_rows(acc, alpha, o_layout)
    acc = warpgroup_mma(p_prev, v_smem.index(j_last % STAGES), acc, is_async=True)
    acc, p_prev = warpgroup_mma_wait(num_outstanding=0, deps=(acc, p_prev))
    return acc, m_i, l_i


@gluon.jit
def _fwd_kernel(q_desc, k_desc, v_desc, O, LSE, LENGTHS, STARTS,
                q_b, q_h, q_c, k_b, k_h, k_c, v_b, v_h, v_c,
                stride_ob, stride_oh, stride_ot, stride_od,
                H, T, LEFT, RIGHT, scale_log2,
                PACKED: gl.constexpr, STAGES: gl.constexpr, OVERLAP: gl.constexpr,
                num_warps: gl.constexpr):
    """o and lse of BLOCK_M owned query rows: the online softmax over the key tiles of their band,
    window_attention._fwd_kernel's work. K and V tiles arrive by TMA into a ring of STAGES; o is
    written by masked stores (any strides), lse [B, H, T] (-inf past the length)."""
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_D: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    gl.static_assert(STAGES >= 2, "tiles j-1 (P·V) and j (Q·Kᵀ) are resident at once")
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_N, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_D, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    row_layout: gl.constexpr = gl.SliceLayout(1, s_layout)

    m0 = gl.program_id(0) * BLOCK_M
    bh = gl.program_id(1)
    b = bh // H
    h = bh % H
    length, start, limit = _example(LENGTHS, STARTS, b, T, PACKED)
    o_base = _out_base(O, b, h, start, stride_ob, stride_oh, stride_ot, PACKED)
    offs_m = m0 + gl.arange(0, BLOCK_M, layout=row_layout)
    acc = gl.zeros([BLOCK_M, HEAD_D], gl.float32, o_layout)
    m_i = gl.full([BLOCK_M], float("-inf"), gl.float32, row_layout)
    l_i = gl.zeros([BLOCK_M], gl.float32, row_layout)
    q_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_D], q_desc.layout)    # one owned tile
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    k_smem, v_smem, bars = _ring(k_desc, STAGES)     # (k_desc and v_desc: one block shape and layout)
    if m0 < length:
        first = gl.maximum(m0 - LEFT, 0) // BLOCK_N
        n_tiles = gl.cdiv(gl.minimum(m0 + BLOCK_M + RIGHT, length), BLOCK_N) - first
        n_first = first * BLOCK_N
        k_row = start + b * k_b + h * k_h + n_first
        v_row = start + b * v_b + h * v_h + n_first
        mbarrier.expect(q_bar, q_desc.block_type.nbytes)
        _tma_load(q_desc, [start + b * q_b + h * q_h + m0, h * q_c], q_bar, q_smem)
        for stage in gl.static_range(STAGES):  # fill every stage
            if stage < n_tiles:
                _load_pair(k_desc, v_desc, k_smem, v_smem, bars, stage, k_row, v_row, h * k_c, h * v_c,
                           BLOCK_N, STAGES)
        lo = gl.maximum(offs_m - length + 1, -RIGHT)
        at = (n_first, m0, offs_m, lo, length, LEFT, RIGHT, scale_log2)
        s_zero = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, s_layout)
        mbarrier.wait(q_bar, 0)
        if OVERLAP:
            acc, m_i, l_i = _fwd_overlap(acc, m_i, l_i, n_tiles, q_smem, k_smem, v_smem, bars, s_zero, *at, k_desc,
                                         v_desc, k_row, v_row, h * k_c, h * v_c, BLOCK_M, BLOCK_N, HEAD_D, STAGES,
                                         s_layout, o_layout, p_layout, num_warps)
        else:
            acc, m_i, l_i = _fwd_serial(acc, m_i, l_i, n_tiles, q_smem, k_smem, v_smem, bars, s_zero, *at, k_desc,
                                        v_desc, k_row, v_row, h * k_c, h * v_c, BLOCK_M, BLOCK_N, HEAD_D, STAGES,
                                        s_layout, o_layout, p_layout, num_warps)
    _release(q_bar, bars, STAGES)
    # rows past the length (their queries were whatever the memory held) and rows with no key: 0, -inf
    keep = (offs_m < length) & (l_i > 0)
    inv_l = gl.where(keep, 1.0 / gl.where(keep, l_i, 1.0), 0.0)
    lse = gl.where(keep, (m_i + gl.log2(gl.where(keep, l_i, 1.0))) * 0.6931471805599453, float("-inf"))
    gl.store(LSE + bh.to(gl.int64) * T + offs_m, lse, mask=offs_m < T)
    out = _scale_rows(acc, inv_l, o_layout)
    _store_rows(o_base, stride_ot, stride_od, out, m0, length, limit, BLOCK_M, HEAD_D, dtype, num_warps)


# ----------------------------------------------------------------------------- host side

def rows_view(x: torch.Tensor, packed: bool):
    """(rows, cols, row stride, B_ROWS, H_ROWS, H_COLS) of the 2-D view [rows, cols] (last stride 1)
    in which element (b, h, t, d) of padded x [B, H, T, D] is row b·B_ROWS + h·H_ROWS + t, column
    h·H_COLS + d (packed x [N, H, D]: (n, h, d) is row n + h·H_ROWS, B_ROWS unused), or None when
    x's strides allow no such view. The view spans only x's own elements' address range."""
    D = x.shape[-1]
    if packed:
        N, H, _ = x.shape
        st, sh, sd = x.stride()
        B, sb, T = 1, 0, N
    else:
        B, H, T, _ = x.shape
        sb, sh, st, sd = x.stride()
    if sd != 1 and D > 1 or st <= 0:
        return None
    if B == 1:
        b_rows = 0
    elif sb % st == 0:
        b_rows = sb // st
    else:
        return None
    if H == 1:
        h_rows, h_cols = 0, 0
    elif sh % st == 0:
        h_rows, h_cols = sh // st, 0
    elif D <= sh < st:
        h_rows, h_cols = 0, sh
    else:
        return None
    rows = (B - 1) * b_rows + (H - 1) * h_rows + T
    cols = (H - 1) * h_cols + D
    if h_cols and cols > st:                  # heads side by side within one row of memory
        return None
    return rows, cols, st, b_rows, h_rows, h_cols


def unsupported(tensors: dict, packed: bool, B: int, H: int) -> str | None:
    """None when the Hopper kernels can run these tensors (q, k, v, grad_out: read by TMA;
    o, dq, dk, dv: any strides); otherwise a one-line reason."""
    return tensors_reason(tensors, {name: packed for name in TMA_READ}, B * H)


TMA_READ = ("q", "k", "v", "grad_out")   # the tensors the kernels read through TMA views
HEAD_DIMS = (64, 128)                    # the head dims the kernels are built for


def tensors_reason(tensors: dict, packed: dict, batch_heads: int) -> str | None:
    """The checks the Hopper backwards (this file's and gdpa_hopper.py's) share, None where all pass:
    one bf16 or fp16 dtype over every tensor, a head dim in HEAD_DIMS, batch_heads programs a column
    of the grid, a TMA view of each TMA_READ tensor (packed[name]: packed rows [N, H, D]), an sm_90
    device; otherwise the first failure as a one-line reason."""
    q = tensors["q"]
    if q.dtype not in _DTYPES or any(x.dtype != q.dtype for x in tensors.values()):
        return f"bf16 or fp16 only, got {q.dtype}"
    if q.shape[-1] not in HEAD_DIMS:
        return f"head dim 64 or 128 only, got {q.shape[-1]}"
    if batch_heads > 65535:
        return f"B·H = {batch_heads} programs a column of the grid; at most 65535"
    for name in (name for name in TMA_READ if name in tensors):    # (the forward reads no grad_out)
        reason = _tma_reason(tensors[name], packed[name])
        if reason is not None:
            return f"{name}{reason}"
    if q.device.type != "cuda" or _capability(q.device.index) != (9, 0):
        return "needs an sm_90 GPU (H100/H200: wgmma)"
    return None


@functools.cache
def _capability(index: int | None) -> tuple[int, int]:
    return torch.cuda.get_device_capability(index)


def _tma_reason(x: torch.Tensor, packed: bool) -> str | None:
    """None when x has a [rows, columns] view (rows_view) that TMA can address: 16-byte aligned
    pointer and row stride, fewer than 2**31 rows; otherwise the reason, after the tensor's name."""
    view = rows_view(x, packed)
    if view is None:
        return f"'s strides {tuple(x.stride())} have no [rows, columns] view for TMA"
    rows, _, st, *_ = view
    if x.data_ptr() % 16 or (st * x.element_size()) % 16 or rows >= 2**31:
        return " is not 16-byte aligned (pointer, row stride) for TMA, or has 2**31 rows"
    return None


@functools.cache
def _shared_layout(block_rows: int, head_dim: int, dtype: torch.dtype):
    """The swizzled shared-memory layout of a [block_rows, head_dim] tile (made once: ~9 µs of host
    time each, and a backward builds up to ten descriptors a call)."""
    return gl.NVMMASharedLayout.get_default_for([block_rows, head_dim], _DTYPES[dtype])


def _descriptor(x: torch.Tensor, packed: bool, block_rows: int):
    rows, cols, st, b_rows, h_rows, h_cols = rows_view(x, packed)
    D = x.shape[-1]
    layout = _shared_layout(block_rows, D, x.dtype)
    return TensorDescriptor(x, [rows, cols], [st, 1], [block_rows, D], layout), (b_rows, h_rows, h_cols)


def stats_by_tma(lse: torch.Tensor, T: int) -> bool:
    """Whether the dK/dV kernel can read lse (and delta, allocated alike) [B, H, T] by TMA: a box is
    read only from a 16-byte aligned address, and row bh·T + 32·i is one only where T is a multiple
    of 4 and the array itself is aligned (an illegal instruction otherwise, on the H200)."""
    return T % 4 == 0 and lse.data_ptr() % 16 == 0 and lse.is_contiguous()


def _stats_descriptor(x: torch.Tensor, block_rows: int):
    """A 1-D TMA descriptor over the contiguous fp32 [B, H, T] array x (lse or delta), block_rows a box."""
    return TensorDescriptor(x, [x.numel()], [1], [block_rows], _stats_layout(block_rows))


@functools.cache
def _stats_layout(block_rows: int):
    return gl.NVMMASharedLayout.get_default_for([block_rows], gl.float32)


def _out_strides(x: torch.Tensor, packed: bool) -> tuple[int, int, int, int]:
    if packed:                     # [N, H, D]: rows found through `starts`
        return 0, x.stride(1), x.stride(0), x.stride(2)
    return tuple(x.stride())


def _launch(kind: str, kernel, grad_out, q, k, v, tensors, lse, delta, lengths, starts, strides,
            B: int, H: int, T: int, left: int, right: int, scale: float) -> None:
    """kernel (`kind` "dq" or "dkdv") over every owned tile of every (b, h): q, k, v, grad_out read
    through TMA views, `tensors` (o, dq or dk, dv) with their `strides`; dK/dV with TMA_OUT also
    writes dk, dv through TMA views where both have one (else masked stores only)."""
    packed = starts is not None
    bm, bn, stages, _ = CONFIGS[kind]
    descs, rows = zip(*(_descriptor(x, packed, n) for x, n in ((q, bm), (k, bn), (v, bn), (grad_out, bm))))
    options = launch_options(kind, q.shape[-1])
    if kind == "dkdv":
        outs = tensors if options["TMA_OUT"] and all(_tma_reason(x, packed) is None for x in tensors) else None
        options["TMA_OUT"] = outs is not None
        out_descs, out_rows = zip(*(_descriptor(x, packed, bn) for x in outs)) if outs else (descs[1:3], rows[1:3])
        descs, rows = (*descs, *out_descs), (*rows, *out_rows)
        # elsewhere the kernel loads lse and delta itself; the descriptors it is passed (delta's,
        # always ours) then go unused
        options["STATS"] = options["STATS"] and stats_by_tma(lse, T)
        descs = (*descs, _stats_descriptor(lse if options["STATS"] else delta, bm), _stats_descriptor(delta, bm))
    launch(kernel, (triton.cdiv(T, bn if kind == "dkdv" else bm), B * H),
           (*descs, *tensors, lse, delta, lengths, starts if packed else lengths,
            *(r for view in rows for r in view), *strides, H, T, left, right, float(scale), float(scale) * _LOG2E),
           dict(PACKED=packed, STAGES=stages, **options))


def fwd_hopper(q, k, v, lengths, starts, B: int, H: int, T: int, left: int, right: int, scale: float, o, lse,
               config: tuple | None = None, overlap: bool | None = None) -> None:
    """Writes o (any strides) and lse (fp32 contiguous [B, H, T]) of window attention:
    window_attention._fwd_kernel's work, on Hopper. The caller checked `unsupported` (q, k, v read by
    TMA). config (BLOCK_M, BLOCK_N, STAGES, num_warps; BLOCK_M = 16 x num_warps) and overlap default
    to CONFIGS["fwd"] and FWD_OVERLAP (bench/window_gluon_fwd.py times others)."""
    packed = starts is not None
    bm, bn, stages, warps = config or CONFIGS["fwd"]
    descs, rows = zip(*(_descriptor(x, packed, n) for x, n in ((q, bm), (k, bn), (v, bn))))
    launch(_fwd_kernel, (triton.cdiv(T, bm), B * H),
           (*descs, o, lse, lengths, starts if packed else lengths, *(r for view in rows for r in view),
            *_out_strides(o, packed), H, T, left, right, float(scale) * _LOG2E),
           dict(PACKED=packed, STAGES=stages, OVERLAP=FWD_OVERLAP if overlap is None else overlap, num_warps=warps))


def dq_hopper(grad_out, q, k, v, o, lse, lengths, starts, B: int, H: int, T: int, left: int,
              right: int, scale: float, dq, delta) -> None:
    """Writes dq and delta = rowsum(dO ⊙ O) [B, H, T] (fp32, 0 past each length) of window
    attention: window_attention._bwd_dq_kernel's work, on Hopper. The caller checked `unsupported`;
    lse is fp32 contiguous [B, H, T]."""
    packed = starts is not None
    _launch("dq", _dq_kernel, grad_out, q, k, v, (o, dq), lse, delta, lengths, starts,
            (*_out_strides(o, packed), *_out_strides(dq, packed)), B, H, T, left, right, scale)


def dkdv_hopper(grad_out, q, k, v, lse, delta, lengths, starts, B: int, H: int, T: int, left: int,
                right: int, scale: float, dk, dv) -> None:
    """Writes dk and dv of window attention from delta (the dQ kernel's, Triton's or dq_hopper's):
    window_attention._bwd_dkdv_kernel's work, on Hopper."""
    packed = starts is not None
    _launch("dkdv", _dkdv_kernel, grad_out, q, k, v, (dk, dv), lse, delta, lengths, starts,
            (*_out_strides(dk, packed), *_out_strides(dv, packed)), B, H, T, left, right, scale)


# ----------------------------------------------------------------------------- launches

# A Gluon kernel launched through kernel[grid](...) spends more host time than its Triton twin:
# Triton's JIT binds and specializes ~40 arguments (TMA descriptors, scalars) on every launch
# (bench/launch_overhead.py --pieces, an H200 machine's host: a dK/dV launch 62.5 µs, of which the
# binder 24.8 µs and the compiled kernel's own launcher 21.9 µs; 89, 37 and 31 µs on another).
# bound_launch.launch goes through that path once per specialization and then calls the compiled
# kernel's launcher itself (41.4 µs there). launch_tuned does the same for an autotuned Triton
# kernel: window_attention.py and gdpa.py launch theirs through it (they reach bound_launch.py
# through this file, which loads it as every kernel file of a package shares it).
_bound_launch = _beside("bound_launch.py")
launch, launch_tuned = _bound_launch.launch, _bound_launch.launch_tuned
