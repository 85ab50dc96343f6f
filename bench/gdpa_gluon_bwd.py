"""Experiment: the GDPA backward in Gluon, its activation overlapped with the tensor cores (Hopper).

    python3 bench/gdpa_gluon_bwd.py [--json PATH] [--quick]    # on an H100/H200: check, then time
    python3 bench/gdpa_gluon_bwd.py --compile-only             # anywhere: compile for sm_90, print resources

Why. The backwards are 51 of the 83 ms our attention kernels take in a kunlun_60g step (BENCHMARKS.md,
fifteenth session); GDPA's dK/dV kernel takes 12.9 ms and its dQ kernel 12.2. Like the forward, the
Triton kernels (templates/kernels/gdpa.py) run each tile pair's GEMMs and the activation between
them one after the other, the tensor cores idle while the MUFU tanh and about ten FP32 ops a score
run. Triton 3.6's automatic warp specialization does not help here (measured slower:
bench/gdpa_ws_probe.py). The Gluon forward experiment (bench/gdpa_gluon.py) overlapped its
activation with the next tile's Q·Kᵀ and got 7-19% over its serial control. These two kernels apply
the same schedule to the backward.

dK/dV: a program owns BLOCK_N keys (K, V in shared memory) and walks the query tiles (Q, dO through
a TMA ring of STAGES), on transposed tiles so that no operand is transposed in registers:

    Sᵀ_0 = K·Q_0ᵀ, dPᵀ_0 = V·dO_0ᵀ; wait
    for i = 0 .. n-1:                   (in flight on entry: dV += Pᵀ_{i-1}·dO_{i-1}, dK += dSᵀ_{i-1}·Q_{i-1})
        issue Sᵀ_{i+1}, dPᵀ_{i+1}       (async; none after the last tile)
        Pᵀ_i = act(Sᵀ_i), dSᵀ_i = dPᵀ_i ⊙ act'(Sᵀ_i)   (MUFU and FP32 work under up to four wgmma groups)
        wait for tile i-1's dV, dK; refill its Q/dO stage with tile i-1+STAGES (TMA)
        issue dV += Pᵀ_i·dO_i, dK += dSᵀ_i·Q_i      (async)
        wait for Sᵀ_{i+1}, dPᵀ_{i+1}    (tile i's dV, dK stay in flight)

dQ: a program owns BLOCK_M queries (Q, dO in shared memory) and walks the key tiles (K, V through
the ring) the same way: S_{j+1} = Q·K_{j+1}ᵀ and dP_{j+1} = dO·V_{j+1}ᵀ issued, then dS_j = dP_j ⊙
act'(S_j) formed while they and dQ += dS_{j-1}·K_{j-1} run.

Tiles i-1, i and i+1 are resident at once, so STAGES >= 3. OVERLAP=False is each kernel's control:
the same tiles, ring and instructions, each GEMM waited for at once (the Triton kernels' serial
schedule).

Scope (an experiment, not a kernel the compiler selects): bf16, q, dO [B, H, T, D] and k, v
[B, H, S, D] contiguous, every length full, no window, gelu_tanh, D in {64, 128}, T a multiple of
BLOCK_M and S of BLOCK_N, two walked tiles at least. `main` checks dQ, dK and dV against the float32
torch reference on NaN-filled outputs and times each kernel beside its Triton counterpart (GPU time
from the profiler) in one process. tests/test_gdpa_gluon_bwd.py compiles both for sm_90 on a
machine without a GPU and checks the schedule in the SASS. Written in the sixteenth session; not
yet run on a GPU.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared, mbarrier, tma, warpgroup_mma, warpgroup_mma_wait)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the scripts beside this one
from compile_kernels import resource_usage  # noqa: E402
from gdpa_gluon import (GELU_CUBIC, SQRT_2_OVER_PI, _wait_tile, activation_under_wgmma,  # noqa: E402
                        sass_instructions)

_tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared
_tma_store = getattr(tma, "async_store", None) or tma.async_copy_shared_to_global


@gluon.jit
def _gelu_tanh_doubled_and_grad(x):
    """(2·gelu_tanh(x), 2·gelu_tanh'(x)); the halves go into the output scale (as in gdpa.py)."""
    x2 = x * x
    u = x * (x2 * (SQRT_2_OVER_PI * GELU_CUBIC) + SQRT_2_OVER_PI)
    t = gl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=r,r", [u], dtype=gl.float32,
                                  is_pure=True, pack=1)
    du = x2 * (3.0 * SQRT_2_OVER_PI * GELU_CUBIC) + SQRT_2_OVER_PI
    return x + x * t, (1.0 + t) + x * (1.0 - t * t) * du


