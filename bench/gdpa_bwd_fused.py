"""Experiment: the GDPA backward in one pass, dQ accumulated atomically.

    python3 bench/gdpa_bwd_fused.py [--json PATH]     # on a GPU: check, then time both backwards

Why. The GDPA backward (templates/kernels/gdpa.py) runs two kernels: dK/dV per key tile
(Q·Kᵀ, act and act' of it, dO·Vᵀ, Pᵀ·dO, dSᵀ·Q: 4 GEMMs a tile pair) and dQ per query tile, which
recomputes Q·Kᵀ, act' (a MUFU tanh a score for gelu_tanh) and dO·Vᵀ to get dS·K (3 GEMMs). GDPA is
the second largest group of the models' GPU time (kunlun_60g: 69 of 185 ms, about three quarters
of it backward). This variant adds dS·K to the dK/dV pass and accumulates it, scaled, into an fp32
dQ buffer with atomic adds: 5 GEMMs and one activation a tile pair instead of 7 and two, for
BLOCK_M x D atomic adds a tile pair and one cast of the buffer. This script checks it against the
two-pass backward and times both at bench_gdpa.py's shapes on jagged packed queries (the models'
layout; --full adds full lengths); whether the atomics cost less than the recomputation is what
it is for.

Scope (an experiment the compiler does not select): the kernel file's layouts, activations, head
tables and windows; the dK/dV config list. Gradients are not bitwise deterministic (atomic order).
tests/test_gdpa_bwd_fused.py checks it against the two-pass backward under Triton's interpreter.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import triton
import triton.language as tl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_gdpa import ACT, SHAPES, gdpa as g  # noqa: E402
from benchutil import (compare_backwards, describe_comparison, direct_launch, gdpa_inputs,  # noqa: E402
                       gpu_script_args, write_json)

# The two-pass kernels' helpers and constants, resolved by the kernel below through this module.
_tile_of_program, _clamp, _q_rows, _head_base = g._tile_of_program, g._clamp, g._q_rows, g._head_base
_load_rows, _store_rows, _query_range, _in_band = g._load_rows, g._store_rows, g._query_range, g._in_band
_act_and_grad, _act_factor, NO_WINDOW = g._act_and_grad, g._act_factor, g.NO_WINDOW


@triton.jit
def _gdpa_bwd_fused_kernel(
    Q, K, V, DO, DK, DV, DQA, Q_LEN, KV_LEN, HEADS, Q_STARTS,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dot, stride_dod,
    stride_dkb, stride_dkh, stride_dkn, stride_dkd,
    stride_dvb, stride_dvh, stride_dvn, stride_dvd,
    stride_ab, stride_ah, stride_at, stride_ad,
    n_heads, T, S, scale, window,
    HEAD_DIM: tl.constexpr, ACT: tl.constexpr, HAS_KV_LEN: tl.constexpr, MODE: tl.constexpr,
    HEAD_TABLE: tl.constexpr, FAST: tl.constexpr, DOT_PREC: tl.constexpr, PACKED_Q: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """gdpa._gdpa_bwd_dkdv_kernel, also adding each query tile's dQ share (scaled, fp32) into DQA."""
    scale = tl.cast(scale, tl.float32) / _act_factor(ACT)
    b, h, n0 = _tile_of_program(S, n_heads, BLOCK_N)
    h = tl.load(HEADS + h) if HEAD_TABLE else h
    cols = n0 + tl.arange(0, BLOCK_N)
    dk_base = _head_base(DK, b, h, stride_dkb, stride_dkh)
    dv_base = _head_base(DV, b, h, stride_dvb, stride_dvh)
    kv_len = _clamp(tl.load(KV_LEN + b), S) if HAS_KV_LEN else S
    if n0 >= kv_len:
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
    dq_base = _head_base(DQA, b, h, stride_ab, stride_ah) + q_row0 * stride_at
    offs_d = tl.arange(0, BLOCK_D)
    dk = tl.zeros((BLOCK_N, BLOCK_D), tl.float32)
    dv = tl.zeros((BLOCK_N, BLOCK_D), tl.float32)
    for m0 in range(lo, hi, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        q = _load_rows(q_base, rows, q_len, stride_qt, stride_qd, HEAD_DIM, BLOCK_D)
        do = _load_rows(do_base, rows, q_len, stride_dot, stride_dod, HEAD_DIM, BLOCK_D)
        s_t = tl.dot(k, tl.trans(q), input_precision=DOT_PREC)
        p_t, dact_t = _act_and_grad(s_t, ACT, FAST)
        ds_t = tl.dot(v, tl.trans(do), input_precision=DOT_PREC) * dact_t
        if MODE != NO_WINDOW:
            allowed = _in_band(rows[None, :], cols[:, None], window, MODE)
            p_t = tl.where(allowed, p_t, 0.0)
            ds_t = tl.where(allowed, ds_t, 0.0)
        ds_t = ds_t.to(q.dtype)
        dv = tl.dot(p_t.to(do.dtype), do, dv, input_precision=DOT_PREC)
        dk = tl.dot(ds_t, q, dk, input_precision=DOT_PREC)
        # keys past kv_len are zero rows of k: their dS adds nothing here
        dq = tl.dot(tl.trans(ds_t), k, input_precision=DOT_PREC) * scale     # [BLOCK_M, BLOCK_D]
        keep = rows[:, None] < q_len
        if BLOCK_D != HEAD_DIM:
            keep = keep & (offs_d[None, :] < HEAD_DIM)
        tl.atomic_add(dq_base + rows[:, None] * stride_at + offs_d[None, :] * stride_ad, dq,
                      mask=keep, sem="relaxed")
    valid = cols[:, None] < kv_len
    _store_rows(dk_base, cols, tl.where(valid, dk * scale, 0.0), S, stride_dkn, stride_dkd,
                HEAD_DIM, BLOCK_D)
    _store_rows(dv_base, cols, tl.where(valid, dv * scale, 0.0), S, stride_dvn, stride_dvd,
                HEAD_DIM, BLOCK_D)


def _tuned_fused():
    """The dK/dV config list (BLOCK_D <= 128 rows); the autotuner zeroes the dQ accumulator
    before each of its timing runs."""
    if g._INTERPRET:
        configs = [g._config(*g._INTERPRETER_CONFIG["dkdv"])]
    else:
        configs = [g._config(*c) for c in g._HOPPER_CONFIGS["dkdv"]][:None if g.AUTOTUNE else 1]
    return triton.autotune(configs=configs, key=g._TUNE_KEY, reset_to_zero=["DQA"])(_gdpa_bwd_fused_kernel)


_FUSED = _tuned_fused()


def gdpa_backward_fused(grad_out, q, k, v, q_lengths, kv_lengths, activations: str, scale: float,
                        window: int = -1, causal: bool = False, q_starts=None, max_len=None):
    """gdpa_backward's (dq, dk, dv) (same arguments and layouts) from one kernel a head group."""
    B, T, q_strides = g._q_layout(q, k, q_lengths, q_starts, max_len)
    S, H = k.shape[2], k.shape[1]
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    dq_acc = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    if B * H == 0 or T == 0 or S == 0 or q.numel() == 0:
        return dq_acc.to(q.dtype), dk.zero_(), dv.zero_()
    packed = q_starts is not None
    g_strides = g._packed_strides(grad_out) if packed else tuple(grad_out.stride())
    a_strides = g._packed_strides(dq_acc) if packed else tuple(dq_acc.stride())
    strides = (*q_strides, *k.stride(), *v.stride(), *g_strides)
    for n_heads, pointers, c in g._launches(q, k, q_lengths, kv_lengths, q_starts, T, activations,
                                            window, causal):
        if c["BLOCK_D"] * q.dtype.itemsize > 256:
            raise ValueError("gdpa_bwd_fused: rows of at most 256 bytes (bf16/fp16 D <= 128, fp32 <= 64)")
        kernel = _FUSED if g._INTERPRET else torch.library.wrap_triton(_FUSED)
        kernel[g._grid(S, B * n_heads, "BLOCK_N")](
            q, k, v, grad_out, dk, dv, dq_acc, *pointers, *strides, *dk.stride(), *dv.stride(),
            *a_strides, n_heads, T, S, float(scale), **c)
    return dq_acc.to(q.dtype), dk, dv


def main() -> int:
    args = gpu_script_args(__doc__, "gdpa_bwd_fused.json")
    if args is None:
        return 1
    H, D = 4, 128
    rows, start = [], time.time()
    torch.manual_seed(0)
    for kind, B, T, S in SHAPES:
        q, k, v, do = gdpa_inputs(B, H, T, S, D)
        scale = 1.0 / T
        full = torch.full((B,), T, device="cuda", dtype=torch.int64)
        jagged = torch.randint(0, T + 1, (B,), device="cuda")
        row = {"kind": kind, "B": B, "T": T, "S": S, "H": H, "D": D}
        valid = torch.arange(T, device="cuda")[None, :] < jagged[:, None]
        packed_q, packed_do = (x.transpose(1, 2)[valid].contiguous() for x in (q, do))
        starts = torch.cumsum(jagged, 0) - jagged
        layouts = [("packed jagged", (packed_q, packed_do, jagged, {"q_starts": starts, "max_len": T}))]
        if args.full:
            layouts.append(("full", (q, do, full, {})))
        for layout, (gq, gdo, n, kw) in layouts:
            args_ = (gdo, gq, k, v, n, None, ACT, scale)
            with direct_launch():   # as the models' triton_ops launch them in eager
                row[layout] = compare_backwards(lambda: g.gdpa_backward(*args_, **kw),
                                                lambda: gdpa_backward_fused(*args_, **kw))
        rows.append(row)
        print(f"{kind} B{B} T{T} S{S}: "
              + "; ".join(describe_comparison(lay, row[lay]) for lay, _ in layouts),
              flush=True)
        write_json(args.json, rows)
    write_json(args.json, rows, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
