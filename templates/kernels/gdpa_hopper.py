"""GDPA's backward on Hopper (sm_90), in Gluon: a dQ kernel and a dK/dV kernel that
`gdpa.gdpa_backward` runs on an H100/H200 in place of its Triton ones (ENABLED says which, per head
dim), for the models' case: no window (every key below kv_lengths, all S when there are none).

Same semantics, layouts and results as the Triton backward (gdpa.py's docstring): per-head
activations (one launch a group of heads, a head table where there are several), jagged queries in
padded [B, H, T, D] or packed [N, H, D] rows, k and v [B, H, S, D] (heads views of one projection
included), optional kv_lengths, zero gradients past a length (padded) and no write outside the
examples' rows (packed).

Why a second backward. On the H200 (bench/gdpa_gluon_bwd.py, BENCHMARKS.md seventeenth session) the
Triton kernels' tiles and serial schedule written in Gluon, the walked tiles fed by TMA into a ring
of STAGES buffers and every GEMM reading its operands from shared memory, ran the dQ kernel
1.16-1.27x and the dK/dV kernel 1.09-1.11x faster than the Triton kernels at D 64 (the presets' PFFN
head dim), on full lengths; at D 128 1.09-1.17x (dQ) and 1.01-1.05x (dK/dV). This file is that serial
control with what production needs: lengths, layouts, NaN-safety, head tables, masked stores. So
built, it kept part of that at D 64 (dQ 1.03-1.25x, dK/dV 1.01-1.14x on padded rows, 0.98-1.07x on
packed ones) and lost it at D 128 (see ENABLED).

dQ: a program owns BLOCK_M query rows of one (b, h) and walks every key tile below kv_len:
    S = Q·Kᵀ, dP = dO·Vᵀ;  dS = dP ⊙ act'(S);  dQ += dS·K
dK/dV: a program owns BLOCK_N keys and walks every query tile below q_len, on transposed tiles (no
operand transposed in registers):
    Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ;  Pᵀ = act(Sᵀ), dSᵀ = dPᵀ ⊙ act'(Sᵀ);  dV += Pᵀ·dO,  dK += dSᵀ·Q
and both scale their tile once at the end (scale / the activation's factor, as gdpa.py does).

Rows past a length. TMA reads whole tiles: walked rows past a length are padding (anything, NaN
included), the next example's rows or, past the tensor, zeros. A walk's last tile is the only one
that can reach past its length; its rows there (K and V for dQ, Q and dO for dK/dV) are zeroed in
shared memory before the GEMMs read them. Every activation has act(0) = 0 and a zero dO or V row
gives dP = 0, so a zeroed row contributes exactly nothing and no select is needed in the loop.
Owned rows past a length are not masked: their garbage reaches only their own gradient rows, which
are stored as zeros (padded) or not at all (packed).

Addressing, scope and testing as window_attention_hopper.py (whose TMA views, rows_view, and tile
helpers this file uses): bf16 and fp16, D 64 or 128, sm_90 only, a Triton with Gluon (3.6 and
later). On CPU the kernels are compiled for sm_90 and their SASS checked (tests/test_gdpa_hopper.py);
what they compute is checked on the GPU (`gpu` tests). Depends on torch and triton only; copied as-is
into generated packages.
"""
import importlib.util
import sys
from pathlib import Path

import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    mbarrier, warpgroup_mma, warpgroup_mma_wait)


def _beside(filename: str):
    """The kernel module in `filename` beside this file (kernel files are loaded by path, standalone).
    Inside a package (a generated model's kernels) it is the sibling module's own name, so that
    window_attention.py's import of the same file and this one share one module."""
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


_common = _beside("window_attention_hopper.py")
rows_view, tensors_reason, TMA_READ, HEAD_DIMS = (
    _common.rows_view, _common.tensors_reason, _common.TMA_READ, _common.HEAD_DIMS)
_descriptor, _out_strides, _launch = _common._descriptor, _common._out_strides, _common.launch
_tma_load, _barrier, fence_async_shared = _common._tma_load, _common._barrier, _common.fence_async_shared
_wait_tile, _load_pair, _zero_rows_from, _store_rows = (
    _common._wait_tile, _common._load_pair, _common._zero_rows_from, _common._store_rows)
_buffers, _release = _common._buffers, _common._release

__all__ = ["CONFIGS", "ENABLED", "backward_hopper", "rows_view", "unsupported"]