@gluon.jit
def _load_q_do(q_desc, do_desc, q_smem, do_smem, bars, tile, q_row, BLOCK_M: gl.constexpr,
               STAGES: gl.constexpr):
    """TMA query tile `tile` of Q and dO into stage tile % STAGES, completing on its barrier."""
    slot = tile % STAGES
    bar = bars.index(slot)
    mbarrier.expect(bar, q_desc.block_type.nbytes + do_desc.block_type.nbytes)
    _tma_load(q_desc, [q_row + tile * BLOCK_M, 0], bar, q_smem.index(slot))
    _tma_load(do_desc, [q_row + tile * BLOCK_M, 0], bar, do_smem.index(slot))


@gluon.jit
def _operands(s_t, dp_t, tile, ctx, a_layout: gl.constexpr, dtype: gl.constexpr):
    """Pᵀ = act(Sᵀ) and dSᵀ = dPᵀ ⊙ act'(Sᵀ), as the register A operands of the dV and dK GEMMs
    (the walks' operand function: no use for the tile's index or a context)."""
    p_t, dact = _gelu_tanh_doubled_and_grad(s_t)
    return (gl.convert_layout(p_t.to(dtype), a_layout),
            gl.convert_layout((dp_t * dact).to(dtype), a_layout))


@gluon.jit
def dkdv_walk(k_smem, v_smem, q_smem, do_smem, bars, q_desc, do_desc, q_row, n_tiles, st_zero, dk, dv,
              operands: gl.constexpr, ctx, a_layout: gl.constexpr, STAGES: gl.constexpr,
              OVERLAP: gl.constexpr):
    """(dK, dV) accumulated over n_tiles query tiles from row q_row (Q, dO through the TMA ring
    `bars`, its first STAGES tiles already loading) against the owned K, V tiles in shared memory:
    the schedule of the module docstring (OVERLAP) or its serial control. operands(Sᵀ, dPᵀ, tile,
    ctx, a_layout, dtype) gives tile `tile`'s (Pᵀ, dSᵀ) A operands; ctx is passed through (the
    window kernel's band, lse and delta). Shared by bench/window_gluon_bwd.py."""
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    if OVERLAP:
        _wait_tile(bars, 0, STAGES)
        s_t = warpgroup_mma(k_smem, q_smem.index(0).permute((1, 0)), st_zero, use_acc=False, is_async=True)
        dp_t = warpgroup_mma(v_smem, do_smem.index(0).permute((1, 0)), st_zero, use_acc=False, is_async=True)
        s_t, dp_t = warpgroup_mma_wait(num_outstanding=0, deps=(s_t, dp_t))
        # tile 0 (peeled: no dV, dK of an earlier tile in flight yet)
        _wait_tile(bars, 1, STAGES)
        s_next = warpgroup_mma(k_smem, q_smem.index(1).permute((1, 0)), st_zero, use_acc=False, is_async=True)
        dp_next = warpgroup_mma(v_smem, do_smem.index(1).permute((1, 0)), st_zero, use_acc=False, is_async=True)
        p_prev, ds_prev = operands(s_t, dp_t, 0, ctx, a_layout, dtype)
        dv = warpgroup_mma(p_prev, do_smem.index(0), dv, use_acc=False, is_async=True)
        dk = warpgroup_mma(ds_prev, q_smem.index(0), dk, use_acc=False, is_async=True)
        s_t, dp_t = warpgroup_mma_wait(num_outstanding=2, deps=(s_next, dp_next))
        for i in range(1, n_tiles - 1):
            _wait_tile(bars, i + 1, STAGES)
            slot_next = (i + 1) % STAGES
            s_next = warpgroup_mma(k_smem, q_smem.index(slot_next).permute((1, 0)), st_zero,
                                   use_acc=False, is_async=True)
            dp_next = warpgroup_mma(v_smem, do_smem.index(slot_next).permute((1, 0)), st_zero,
                                    use_acc=False, is_async=True)
            p, ds = operands(s_t, dp_t, i, ctx, a_layout, dtype)
            dv, dk, p_prev, ds_prev = warpgroup_mma_wait(num_outstanding=2, deps=(dv, dk, p_prev, ds_prev))
            if i - 1 + STAGES < n_tiles:  # tile i-1's stage is read by nothing in flight now
                _load_q_do(q_desc, do_desc, q_smem, do_smem, bars, i - 1 + STAGES, q_row, BLOCK_M, STAGES)
            dv = warpgroup_mma(p, do_smem.index(i % STAGES), dv, is_async=True)
            dk = warpgroup_mma(ds, q_smem.index(i % STAGES), dk, is_async=True)
            s_t, dp_t = warpgroup_mma_wait(num_outstanding=2, deps=(s_next, dp_next))
            p_prev, ds_prev = p, ds
        last = n_tiles - 1
        p, ds = operands(s_t, dp_t, last, ctx, a_layout, dtype)
        dv, dk, p_prev, ds_prev = warpgroup_mma_wait(num_outstanding=0, deps=(dv, dk, p_prev, ds_prev))
        dv = warpgroup_mma(p, do_smem.index(last % STAGES), dv, is_async=True)
        dk = warpgroup_mma(ds, q_smem.index(last % STAGES), dk, is_async=True)
        dv, dk, p, ds = warpgroup_mma_wait(num_outstanding=0, deps=(dv, dk, p, ds))
    else:
        for i in range(0, n_tiles):
            _wait_tile(bars, i, STAGES)
            slot = i % STAGES
            s_t = warpgroup_mma(k_smem, q_smem.index(slot).permute((1, 0)), st_zero, use_acc=False,
                                is_async=True)
            dp_t = warpgroup_mma(v_smem, do_smem.index(slot).permute((1, 0)), st_zero, use_acc=False,
                                 is_async=True)
            s_t, dp_t = warpgroup_mma_wait(num_outstanding=0, deps=(s_t, dp_t))
            p, ds = operands(s_t, dp_t, i, ctx, a_layout, dtype)
            dv = warpgroup_mma(p, do_smem.index(slot), dv, is_async=True)
            dk = warpgroup_mma(ds, q_smem.index(slot), dk, is_async=True)
            dv, dk, p, ds = warpgroup_mma_wait(num_outstanding=0, deps=(dv, dk, p, ds))
            if i + STAGES < n_tiles:  # tile i's stage is free
                _load_q_do(q_desc, do_desc, q_smem, do_smem, bars, i + STAGES, q_row, BLOCK_M, STAGES)
    return dk, dv


