"""Experiment: sliding-window attention's backward in Gluon, the softmax overlapped with the tensor cores (Hopper).

    python3 bench/window_gluon_bwd.py [--json PATH] [--quick]    # on an H100/H200: check, then time
    python3 bench/window_gluon_bwd.py --compile-only             # anywhere: compile for sm_90, print resources

Why. Window attention's dK/dV kernel is the largest single kernel of a kunlun_60g step (16.6 ms of
37.5 for window attention; BENCHMARKS.md, fifteenth and sixteenth sessions). Like GDPA's, the Triton
kernel (templates/kernels/window_attention.py, _bwd_dkdv_kernel) runs each query tile's four GEMMs
and the exp2 between them one after the other. These kernels run bench/gdpa_gluon_bwd.py's
schedules (dkdv_walk, dq_walk) with the softmax backward as their operand functions in place of
the GDPA activation. dK/dV: a program owns BLOCK_N keys (K, V in shared memory) and walks only
the query tiles that touch its band (Q, dO through a TMA ring), on transposed tiles:

    Sᵀ_0 = K·Q_0ᵀ, dPᵀ_0 = V·dO_0ᵀ; wait
    for i = 0 .. n-1:                   (in flight on entry: tile i-1's dV and dK GEMMs)
        issue Sᵀ_{i+1}, dPᵀ_{i+1}       (async; none after the last tile)
        Pᵀ_i = exp2(Sᵀ_i·scale·log2 e − lse2_i) in the band, dSᵀ_i = Pᵀ_i ⊙ (dPᵀ_i − delta_i)
        wait for tile i-1's dV, dK; refill its stage with tile i-1+STAGES (TMA)
        issue dV += Pᵀ_i·dO_i, dK += dSᵀ_i·Q_i      (async)
        wait for Sᵀ_{i+1}, dPᵀ_{i+1}

lse2 (the forward's logsumexp in log2 units) and delta = rowsum(dO ⊙ O) come per query tile from
global memory, as in the Triton kernel. The dQ kernel (10.6 ms of the step in Triton) owns BLOCK_M
queries and walks the key tiles of their band the same way: dS_j formed while tile j+1's Q·Kᵀ and
dO·Vᵀ and tile j-1's dQ GEMM run. It is given delta; the Triton dQ kernel forms it itself (one
rowsum of dO ⊙ O a query tile), so the comparison slightly favours the Gluon kernel.
OVERLAP=False is each kernel's control: the same tiles and instructions, each GEMM waited for at
once.

Scope (an experiment, not a kernel the compiler selects): bf16, q, k, v, dO [B, H, T, D]
contiguous, every length full, the band -LEFT <= j - i <= RIGHT (bidirectional: LEFT = RIGHT =
window; causal: RIGHT = 0), every tile masked, D in {64, 128}, T a multiple of BLOCK_M and BLOCK_N,
the owned tile at least twice the walked one (so that every band spans two walked tiles at least).
`main` checks dQ, dK and dV against the float32 torch reference on NaN-filled outputs and times
each kernel beside its Triton counterpart (the profiler's GPU time) in one process;
tests/test_window_gluon_bwd.py compiles both for sm_90 without a GPU, checks the schedule in the
SASS, and checks their tile walks and formulas against autograd in float64. Written in the
sixteenth session; first run in the seventeenth (BENCHMARKS.md, sliding-window attention): the
overlap lost to its own serial control everywhere, and the serial dK/dV control became
templates/kernels/window_attention_hopper.py.
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import time
from pathlib import Path

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, mbarrier, tma

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the scripts beside this one
from compile_kernels import resource_usage  # noqa: E402
from gdpa_gluon import activation_under_wgmma, sass_instructions  # noqa: E402
from gdpa_gluon_bwd import (_load_k_v, _load_q_do, descriptors, dkdv_walk, dq_walk,  # noqa: E402
                            wgmma_waits)

_tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared
_tma_store = getattr(tma, "async_store", None) or tma.async_copy_shared_to_global
LOG2E = 1.4426950408889634


@gluon.jit
def _softmax_operands(s_t, dp_t, tile, ctx, a_layout: gl.constexpr, dtype: gl.constexpr):
    """Pᵀ and dSᵀ of walked query tile `tile` against the owned keys, as the register A operands of
    the dV and dK GEMMs; pairs outside the band are zero (gdpa_gluon_bwd.dkdv_walk's operand
    function). ctx: (the first walked row, the tile's row offsets, the owned keys, this head's
    LSE2 and DELTA rows, LEFT, RIGHT, scale·log2 e)."""
    m_first, offs_m, offs_n, LSE2, DELTA, LEFT, RIGHT, scale_log2 = ctx
    rows = m_first + tile * offs_m.shape[0] + offs_m
    lse2 = gl.load(LSE2 + rows)
    delta = gl.load(DELTA + rows)
    p_t = gl.exp2(s_t * scale_log2 - gl.expand_dims(lse2, 0))
    rel = gl.expand_dims(rows, 0) - gl.expand_dims(offs_n, 1)        # i - j
    p_t = gl.where((rel >= -RIGHT) & (rel <= LEFT), p_t, 0.0)
    ds_t = p_t * (dp_t - gl.expand_dims(delta, 0))
    return gl.convert_layout(p_t.to(dtype), a_layout), gl.convert_layout(ds_t.to(dtype), a_layout)


@gluon.jit
def window_bwd_dkdv_overlap_kernel(q_desc, k_desc, v_desc, do_desc, dk_desc, dv_desc, LSE2, DELTA,
                                   T, LEFT, RIGHT, scale, scale_log2,
                                   STAGES: gl.constexpr, OVERLAP: gl.constexpr, num_warps: gl.constexpr):
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_D: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    gl.static_assert(STAGES >= 3, "query tiles i-1 (dV, dK), i and i+1 (Sᵀ, dPᵀ) are resident at once")
    gl.static_assert(BLOCK_N >= 2 * BLOCK_M, "every key tile's band spans two query tiles at least")
    st_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_M, 16])
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_D, 16])
    a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=acc_layout, k_width=2)

    pid_n = gl.program_id(0)
    bh = gl.program_id(1)
    n0 = pid_n * BLOCK_N
    kv_row = bh * T + n0
    # the query tiles that see a key of [n0, n0 + BLOCK_N): rows n0 - RIGHT .. n0 + BLOCK_N - 1 + LEFT
    first = gl.maximum(n0 - RIGHT, 0) // BLOCK_M
    n_tiles = gl.cdiv(gl.minimum(n0 + BLOCK_N + LEFT, T), BLOCK_M) - first
    q_row = bh * T + first * BLOCK_M
    LSE2 += bh * T
    DELTA += bh * T
    offs_m = gl.arange(0, BLOCK_M, layout=gl.SliceLayout(0, st_layout))
    offs_n = n0 + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, st_layout))
    m_first = first * BLOCK_M

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

    ctx = (m_first, offs_m, offs_n, LSE2, DELTA, LEFT, RIGHT, scale_log2)
    dk, dv = dkdv_walk(k_smem, v_smem, q_smem, do_smem, bars, q_desc, do_desc, q_row, n_tiles,
                       st_zero, dk, dv, _softmax_operands, ctx, a_layout, STAGES, OVERLAP)

    mbarrier.invalidate(kv_bar)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(bars.index(i))
    k_smem.store((dk * scale).to(dtype))   # K and V are read by nothing now: their tiles take dK, dV out
    v_smem.store(dv.to(dtype))
    fence_async_shared()
    _tma_store(dk_desc, [kv_row, 0], k_smem)
    _tma_store(dv_desc, [kv_row, 0], v_smem)
    tma.store_wait(pendings=0)




@gluon.jit
def _softmax_ds(s, dp, tile, ctx, a_layout: gl.constexpr, dtype: gl.constexpr):
    """dS of the owned query rows against walked key tile `tile`, in the band, as the dQ GEMM's A
    operand (gdpa_gluon_bwd.dq_walk's operand function). ctx: (the first walked key, the owned
    rows, the tile's key offsets, their lse2 and delta, LEFT, RIGHT, scale·log2 e)."""
    n_first, offs_m, offs_n, lse2, delta, LEFT, RIGHT, scale_log2 = ctx
    cols = n_first + tile * offs_n.shape[0] + offs_n
    p = gl.exp2(s * scale_log2 - gl.expand_dims(lse2, 1))
    rel = gl.expand_dims(offs_m, 1) - gl.expand_dims(cols, 0)          # i - j
    p = gl.where((rel >= -RIGHT) & (rel <= LEFT), p, 0.0)
    return gl.convert_layout((p * (dp - gl.expand_dims(delta, 1))).to(dtype), a_layout)


@gluon.jit
def window_bwd_dq_overlap_kernel(q_desc, k_desc, v_desc, do_desc, dq_desc, LSE2, DELTA,
                                 T, LEFT, RIGHT, scale, scale_log2,
                                 STAGES: gl.constexpr, OVERLAP: gl.constexpr, num_warps: gl.constexpr):
    """dQ of BLOCK_M owned query rows over the key tiles of their band (a TMA ring of STAGES):
    dS of key tile j formed while tile j+1's Q·Kᵀ, dO·Vᵀ and tile j-1's dQ GEMM run (OVERLAP)."""
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_D: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    gl.static_assert(STAGES >= 3, "key tiles j-1 (dQ), j and j+1 (S, dP) are resident at once")
    gl.static_assert(BLOCK_M >= 2 * BLOCK_N, "every query tile's band spans two key tiles at least")
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_N, 16])
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_D, 16])
    a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=acc_layout, k_width=2)

    pid_m = gl.program_id(0)
    bh = gl.program_id(1)
    m0 = pid_m * BLOCK_M
    q_row = bh * T + m0
    # the key tiles that a query of [m0, m0 + BLOCK_M) sees: keys m0 - LEFT .. m0 + BLOCK_M - 1 + RIGHT
    first = gl.maximum(m0 - LEFT, 0) // BLOCK_N
    n_tiles = gl.cdiv(gl.minimum(m0 + BLOCK_M + RIGHT, T), BLOCK_N) - first
    kv_row = bh * T + first * BLOCK_N
    n_first = first * BLOCK_N
    offs_m = m0 + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, s_layout))
    offs_n = gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s_layout))
    lse2 = gl.load(LSE2 + bh * T + offs_m)
    delta = gl.load(DELTA + bh * T + offs_m)

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

    ctx = (n_first, offs_m, offs_n, lse2, delta, LEFT, RIGHT, scale_log2)
    dq = dq_walk(q_smem, do_smem, k_smem, v_smem, bars, k_desc, v_desc, kv_row, n_tiles, s_zero, dq,
                 _softmax_ds, ctx, a_layout, STAGES, OVERLAP)

    mbarrier.invalidate(q_bar)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(bars.index(i))
    q_smem.store((dq * scale).to(dtype))   # Q is read by nothing now: its tile takes dQ out
    fence_async_shared()
    _tma_store(dq_desc, [q_row, 0], q_smem)
    tma.store_wait(pendings=0)