# (BLOCK_M, BLOCK_N, STAGES, num_warps) per (kernel, head dim): the serial control's best configs on
# the H200 (bench/results/2026-11-30-h200-s17/call1/g0/gdpa_gluon_bwd.log). dQ owns BLOCK_M query
# rows and walks BLOCK_N-key tiles; dK/dV owns BLOCK_N keys and walks BLOCK_M-row query tiles (at 64
# rows ptxas serializes that kernel's wgmmas).
CONFIGS = {("dq", 64): (64, 64, 3, 4), ("dq", 128): (128, 32, 3, 8),
           ("dkdv", 64): (32, 64, 4, 4), ("dkdv", 128): (32, 64, 3, 4)}
# Which kernels gdpa_backward runs here rather than in Triton, per head dim: bench/gdpa_hopper.py
# on the H200 (bench/results/2026-11-30-h200-s18/call2/g0), against the autotuned Triton kernels. At
# D 64: dQ 1.03-1.25x full, 0.96-1.21x jagged, 0.98-1.07x packed; dK/dV 1.01-1.14x, 1.04-1.09x and
# 0.99-1.04x. At D 128: dQ 0.67-0.76x, dK/dV 0.95-1.01x, so off.
ENABLED = {("dq", 64): True, ("dq", 128): False, ("dkdv", 64): True, ("dkdv", 128): False}


@gluon.jit
def _tanh(x):
    """tanh.approx.f32: one MUFU op (its ~2^-11 relative error is below the 16-bit rounding after)."""
    return gl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=r,r", [x], dtype=gl.float32,
                                     is_pure=True, pack=1)


@gluon.jit
def _act_and_grad(x, ACT: gl.constexpr):
    """(act(x), act'(x)) of gdpa.py's activation ids, both times gdpa._act_factor (2 for gelu_tanh,
    whose halves go into the output scale); callers drop what they do not use."""
    if ACT == 0:    # gelu_tanh: 2·gelu = x·(1 + tanh(u)), u = sqrt(2/pi)·(x + 0.044715·x³)
        x2 = x * x
        t = _tanh(x * (x2 * 0.035677408136300125 + 0.7978845608028654))
        y = x + x * t
        dy = (1.0 + t) + x * (1.0 - t * t) * (x2 * 0.10703222440890037 + 0.7978845608028654)
    elif ACT == 1:  # gelu (erf)
        cdf = 0.5 * (1.0 + gl.erf(x * 0.7071067811865476))
        y = x * cdf
        dy = cdf + x * gl.exp(x * x * -0.5) * 0.3989422804014327
    elif ACT == 2:  # silu, sigmoid in one MUFU op
        s = 0.5 + 0.5 * _tanh(0.5 * x)
        y = x * s
        dy = s * (1.0 + x * (1.0 - s))
    elif ACT == 3:  # relu
        y = gl.maximum(x, 0.0)
        dy = gl.where(x > 0.0, 1.0, 0.0)
    elif ACT == 4:  # relu2
        r = gl.maximum(x, 0.0)
        y = r * r
        dy = 2.0 * r
    else:           # identity
        y = x
        dy = x * 0.0 + 1.0
    return y, dy


@gluon.jit
def _program(Q_LEN, KV_LEN, HEADS, Q_STARTS, n_heads, T, S, HAS_KV_LEN: gl.constexpr,
             HEAD_TABLE: gl.constexpr, PACKED: gl.constexpr):
    """(b, h, q_len, kv_len, first query row, query rows a gradient is written to) of this program's
    (b, head slot): lengths clamped to [0, T] and [0, S]; padded, every row up to T is written
    (zeros past q_len), packed only the example's own rows."""
    bh = gl.program_id(1)
    b = bh // n_heads
    h = bh % n_heads
    if HEAD_TABLE:
        h = gl.load(HEADS + h)
    q_len = gl.minimum(gl.maximum(gl.load(Q_LEN + b).to(gl.int32), 0), T)
    kv_len = b * 0 + S             # a tensor even where S is specialized to a constant (1)
    if HAS_KV_LEN:
        kv_len = gl.minimum(gl.maximum(gl.load(KV_LEN + b).to(gl.int32), 0), S)
    if PACKED:
        start = gl.load(Q_STARTS + b).to(gl.int32)
        limit = q_len
    else:
        start = b * 0
        limit = T
    return b, h, q_len, kv_len, start, limit