@gluon.jit
def gdpa_bwd_dkdv_overlap_kernel(q_desc, k_desc, v_desc, do_desc, dk_desc, dv_desc, T, S, scale,
                                 STAGES: gl.constexpr, OVERLAP: gl.constexpr, num_warps: gl.constexpr):
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_D: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    gl.static_assert(STAGES >= 3, "query tiles i-1 (dV, dK), i and i+1 (Sᵀ, dPᵀ) are resident at once")
    st_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_M, 16])
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_D, 16])
    a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=acc_layout, k_width=2)

    pid_n = gl.program_id(0)
    bh = gl.program_id(1)
    kv_row = bh * S + pid_n * BLOCK_N
    q_row = bh * T
    n_tiles = T // BLOCK_M

    k_smem = gl.allocate_shared_memory(dtype, [BLOCK_N, HEAD_D], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [BLOCK_N, HEAD_D], v_desc.layout)
    q_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_M, HEAD_D], q_desc.layout)
    do_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_M, HEAD_D], do_desc.layout)
    kv_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(kv_bar, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(bars.index(i), count=1)

    mbarrier.expect(kv_bar, k_desc.block_type.nbytes + v_desc.block_type.nbytes)
    _tma_load(k_desc, [kv_row, 0], kv_bar, k_smem)
    _tma_load(v_desc, [kv_row, 0], kv_bar, v_smem)
    for i in gl.static_range(STAGES):  # fill every stage
        if i < n_tiles:
            _load_q_do(q_desc, do_desc, q_smem, do_smem, bars, i, q_row, BLOCK_M, STAGES)
    mbarrier.wait(kv_bar, 0)

    st_zero = gl.zeros([BLOCK_N, BLOCK_M], gl.float32, st_layout)
    dk = gl.zeros([BLOCK_N, HEAD_D], gl.float32, acc_layout)
    dv = gl.zeros([BLOCK_N, HEAD_D], gl.float32, acc_layout)

    dk, dv = dkdv_walk(k_smem, v_smem, q_smem, do_smem, bars, q_desc, do_desc, q_row, n_tiles,
                       st_zero, dk, dv, _operands, (0, ), a_layout, STAGES, OVERLAP)

    mbarrier.invalidate(kv_bar)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(bars.index(i))
    # K and V are read by nothing now: their tiles take dK and dV on the way out
    k_smem.store((dk * (scale * 0.5)).to(dtype))
    v_smem.store((dv * (scale * 0.5)).to(dtype))
    fence_async_shared()
    _tma_store(dk_desc, [kv_row, 0], k_smem)
    _tma_store(dv_desc, [kv_row, 0], v_smem)
    tma.store_wait(pendings=0)


@gluon.jit
def _load_k_v(k_desc, v_desc, k_smem, v_smem, bars, tile, kv_row, BLOCK_N: gl.constexpr,
              STAGES: gl.constexpr):
    """TMA key tile `tile` of K and V into stage tile % STAGES, completing on its barrier."""
    slot = tile % STAGES
    bar = bars.index(slot)
    mbarrier.expect(bar, k_desc.block_type.nbytes + v_desc.block_type.nbytes)
    _tma_load(k_desc, [kv_row + tile * BLOCK_N, 0], bar, k_smem.index(slot))
    _tma_load(v_desc, [kv_row + tile * BLOCK_N, 0], bar, v_smem.index(slot))


@gluon.jit
def _ds(s, dp, tile, ctx, a_layout: gl.constexpr, dtype: gl.constexpr):
    """dS = dP ⊙ act'(S), as the register A operand of the dQ GEMM (the dQ walk's operand function)."""
    _, dact = _gelu_tanh_doubled_and_grad(s)
    return gl.convert_layout((dp * dact).to(dtype), a_layout)


@gluon.jit
def dq_walk(q_smem, do_smem, k_smem, v_smem, bars, k_desc, v_desc, kv_row, n_tiles, s_zero, dq,
            ds_of: gl.constexpr, ctx, a_layout: gl.constexpr, STAGES: gl.constexpr, OVERLAP: gl.constexpr):
    """dQ accumulated over n_tiles key tiles from row kv_row (K, V through the TMA ring `bars`, its
    first STAGES tiles already loading) against the owned Q, dO tiles in shared memory, overlapped
    (OVERLAP) or serial. ds_of(S, dP, tile, ctx, a_layout, dtype) gives tile `tile`'s dS A operand;
    ctx is passed through. Shared by bench/window_gluon_bwd.py."""
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = k_desc.dtype
    if OVERLAP:
        _wait_tile(bars, 0, STAGES)
        s = warpgroup_mma(q_smem, k_smem.index(0).permute((1, 0)), s_zero, use_acc=False, is_async=True)
        dp = warpgroup_mma(do_smem, v_smem.index(0).permute((1, 0)), s_zero, use_acc=False, is_async=True)
        s, dp = warpgroup_mma_wait(num_outstanding=0, deps=(s, dp))
        # key tile 0 (peeled: no dQ GEMM of an earlier tile in flight yet)
        _wait_tile(bars, 1, STAGES)
        s_next = warpgroup_mma(q_smem, k_smem.index(1).permute((1, 0)), s_zero, use_acc=False, is_async=True)
        dp_next = warpgroup_mma(do_smem, v_smem.index(1).permute((1, 0)), s_zero, use_acc=False, is_async=True)
        ds_prev = ds_of(s, dp, 0, ctx, a_layout, dtype)
        dq = warpgroup_mma(ds_prev, k_smem.index(0), dq, use_acc=False, is_async=True)
        s, dp = warpgroup_mma_wait(num_outstanding=1, deps=(s_next, dp_next))
        for j in range(1, n_tiles - 1):
            _wait_tile(bars, j + 1, STAGES)
            slot_next = (j + 1) % STAGES
            s_next = warpgroup_mma(q_smem, k_smem.index(slot_next).permute((1, 0)), s_zero,
                                   use_acc=False, is_async=True)
            dp_next = warpgroup_mma(do_smem, v_smem.index(slot_next).permute((1, 0)), s_zero,
                                    use_acc=False, is_async=True)
            ds = ds_of(s, dp, j, ctx, a_layout, dtype)
            dq, ds_prev = warpgroup_mma_wait(num_outstanding=2, deps=(dq, ds_prev))
            if j - 1 + STAGES < n_tiles:  # tile j-1's stage is read by nothing in flight now
                _load_k_v(k_desc, v_desc, k_smem, v_smem, bars, j - 1 + STAGES, kv_row, BLOCK_N, STAGES)
            dq = warpgroup_mma(ds, k_smem.index(j % STAGES), dq, is_async=True)
            s, dp = warpgroup_mma_wait(num_outstanding=1, deps=(s_next, dp_next))
            ds_prev = ds
        last = n_tiles - 1
        ds = ds_of(s, dp, last, ctx, a_layout, dtype)
        dq, ds_prev = warpgroup_mma_wait(num_outstanding=0, deps=(dq, ds_prev))
        dq = warpgroup_mma(ds, k_smem.index(last % STAGES), dq, is_async=True)
        dq, ds = warpgroup_mma_wait(num_outstanding=0, deps=(dq, ds))
    else:
        for j in range(0, n_tiles):
            _wait_tile(bars, j, STAGES)
            slot = j % STAGES
            s = warpgroup_mma(q_smem, k_smem.index(slot).permute((1, 0)), s_zero, use_acc=False,
                              is_async=True)
            dp = warpgroup_mma(do_smem, v_smem.index(slot).permute((1, 0)), s_zero, use_acc=False,
                               is_async=True)
            s, dp = warpgroup_mma_wait(num_outstanding=0, deps=(s, dp))
            ds = ds_of(s, dp, j, ctx, a_layout, dtype)
            dq = warpgroup_mma(ds, k_smem.index(slot), dq, is_async=True)
            dq, ds = warpgroup_mma_wait(num_outstanding=0, deps=(dq, ds))
            if j + STAGES < n_tiles:  # tile j's stage is free
                _load_k_v(k_desc, v_desc, k_smem, v_smem, bars, j + STAGES, kv_row, BLOCK_N, STAGES)
    return dq


@gluon.jit
def gdpa_bwd_dq_overlap_kernel(q_desc, k_desc, v_desc, do_desc, dq_desc, T, S, scale,
                               STAGES: gl.constexpr, OVERLAP: gl.constexpr, num_warps: gl.constexpr):
    """dQ = Σ_j (dO·V_jᵀ ⊙ act'(Q·K_jᵀ))·K_j for BLOCK_M owned query rows, over the key tiles (a TMA
    ring of STAGES). OVERLAP: dS of key tile j is formed while tile j+1's Q·Kᵀ and dO·Vᵀ and tile
    j-1's dQ GEMM are in flight; else each GEMM is waited for at once."""
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_D: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    gl.static_assert(STAGES >= 3, "key tiles j-1 (dQ), j and j+1 (S, dP) are resident at once")
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_N, 16])
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_D, 16])
    a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=acc_layout, k_width=2)

    pid_m = gl.program_id(0)
    bh = gl.program_id(1)
    q_row = bh * T + pid_m * BLOCK_M
    kv_row = bh * S
    n_tiles = S // BLOCK_N

    q_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_D], q_desc.layout)
    do_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_D], do_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_D], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_D], v_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(bars.index(i), count=1)

    mbarrier.expect(q_bar, q_desc.block_type.nbytes + do_desc.block_type.nbytes)
    _tma_load(q_desc, [q_row, 0], q_bar, q_smem)
    _tma_load(do_desc, [q_row, 0], q_bar, do_smem)
    for i in gl.static_range(STAGES):  # fill every stage
        if i < n_tiles:
            _load_k_v(k_desc, v_desc, k_smem, v_smem, bars, i, kv_row, BLOCK_N, STAGES)
    mbarrier.wait(q_bar, 0)

    s_zero = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, s_layout)
    dq = gl.zeros([BLOCK_M, HEAD_D], gl.float32, acc_layout)

    dq = dq_walk(q_smem, do_smem, k_smem, v_smem, bars, k_desc, v_desc, kv_row, n_tiles, s_zero, dq,
                 _ds, (0, ), a_layout, STAGES, OVERLAP)

    mbarrier.invalidate(q_bar)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(bars.index(i))
    q_smem.store((dq * (scale * 0.5)).to(dtype))   # Q is read by nothing now: its tile takes dQ out
    fence_async_shared()
    _tma_store(dq_desc, [q_row, 0], q_smem)
    tma.store_wait(pendings=0)