def band(window: int, causal: bool, T: int) -> tuple[int, int]:
    """(LEFT, RIGHT) of the band -LEFT <= j - i <= RIGHT, as the Triton kernels take it."""
    left = min(window, T)
    return left, 0 if causal else left


def unsupported(kind: str, q, k, v, block_m: int, block_n: int) -> str | None:
    """Why the `kind` kernel ("dkdv": a program owns BLOCK_N keys; "dq": BLOCK_M queries) cannot run
    these inputs at these tiles, or None."""
    if q.dtype != torch.bfloat16 or not q.dtype == k.dtype == v.dtype:
        return "bf16 only"
    if q.shape[-1] not in (64, 128) or not all(x.is_contiguous() for x in (q, k, v)):
        return "contiguous q, k, v with D 64 or 128 only"
    owned, walked = (block_n, block_m) if kind == "dkdv" else (block_m, block_n)
    if q.shape != k.shape or q.shape[2] % block_m or q.shape[2] % block_n or owned < 2 * walked:
        return (f"self-attention with T a multiple of {block_m} and {block_n}, the owned tile twice "
                f"the walked one at least, only")
    return None


def window_bwd_overlap(kind: str, grad_out, q, k, v, lse, delta, window: int, causal: bool,
                       scale: float, block_m: int, block_n: int, stages: int = 3, num_warps: int = 4,
                       overlap: bool = True, out=None):
    """kind "dkdv": (dK, dV); "dq": dQ; of sliding-window softmax attention, full lengths, from the
    forward's lse (natural log, [B, H, T]) and delta = rowsum(dO ⊙ O) ([B, H, T]), through the Gluon
    kernel (overlap False: its serial control), into `out` if given (contiguous)."""
    reason = unsupported(kind, q, k, v, block_m, block_n)
    if reason:
        raise ValueError(f"window_bwd_overlap({kind}): {reason}")
    B, H, T, D = q.shape
    left, right = band(window, causal, T)
    do = grad_out.contiguous()
    stats = ((lse.float() * LOG2E).contiguous(), delta.float().contiguous(), T, left, right,
             float(scale), float(scale) * LOG2E, stages, overlap)
    if kind == "dkdv":
        dk, dv = out if out is not None else (torch.empty_like(k), torch.empty_like(v))
        descs = descriptors([(q, block_m), (k, block_n), (v, block_n), (do, block_m), (dk, block_n),
                             (dv, block_n)], D)
        window_bwd_dkdv_overlap_kernel[(T // block_n, B * H)](*descs, *stats, num_warps=num_warps)
        return dk, dv
    dq = out if out is not None else torch.empty_like(q)
    descs = descriptors([(q, block_m), (k, block_n), (v, block_n), (do, block_m), (dq, block_m)], D)
    window_bwd_dq_overlap_kernel[(T // block_m, B * H)](*descs, *stats, num_warps=num_warps)
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
    x = torch.empty(1, 1, max(block_m, block_n), head_dim, dtype=torch.bfloat16)
    if kind == "dkdv":
        fn = window_bwd_dkdv_overlap_kernel
        tiles = [block_m, block_n, block_n, block_m, block_n, block_n]
    else:
        fn = window_bwd_dq_overlap_kernel
        tiles = [block_m, block_n, block_n, block_m, block_m]
    descs = descriptors([(x, rows) for rows in tiles], head_dim)
    params = list(inspect.signature(fn.fn).parameters)
    signature = {name: mangle_type(d) for name, d in zip(params, descs)}
    signature.update(LSE2="*fp32", DELTA="*fp32", T="i32", LEFT="i32", RIGHT="i32", scale="fp32",
                     scale_log2="fp32", STAGES="constexpr", OVERLAP="constexpr", num_warps="constexpr")
    constexprs = {(params.index("STAGES"),): stages, (params.index("OVERLAP"),): overlap,
                  (params.index("num_warps"),): num_warps}
    attrs = {(params.index(p),): [["tt.divisibility", 16]] for p in ("LSE2", "DELTA")}
    return triton.compile(GluonASTSource(fn, signature, constexprs=constexprs, attrs=attrs),
                          target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})


def print_compiled() -> None:
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
                          f"ex2_under_wgmma {activation_under_wgmma(instructions, 'MUFU.EX2')} hgmma {hgmma} "
                          f"waits {len(waits)} most_left_in_flight {max(waits, default=0)}", flush=True)


# ----------------------------------------------------------------------------- GPU check and timing

# (BLOCK_M, BLOCK_N, STAGES, num_warps). dK/dV walks 32- or 16-row query tiles, as in
# gdpa_gluon_bwd.py (at 64 rows ptxas serializes the wgmmas); dQ owns 64 or 128 query rows and
# walks key tiles of half that or less.
CONFIGS = {
    "dkdv": [(32, 64, 3, 4), (32, 64, 4, 4), (32, 128, 3, 8), (16, 64, 4, 4)],
    "dq": [(64, 32, 3, 4), (64, 16, 4, 4), (128, 64, 3, 8), (128, 32, 3, 8)],
}
SHAPES = [(64, 4, 2048, 64, 256), (32, 8, 4096, 64, 512), (128, 4, 1024, 128, 128)]   # bench_window.py's
QUICK_SHAPES = [(4, 2, 256, 64, 32), (4, 2, 512, 64, 100), (2, 2, 384, 128, 1000)]   # (B, H, T, D, window)
TOLERANCE = 1e-2


def reference(q, k, v, do, window: int, causal: bool, scale: float):
    """(o, lse, dQ, dK, dV) of the banded softmax attention in float32."""
    T = q.shape[2]
    left, right = band(window, causal, T)
    qf, kf, vf = (x.detach().float().requires_grad_() for x in (q, k, v))
    i = torch.arange(T, device=q.device)
    rel = i[None, :] - i[:, None]                       # [query i, key j]: j - i
    allowed = (rel >= -left) & (rel <= right)
    s = (qf @ kf.mT * scale).masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(s, -1)
    o = torch.softmax(s, -1) @ vf
    o.backward(do.float())
    return o.detach(), lse.detach(), qf.grad, kf.grad, vf.grad


def triton_kernel_ms(wa, grad_out, q, k, v, o, lse, lengths, window, causal, scale) -> dict[str, float]:
    """GPU ms of the Triton dK/dV and dQ kernels in one window_attention_backward (the dQ kernel
    also forms delta = rowsum(dO ⊙ O), which the Gluon kernels are given)."""
    from benchutil import kernel_ms_by_name
    by_name = kernel_ms_by_name(lambda: wa.window_attention_backward(grad_out, q, k, v, o, lse, lengths, window,
                                                                     causal, scale), 10)
    return {kind: sum(ms for name, ms in by_name.items() if f"_bwd_{kind}_kernel" in name) for kind in ("dkdv", "dq")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, "window_gluon_bwd.json") if out else None)
    parser.add_argument("--quick", action="store_true", help="small shapes: correctness first")
    parser.add_argument("--compile-only", action="store_true",
                        help="compile each config for sm_90 (no GPU needed) and print its resources")
    args = parser.parse_args()
    if args.compile_only:
        print_compiled()
        return 0
    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] != 9:
        print("needs a Hopper GPU (sm_90)", file=sys.stderr)
        return 1
    from bench_window import wa   # the Triton kernels' module, as the compiler ships it
    from benchutil import kernel_ms, write_json
    rows, start, wrong = [], time.time(), 0
    torch.manual_seed(0)
    for (B, H, T, D, window), causal in itertools.product(QUICK_SHAPES if args.quick else SHAPES, (True, False)):
        q, k, v, do = (torch.randn(B, H, T, D, device="cuda").bfloat16() for _ in range(4))
        scale = 1 / math.sqrt(D)
        lengths = torch.full((B,), T, device="cuda", dtype=torch.int64)
        o, lse = wa.window_attention_forward(q, k, v, lengths, window, causal, scale)
        delta = (do.float() * o.float()).sum(-1)
        n = min(B, 4)
        _, _, dq_ref, dk_ref, dv_ref = reference(q[:n], k[:n], v[:n], do[:n], window, causal, scale)
        refs = {"dkdv": (dk_ref, dv_ref), "dq": (dq_ref,)}
        row = {"B": B, "H": H, "T": T, "D": D, "window": window, "causal": causal,
               "triton_ms": triton_kernel_ms(wa, do, q, k, v, o, lse, lengths, window, causal, scale),
               "gluon": {}}
        for kind, configs in CONFIGS.items():
            for (bm, bn, stages, warps), overlap in itertools.product(configs, (True, False)):
                name = f"{kind} {bm}x{bn}x{stages}x{warps}{'' if overlap else ' control'}"
                if unsupported(kind, q, k, v, bm, bn):
                    continue
                try:
                    nan = (torch.full_like(k, float("nan")), torch.full_like(v, float("nan"))) \
                        if kind == "dkdv" else torch.full_like(q, float("nan"))
                    got = window_bwd_overlap(kind, do, q, k, v, lse, delta, window, causal, scale, bm, bn,
                                             stages, warps, overlap, out=nan)
                    got = got if kind == "dkdv" else (got,)
                    err = max(((x[:n].float() - r).norm() / r.norm()).item() for x, r in zip(got, refs[kind]))
                    ms = kernel_ms(lambda: window_bwd_overlap(kind, do, q, k, v, lse, delta, window, causal,
                                                              scale, bm, bn, stages, warps, overlap))
                    wrong += not err <= TOLERANCE
                    row["gluon"][name] = {"ms": ms, "rel_err_vs_fp32": err, "correct": err <= TOLERANCE,
                                          "vs_triton": row["triton_ms"][kind] / ms}
                except Exception as exc:  # an experiment: record what failed and go on
                    row["gluon"][name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        rows.append(row)
        write_json(args.json, rows)
        print(f"B{B} H{H} T{T} D{D} W{window} {'causal' if causal else 'bidir'}: triton dK/dV "
              f"{row['triton_ms']['dkdv']:.3f} ms, dQ {row['triton_ms']['dq']:.3f} ms; "
              + ", ".join(f"{name} {g['ms']:.3f} ms ({g['vs_triton']:.2f}x, err {g['rel_err_vs_fp32']:.1e}"
                          f"{'' if g['correct'] else ' WRONG'})" if "ms" in g else f"{name} {g['error']}"
                          for name, g in row["gluon"].items()), flush=True)
    write_json(args.json, rows, start)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