@gluon.jit
def _dq_tile(j, q_smem, do_smem, k_smem, v_smem, bars, dq, kv_len, ACT: gl.constexpr,
             STAGES: gl.constexpr, num_warps: gl.constexpr):
    """dQ += key tile j (stage j % STAGES) against the owned Q and dO; K and V rows at or past
    kv_len zeroed first (only the last tile has any)."""
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
    col0 = j * BLOCK_N
    if col0 + BLOCK_N > kv_len:
        _zero_rows_from(k_smem.index(slot), col0, kv_len, BLOCK_N, HEAD_D, num_warps)
        _zero_rows_from(v_smem.index(slot), col0, kv_len, BLOCK_N, HEAD_D, num_warps)
        fence_async_shared()
        _barrier()
    s_zero = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, s_layout)
    s = warpgroup_mma(q_smem, k_smem.index(slot).permute((1, 0)), s_zero, use_acc=False, is_async=True)
    dp = warpgroup_mma(do_smem, v_smem.index(slot).permute((1, 0)), s_zero, use_acc=False, is_async=True)
    s, dp = warpgroup_mma_wait(num_outstanding=0, deps=(s, dp))
    _, dact = _act_and_grad(s, ACT)
    ds_op = gl.convert_layout((dp * dact).to(dtype), a_layout)
    dq = warpgroup_mma(ds_op, k_smem.index(slot), dq, is_async=True)
    dq, ds_op = warpgroup_mma_wait(num_outstanding=0, deps=(dq, ds_op))
    return dq


@gluon.jit
def _dq_kernel(q_desc, k_desc, v_desc, do_desc, DQ, Q_LEN, KV_LEN, HEADS, Q_STARTS,
               q_b, q_h, q_c, k_b, k_h, k_c, v_b, v_h, v_c, g_b, g_h, g_c,
               stride_dqb, stride_dqh, stride_dqt, stride_dqd,
               n_heads, T, S, scale,
               ACT: gl.constexpr, HAS_KV_LEN: gl.constexpr, HEAD_TABLE: gl.constexpr, PACKED: gl.constexpr,
               STAGES: gl.constexpr, num_warps: gl.constexpr):
    """dQ of BLOCK_M owned query rows of one (b, h) over every key tile below kv_len."""
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_D: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_D, 16])

    m0 = gl.program_id(0) * BLOCK_M
    b, h, q_len, kv_len, start, limit = _program(Q_LEN, KV_LEN, HEADS, Q_STARTS, n_heads, T, S,
                                                 HAS_KV_LEN, HEAD_TABLE, PACKED)
    if PACKED:
        dq_base = DQ + start.to(gl.int64) * stride_dqt + h.to(gl.int64) * stride_dqh
    else:
        dq_base = DQ + b.to(gl.int64) * stride_dqb + h.to(gl.int64) * stride_dqh
    dq = gl.zeros([BLOCK_M, HEAD_D], gl.float32, acc_layout)
    q_smem, do_smem, k_smem, v_smem, q_bar, bars = _buffers(q_desc, k_desc, STAGES)
    if (m0 < q_len) & (kv_len > 0):
        n_tiles = gl.cdiv(kv_len, BLOCK_N)
        k_row = b * k_b + h * k_h
        v_row = b * v_b + h * v_h
        mbarrier.expect(q_bar, q_desc.block_type.nbytes + do_desc.block_type.nbytes)
        _tma_load(q_desc, [start + b * q_b + h * q_h + m0, h * q_c], q_bar, q_smem)
        _tma_load(do_desc, [start + b * g_b + h * g_h + m0, h * g_c], q_bar, do_smem)
        for stage in gl.static_range(STAGES):  # fill every stage
            if stage < n_tiles:
                _load_pair(k_desc, v_desc, k_smem, v_smem, bars, stage, k_row, v_row, h * k_c, h * v_c,
                           BLOCK_N, STAGES)
        mbarrier.wait(q_bar, 0)
        for j in range(0, n_tiles):
            dq = _dq_tile(j, q_smem, do_smem, k_smem, v_smem, bars, dq, kv_len, ACT, STAGES, num_warps)
            if j + STAGES < n_tiles:  # tile j's stage is free
                _load_pair(k_desc, v_desc, k_smem, v_smem, bars, j + STAGES, k_row, v_row, h * k_c, h * v_c,
                           BLOCK_N, STAGES)
    _release(q_bar, bars, STAGES)
    _store_rows(dq_base, stride_dqt, stride_dqd, dq * scale, m0, q_len, limit, BLOCK_M, HEAD_D,
                dtype, num_warps)