def descriptors(tensors_and_rows, D: int):
    """TMA descriptors over the [rows, D] views of contiguous tensors, each with its tile's rows."""
    descs = []
    for x, rows in tensors_and_rows:
        flat = x.reshape(-1, D)
        layout = gl.NVMMASharedLayout.get_default_for([rows, D], gl.bfloat16)
        descs.append(TensorDescriptor(flat, list(flat.shape), list(flat.stride()), [rows, D], layout))
    return descs


def unsupported(kind: str, q, k, v, block_m: int, block_n: int) -> str | None:
    """Why the `kind` kernel ("dkdv": a program walks the query tiles; "dq": the key tiles) cannot
    run these inputs at these tiles, or None."""
    if q.dtype != torch.bfloat16 or not q.dtype == k.dtype == v.dtype:
        return "bf16 only"
    if q.shape[-1] not in (64, 128) or not all(x.is_contiguous() for x in (q, k, v)):
        return "contiguous q, k, v with D 64 or 128 only"
    T, S = q.shape[2], k.shape[2]
    walked, walked_tile = (T, block_m) if kind == "dkdv" else (S, block_n)
    if T % block_m or S % block_n or walked < 2 * walked_tile:
        return (f"T a multiple of {block_m} and S of {block_n}, with two "
                f"{'query' if kind == 'dkdv' else 'key'} tiles at least, only")
    return None


def gdpa_bwd_overlap(kind: str, grad_out, q, k, v, scale: float, block_m: int, block_n: int,
                     stages: int = 3, num_warps: int = 4, overlap: bool = True, out=None):
    """kind "dkdv": (dK, dV); "dq": dQ; of O = scale · gelu_tanh(q·kᵀ) · v, full lengths, through
    the Gluon kernel (overlap False: its serial control), into `out` if given (contiguous: a
    (dK, dV) pair or dQ)."""
    reason = unsupported(kind, q, k, v, block_m, block_n)
    if reason:
        raise ValueError(f"gdpa_bwd_overlap({kind}): {reason}")
    B, H, T, D = q.shape
    S = k.shape[2]
    do = grad_out.contiguous()
    if kind == "dkdv":
        dk, dv = out if out is not None else (torch.empty_like(k), torch.empty_like(v))
        descs = descriptors([(q, block_m), (k, block_n), (v, block_n), (do, block_m), (dk, block_n),
                             (dv, block_n)], D)
        gdpa_bwd_dkdv_overlap_kernel[(S // block_n, B * H)](*descs, T, S, float(scale), stages, overlap,
                                                            num_warps=num_warps)
        return dk, dv
    dq = out if out is not None else torch.empty_like(q)
    descs = descriptors([(q, block_m), (k, block_n), (v, block_n), (do, block_m), (dq, block_m)], D)
    gdpa_bwd_dq_overlap_kernel[(T // block_m, B * H)](*descs, T, S, float(scale), stages, overlap,
                                                      num_warps=num_warps)
    return dq


# ----------------------------------------------------------------------------- compile without a GPU

def compile_sm90(kind: str, block_m: int, block_n: int, stages: int = 3, num_warps: int = 4,
                 head_dim: int = 64, overlap: bool = True):
    """The `kind` kernel ("dkdv" or "dq") compiled for sm_90 by the installed Triton, with no GPU
    (descriptors over CPU tensors give the signature a launch would)."""
    import inspect

    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    from triton.runtime.jit import mangle_type
    q = torch.empty(1, 1, block_m, head_dim, dtype=torch.bfloat16)
    k = torch.empty(1, 1, block_n, head_dim, dtype=torch.bfloat16)
    if kind == "dkdv":
        fn = gdpa_bwd_dkdv_overlap_kernel
        descs = descriptors([(q, block_m), (k, block_n), (k, block_n), (q, block_m), (k, block_n),
                             (k, block_n)], head_dim)
    else:
        fn = gdpa_bwd_dq_overlap_kernel
        descs = descriptors([(q, block_m), (k, block_n), (k, block_n), (q, block_m), (q, block_m)], head_dim)
    params = list(inspect.signature(fn.fn).parameters)
    signature = {name: mangle_type(d) for name, d in zip(params, descs)}
    signature.update(T="i32", S="i32", scale="fp32", STAGES="constexpr", OVERLAP="constexpr",
                     num_warps="constexpr")
    constexprs = {(params.index("STAGES"),): stages, (params.index("OVERLAP"),): overlap,
                  (params.index("num_warps"),): num_warps}
    return triton.compile(GluonASTSource(fn, signature, constexprs=constexprs),
                          target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})


def wgmma_waits(instructions: list[str]) -> tuple[int, list[int]]:
    """(HGMMA instructions, the N of every `WARPGROUP.DEPBAR.LE gsb0, N`) in the SASS: where ptxas
    serializes the wgmmas (it does when registers run out), a wait for zero follows every HGMMA."""
    import re
    opcodes = (ins.split()[1] if ins.startswith("@") else ins.split()[0] for ins in instructions)
    hgmma = sum(1 for op in opcodes if op.startswith("HGMMA"))
    waits = [int(m.group(1), 0) for ins in instructions
             if (m := re.search(r"WARPGROUP\.DEPBAR\.LE gsb0\s*,\s*(0x[0-9a-f]+|\d+)", ins))]
    return hgmma, waits


# ----------------------------------------------------------------------------- GPU check and timing

# (BLOCK_M, BLOCK_N, STAGES, num_warps), 16 rows a warp. dK/dV: a program owns BLOCK_N keys and
# walks BLOCK_M-row query tiles. No 64-row query tiles there: the two Sᵀ tiles in flight beside dK
# and dV take 254-255 registers a thread, and ptxas serializes every wgmma (a
# `WARPGROUP.DEPBAR.LE gsb0, 0x0` after each HGMMA in the sm_90 SASS of Triton 3.6 and 3.9: the
# overlap gone); at 32 and 16 rows the schedule survives. dQ: a program owns BLOCK_M queries and
# walks BLOCK_N-row key tiles (the PFFN's 256-512 keys: 4-16 tiles).
CONFIGS = {
    "dkdv": [(32, 64, 3, 4), (32, 64, 4, 4), (32, 128, 3, 8), (32, 128, 4, 8), (16, 64, 4, 4)],
    "dq": [(64, 32, 3, 4), (64, 64, 3, 4), (128, 32, 3, 8), (128, 64, 3, 8), (64, 16, 4, 4)],
}
SHAPES = [(1152, 512, 512, 4, 128), (288, 2048, 2048, 4, 128), (1152, 1024, 256, 4, 128),
          (1152, 512, 512, 8, 64), (1152, 1024, 256, 8, 64)]   # (B, T, S, H, D): gdpa_ws_probe.py's
# --quick: correctness first, at the schedule's edges: 2 walked tiles (the peeled first and the
# last only), 3 (one loop iteration), 5 (stages refilled), 8 and more
QUICK_SHAPES = [(8, 128, 128, 4, 64), (8, 192, 192, 4, 64), (8, 320, 320, 4, 128), (8, 512, 256, 2, 64)]
TOLERANCE = 1e-2   # bf16 against the float32 reference, as the Triton kernels' GPU tests


def triton_kernel_ms(gdpa, grad_out, q, k, v, lengths, scale: float) -> dict[str, float]:
    """GPU ms of the Triton dK/dV and dQ kernels in one gdpa_backward (the profiler's kernel time)."""
    from benchutil import kernel_ms_by_name
    by_name = kernel_ms_by_name(lambda: gdpa.gdpa_backward(grad_out, q, k, v, lengths, None, "gelu_tanh", scale), 10)
    return {kind: sum(ms for name, ms in by_name.items() if f"bwd_{kind}_kernel" in name) for kind in ("dkdv", "dq")}


def print_compiled() -> None:
    """Each config of each kernel compiled for sm_90: resources and what its SASS schedule does."""
    for kind, configs in CONFIGS.items():
        for overlap in (True, False):
            for head_dim in (64, 128):
                for bm, bn, stages, warps in configs:
                    kernel = compile_sm90(kind, bm, bn, stages, warps, head_dim, overlap)
                    r = resource_usage(kernel.asm["cubin"])
                    instructions = sass_instructions(kernel.asm["cubin"])
                    hgmma, waits = wgmma_waits(instructions)
                    print(f"{kind} {'overlap' if overlap else 'control'} D{head_dim} {bm}x{bn} stages {stages} "
                          f"warps {warps}: regs {r['reg']} stack {r['stack']} shared {kernel.metadata.shared} "
                          f"tanh_under_wgmma {activation_under_wgmma(instructions)} hgmma {hgmma} "
                          f"waits {len(waits)} most_left_in_flight {max(waits, default=0)}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, "gdpa_gluon_bwd.json") if out else None)
    parser.add_argument("--quick", action="store_true",
                        help="small shapes at the schedule's edges: correctness first, little timing")
    parser.add_argument("--compile-only", action="store_true",
                        help="compile each config for sm_90 (no GPU needed) and print its resources")
    args = parser.parse_args()
    if args.compile_only:
        print_compiled()
        return 0
    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] != 9:
        print("needs a Hopper GPU (sm_90)", file=sys.stderr)
        return 1
    from bench_gdpa import gdpa   # the Triton kernels' module, as the compiler ships it
    from benchutil import gdpa_inputs, gdpa_reference, kernel_ms, write_json
    rows, start, wrong = [], time.time(), 0
    torch.manual_seed(0)
    for B, T, S, H, D in QUICK_SHAPES if args.quick else SHAPES:
        q, k, v, do = gdpa_inputs(B, H, T, S, D)
        scale = 1.0 / S
        lengths = torch.full((B,), T, device="cuda", dtype=torch.int64)
        n = min(B, 8)
        _, dq_ref, dk_ref, dv_ref = gdpa_reference(q[:n], k[:n], v[:n], do[:n], scale)
        refs = {"dkdv": (dk_ref, dv_ref), "dq": (dq_ref,)}
        row = {"B": B, "T": T, "S": S, "H": H, "D": D,
               "triton_ms": triton_kernel_ms(gdpa, do, q, k, v, lengths, scale), "gluon": {}}
        for kind, configs in CONFIGS.items():
            for (bm, bn, stages, warps), overlap in itertools.product(configs, (True, False)):
                name = f"{kind} {bm}x{bn}x{stages}x{warps}{'' if overlap else ' control'}"
                if unsupported(kind, q, k, v, bm, bn):
                    continue
                try:
                    # checked on NaN-filled outputs: a fresh torch.empty can be an earlier result's block
                    nan = (torch.full_like(k, float("nan")), torch.full_like(v, float("nan"))) \
                        if kind == "dkdv" else torch.full_like(q, float("nan"))
                    got = gdpa_bwd_overlap(kind, do, q, k, v, scale, bm, bn, stages, warps, overlap, out=nan)
                    got = got if kind == "dkdv" else (got,)
                    err = max(((x[:n].float() - r).norm() / r.norm()).item() for x, r in zip(got, refs[kind]))
                    ms = kernel_ms(lambda: gdpa_bwd_overlap(kind, do, q, k, v, scale, bm, bn, stages, warps,
                                                            overlap))
                    wrong += not err <= TOLERANCE
                    row["gluon"][name] = {"ms": ms, "rel_err_vs_fp32": err, "correct": err <= TOLERANCE,
                                          "vs_triton": row["triton_ms"][kind] / ms}
                except Exception as exc:  # an experiment: record what failed and go on
                    row["gluon"][name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        rows.append(row)
        write_json(args.json, rows)   # after every shape: a hang in a later one keeps these
        print(f"B{B} T{T} S{S} H{H} D{D}: triton dK/dV {row['triton_ms']['dkdv']:.3f} ms, "
              f"dQ {row['triton_ms']['dq']:.3f} ms; "
              + ", ".join(f"{name} {g['ms']:.3f} ms ({g['vs_triton']:.2f}x, err {g['rel_err_vs_fp32']:.1e}"
                          f"{'' if g['correct'] else ' WRONG'})" if "ms" in g else f"{name} {g['error']}"
                          for name, g in row["gluon"].items()), flush=True)
    write_json(args.json, rows, start)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