@gluon.jit
def _dkdv_tile(i, k_smem, v_smem, q_smem, do_smem, bars, dk, dv, q_len, ACT: gl.constexpr,
               STAGES: gl.constexpr, num_warps: gl.constexpr):
    """dK, dV += query tile i (stage i % STAGES) against the owned K and V; Q and dO rows at or past
    q_len zeroed first (only the last tile has any)."""
    BLOCK_M: gl.constexpr = q_smem.shape[1]
    HEAD_D: gl.constexpr = q_smem.shape[2]
    BLOCK_N: gl.constexpr = k_smem.shape[0]
    dtype: gl.constexpr = q_smem.dtype
    st_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_M, 16])
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_D, 16])
    a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=acc_layout, k_width=2)
    _wait_tile(bars, i, STAGES)
    slot = i % STAGES
    row0 = i * BLOCK_M
    if row0 + BLOCK_M > q_len:
        _zero_rows_from(q_smem.index(slot), row0, q_len, BLOCK_M, HEAD_D, num_warps)
        _zero_rows_from(do_smem.index(slot), row0, q_len, BLOCK_M, HEAD_D, num_warps)
        fence_async_shared()
        _barrier()
    st_zero = gl.zeros([BLOCK_N, BLOCK_M], gl.float32, st_layout)
    s_t = warpgroup_mma(k_smem, q_smem.index(slot).permute((1, 0)), st_zero, use_acc=False, is_async=True)
    dp_t = warpgroup_mma(v_smem, do_smem.index(slot).permute((1, 0)), st_zero, use_acc=False, is_async=True)
    s_t, dp_t = warpgroup_mma_wait(num_outstanding=0, deps=(s_t, dp_t))
    p_t, dact = _act_and_grad(s_t, ACT)
    p_op = gl.convert_layout(p_t.to(dtype), a_layout)
    ds_op = gl.convert_layout((dp_t * dact).to(dtype), a_layout)
    dv = warpgroup_mma(p_op, do_smem.index(slot), dv, is_async=True)
    dk = warpgroup_mma(ds_op, q_smem.index(slot), dk, is_async=True)
    dv, dk, p_op, ds_op = warpgroup_mma_wait(num_outstanding=0, deps=(dv, dk, p_op, ds_op))
    return dk, dv


@gluon.jit
def _dkdv_kernel(q_desc, k_desc, v_desc, do_desc, DK, DV, Q_LEN, KV_LEN, HEADS, Q_STARTS,
                 q_b, q_h, q_c, k_b, k_h, k_c, v_b, v_h, v_c, g_b, g_h, g_c,
                 stride_dkb, stride_dkh, stride_dkt, stride_dkd,
                 stride_dvb, stride_dvh, stride_dvt, stride_dvd,
                 n_heads, T, S, scale,
                 ACT: gl.constexpr, HAS_KV_LEN: gl.constexpr, HEAD_TABLE: gl.constexpr, PACKED: gl.constexpr,
                 STAGES: gl.constexpr, num_warps: gl.constexpr):
    """dK, dV of BLOCK_N owned keys of one (b, h) over every query tile below q_len."""
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_D: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_D, 16])

    n0 = gl.program_id(0) * BLOCK_N
    b, h, q_len, kv_len, start, _ = _program(Q_LEN, KV_LEN, HEADS, Q_STARTS, n_heads, T, S,
                                             HAS_KV_LEN, HEAD_TABLE, PACKED)
    dk_base = DK + b.to(gl.int64) * stride_dkb + h.to(gl.int64) * stride_dkh
    dv_base = DV + b.to(gl.int64) * stride_dvb + h.to(gl.int64) * stride_dvh
    dk = gl.zeros([BLOCK_N, HEAD_D], gl.float32, acc_layout)
    dv = gl.zeros([BLOCK_N, HEAD_D], gl.float32, acc_layout)
    k_smem, v_smem, q_smem, do_smem, kv_bar, bars = _buffers(k_desc, q_desc, STAGES)
    if (n0 < kv_len) & (q_len > 0):
        n_tiles = gl.cdiv(q_len, BLOCK_M)
        q_row = start + b * q_b + h * q_h
        g_row = start + b * g_b + h * g_h
        mbarrier.expect(kv_bar, k_desc.block_type.nbytes + v_desc.block_type.nbytes)
        _tma_load(k_desc, [b * k_b + h * k_h + n0, h * k_c], kv_bar, k_smem)
        _tma_load(v_desc, [b * v_b + h * v_h + n0, h * v_c], kv_bar, v_smem)
        for stage in gl.static_range(STAGES):  # fill every stage
            if stage < n_tiles:
                _load_pair(q_desc, do_desc, q_smem, do_smem, bars, stage, q_row, g_row, h * q_c, h * g_c,
                           BLOCK_M, STAGES)
        mbarrier.wait(kv_bar, 0)
        for i in range(0, n_tiles):
            dk, dv = _dkdv_tile(i, k_smem, v_smem, q_smem, do_smem, bars, dk, dv, q_len, ACT, STAGES,
                                num_warps)
            if i + STAGES < n_tiles:  # tile i's stage is free
                _load_pair(q_desc, do_desc, q_smem, do_smem, bars, i + STAGES, q_row, g_row, h * q_c,
                           h * g_c, BLOCK_M, STAGES)
    _release(kv_bar, bars, STAGES)
    # keys at or past kv_len: zeros (every row up to S is written, as the Triton kernel does)
    _store_rows(dk_base, stride_dkt, stride_dkd, dk * scale, n0, kv_len, S, BLOCK_N, HEAD_D, dtype, num_warps)
    _store_rows(dv_base, stride_dvt, stride_dvd, dv * scale, n0, kv_len, S, BLOCK_N, HEAD_D, dtype, num_warps)


# ----------------------------------------------------------------------------- host side

def unsupported(tensors: dict, packed: bool, batch_heads: int, windowed: bool) -> str | None:
    """None when the Hopper kernels can run these tensors (q, k, v, grad_out: read by TMA, q and
    grad_out packed [N, H, D] when `packed`, k and v [B, H, S, D]; dq, dk, dv: any strides), with
    batch_heads = B·H programs a grid column, no window, and a kernel ENABLED at their head dim;
    otherwise a one-line reason."""
    head_dim = tensors["q"].shape[-1]
    if windowed:
        return "a window (the Hopper kernels walk every key below the length)"
    if head_dim in HEAD_DIMS and not any(ENABLED[(kind, head_dim)] for kind in ("dq", "dkdv")):
        return f"head dim {head_dim}: both kernels off there (ENABLED: slower than Triton's)"
    return tensors_reason(tensors, {name: packed and name in ("q", "grad_out") for name in TMA_READ},
                          batch_heads)


def backward_hopper(kind: str, grad_out, q, k, v, pointers, act: int, head_table: bool,
                    has_kv_len: bool, T: int, B: int, n_heads: int, scale: float, outs) -> None:
    """One head group's `kind` kernel ("dq" or "dkdv") for gdpa.gdpa_backward: writes outs ((dq,) or
    (dk, dv)) for the group's n_heads heads of B examples. pointers are gdpa._launches' (q_lengths,
    kv_lengths, head table, q_starts); T is the padded length (packed: the bound on every length).
    The caller checked `unsupported`."""
    packed = q.dim() == 3
    S = k.shape[2]
    bm, bn, stages, warps = CONFIGS[(kind, q.shape[-1])]
    descs, rows = zip(*(_descriptor(x, p, n) for x, p, n in
                        ((q, packed, bm), (k, False, bn), (v, False, bn), (grad_out, packed, bm))))
    if kind == "dq":
        kernel, owned, strides = _dq_kernel, triton.cdiv(T, bm), _out_strides(outs[0], packed)
    else:
        kernel, owned, strides = _dkdv_kernel, triton.cdiv(S, bn), (*outs[0].stride(), *outs[1].stride())
    scale = float(scale) / (2.0 if act == 0 else 1.0)   # _act_and_grad doubles gelu_tanh
    _launch(kernel, (owned, B * n_heads),
            (*descs, *outs, *pointers, *(r for view in rows for r in view), *strides, n_heads, T, S, scale),
            dict(ACT=act, HAS_KV_LEN=has_kv_len, HEAD_TABLE=head_table, PACKED=packed, STAGES=stages,
                 num_warps=warps))
