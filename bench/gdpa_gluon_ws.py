"""Experiment: a warp-specialized GDPA forward in Gluon (Hopper): a TMA producer warp and two
consumer warpgroups, FlashAttention-3's structure.

    python3 bench/gdpa_gluon_ws.py [--head-dim 64|128] [--quick] [--json PATH]   # on an H100/H200
    python3 bench/gdpa_gluon_ws.py --compile-only                               # anywhere (sm_90)

Why. At the presets' head dim (64) a score's activation (one MUFU tanh and four FP32 ops) costs
about as long as its share of the two matmuls (BENCHMARKS.md, GDPA: "What bounds the GDPA forward"),
and the forward reaches 0.88-0.98x cuDNN's softmax attention (target 0.95x). Within one warpgroup
the tensor cores idle while the activation runs, unless something else is in flight. The Triton
kernel's two warpgroups (128 x 64 tiles, 8 warps) run one instruction stream in step; bench/
gdpa_gluon.py's intra-warpgroup overlap got +3-8% over it at D 128. Here each program owns 128 query
rows split between two consumer warpgroups with their own instruction streams (warp_specialize
partitions), so while one runs its activation the other's wgmma can run; a one-warp producer
partition keeps a ring of K/V stages full with TMA (empty/ready mbarriers, the consumers each
releasing a stage once both of their GEMMs on it are done). Each consumer's loop:

    wait K_j; issue S = Q·K_jᵀ; wait S (and P_{j-1}·V_{j-1}); free stage j-1; P = act(S);
    issue O += P·V_j (left in flight)

so the overlap comes from the two consumers, not from within one. gdpa_gluon.py's in-warpgroup
schedule (act(S_j) under Q·K_{j+1}ᵀ and P_{j-1}·V_{j-1}) does not fit here: three warpgroups a
program leave 168 registers a thread at compile time (setmaxnreg gives the consumers 240 only at
run time), and ptxas serializes every wgmma of that schedule ("insufficient register resources",
C7512; Triton 3.6, both head dims, 64- and 128-key tiles).

Scope (an experiment, not a kernel the compiler selects): bf16, q [B, H, T, D], k, v [B, H, S, D]
contiguous, full lengths, no window, gelu_tanh, D 64 or 128, T a multiple of 128 and S of BLOCK_N
(two tiles at least). `main` checks each config on a NaN-filled output against float32 and times
it beside the Triton kernel (the compiler's), bench/gdpa_gluon.py's overlap kernel, and cuDNN's
softmax attention, in one process.

Measured (BENCHMARKS.md, GDPA, nineteenth and twentieth sessions): at D 128 1.09-1.11x the Triton
forward on long self-attention and level with it on short keys (0.99-1.03x), re-measured in one
process in the twentieth session; no gain at D 64, with the bf16x2 activation (PACKED_ACT) either.
"""
from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the scripts beside this one
from compile_kernels import compile_gluon_sm90, resource_usage  # noqa: E402
from gdpa_gluon import (_gelu_tanh_doubled, _tma_load, _tma_store, activation_under_wgmma,  # noqa: E402
                        descriptors, gdpa_forward_overlap, sass_instructions)
from gdpa_gluon_bwd import wgmma_waits  # noqa: E402

N_CONSUMERS = 2                        # consumer warpgroups a program; each owns BLOCK_M query rows
CONSUMERS = gl.constexpr(N_CONSUMERS)  # (the kernels' name for it)


@gluon.jit
def _produce(q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_bar, ready, empty, q_row, q_col, k_row,
             k_col, v_row, v_col, n_tiles):
    """The producer partition (one warp): both consumers' Q tiles (rows from q_row, columns from
    q_col), then every K/V tile into the ring, each stage once both consumers have released it
    (mbarriers start in phase 1 done, so the first lap waits for nothing). With n_tiles 0 (rows all
    past a length, bench/gdpa_hopper_fwd.py) nothing is loaded."""
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    STAGES: gl.constexpr = k_smem.type.shape[0]
    if n_tiles > 0:
        mbarrier.expect(q_bar, CONSUMERS * q_desc.block_type.nbytes)
        for c in gl.static_range(CONSUMERS):
            _tma_load(q_desc, [q_row + c * BLOCK_M, q_col], q_bar, q_smem.index(c))
    for j in range(n_tiles):
        slot = j % STAGES
        mbarrier.wait(empty.index(slot), ((j // STAGES) & 1) ^ 1)
        bar = ready.index(slot)
        mbarrier.expect(bar, k_desc.block_type.nbytes + v_desc.block_type.nbytes)
        _tma_load(k_desc, [k_row + j * BLOCK_N, k_col], bar, k_smem.index(slot))
        _tma_load(v_desc, [v_row + j * BLOCK_N, v_col], bar, v_smem.index(slot))


@gluon.jit
def _qk(q, k_smem, ready, j, s_zero, STAGES: gl.constexpr):
    """Issue S_j = Q·K_jᵀ once tile j has landed (asynchronous: the caller waits)."""
    mbarrier.wait(ready.index(j % STAGES), (j // STAGES) & 1)
    return warpgroup_mma(q, k_smem.index(j % STAGES).permute((1, 0)), s_zero, use_acc=False, is_async=True)


@gluon.jit
def _gelu_tanh_doubled_bf16x2(x):
    """2·gelu_tanh(x) as _gelu_tanh_doubled, computed on bf16 pairs: the polynomial in two-wide
    HFMA2/HMUL2 ops and the result already the bf16 the P·V wgmma reads (the constants rounded to bf16:
    0.796875 and 0.03564453). A score then costs two HFMA2/HMUL2 halves and half a PRMT instead of
    about 4.25 FP32 ops (the MUFU tanh and the F2FP packs stay): the D 64 64x128 kernel's sm_90 SASS
    (Triton 3.6) has 2,096 instructions in fp32 and 1,712 this way. Not yet run on a GPU."""
    return gl.inline_asm_elementwise(
        "{ .reg .b32 x, u, c0, c1; cvt.rn.bf16x2.f32 x, $2, $1; mov.b32 c0, 0x3F4C3F4C; "
        "mov.b32 c1, 0x3D123D12; mul.rn.bf16x2 u, x, x; fma.rn.bf16x2 u, u, c1, c0; mul.rn.bf16x2 u, u, x; "
        "tanh.approx.bf16x2 u, u; fma.rn.bf16x2 $0, x, u, x; }",
        "=r,r,r", [x], dtype=gl.bfloat16, is_pure=True, pack=2)


@gluon.jit
def _act(s, dtype: gl.constexpr, PACKED_ACT: gl.constexpr):
    if PACKED_ACT:
        p = _gelu_tanh_doubled_bf16x2(s)
    else:
        p = _gelu_tanh_doubled(s).to(dtype)
    return p


@gluon.jit
def _consume(q_smem, k_smem, v_smem, o_smem, q_bar, ready, empty, o_desc, q_row, n_tiles, scale,
             WHICH: gl.constexpr, PACKED_ACT: gl.constexpr):
    """A consumer partition (one warpgroup): O = act(Q·Kᵀ)·V for its BLOCK_M rows, stored by TMA."""
    BLOCK_M: gl.constexpr = q_smem.type.shape[1]
    HEAD_D: gl.constexpr = q_smem.type.shape[2]
    BLOCK_N: gl.constexpr = k_smem.type.shape[1]
    STAGES: gl.constexpr = k_smem.type.shape[0]
    dtype: gl.constexpr = q_smem.dtype
    warps: gl.constexpr = gl.num_warps()
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[warps, 1], instr_shape=[16, BLOCK_N, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[warps, 1], instr_shape=[16, HEAD_D, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    q = q_smem.index(WHICH)
    s_zero = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, s_layout)
    acc = gl.zeros([BLOCK_M, HEAD_D], gl.float32, o_layout)
    mbarrier.wait(q_bar, 0)
    s = _qk(q, k_smem, ready, 0, s_zero, STAGES)
    s = warpgroup_mma_wait(num_outstanding=0, deps=(s, ))
    p = gl.convert_layout(_act(s, dtype, PACKED_ACT), p_layout)
    acc = warpgroup_mma(p, v_smem.index(0), acc, use_acc=False, is_async=True)
    for j in range(1, n_tiles):
        s = _qk(q, k_smem, ready, j, s_zero, STAGES)                           # [PV_{j-1}, S_j]
        s, acc, p = warpgroup_mma_wait(num_outstanding=0, deps=(s, acc, p))
        mbarrier.arrive(empty.index((j - 1) % STAGES), count=1)                 # K/V_{j-1} read
        p = gl.convert_layout(_act(s, dtype, PACKED_ACT), p_layout)
        acc = warpgroup_mma(p, v_smem.index(j % STAGES), acc, is_async=True)
    acc, p = warpgroup_mma_wait(num_outstanding=0, deps=(acc, p))
    out = o_smem.index(WHICH)
    out.store((acc * (scale * 0.5)).to(dtype))
    fence_async_shared()
    _tma_store(o_desc, [q_row + WHICH * BLOCK_M, 0], out)
    tma.store_wait(pendings=0)


@gluon.jit
def gdpa_fwd_ws_kernel(q_desc, k_desc, v_desc, o_desc, T, S, scale, STAGES: gl.constexpr,
                       PACKED_ACT: gl.constexpr, CONSUMER_REGS: gl.constexpr, num_warps: gl.constexpr):
    """One program: CONSUMERS x BLOCK_M query rows of one (b, h). num_warps (4) is the default
    partition, consumer 0; consumer 1 and the producer are workers."""
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_D: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    gl.static_assert(num_warps == 4, "each consumer is one warpgroup")
    q_row = gl.program_id(1) * T + gl.program_id(0) * (CONSUMERS * BLOCK_M)
    kv_row = gl.program_id(1) * S
    n_tiles = S // BLOCK_N
    q_smem = gl.allocate_shared_memory(dtype, [CONSUMERS, BLOCK_M, HEAD_D], q_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_D], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_D], v_desc.layout)
    o_smem = gl.allocate_shared_memory(dtype, [CONSUMERS, BLOCK_M, HEAD_D], o_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=CONSUMERS)
    first: gl.constexpr = 0
    second: gl.constexpr = 1
    gl.warp_specialize([
        (_consume, (q_smem, k_smem, v_smem, o_smem, q_bar, ready, empty, o_desc, q_row, n_tiles, scale,
                    first, PACKED_ACT)),
        (_consume, (q_smem, k_smem, v_smem, o_smem, q_bar, ready, empty, o_desc, q_row, n_tiles, scale,
                    second, PACKED_ACT)),
        (_produce, (q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_bar, ready, empty, q_row, 0, kv_row,
                    0, kv_row, 0, n_tiles)),
    ], [4, 1], [CONSUMER_REGS, 24])


# (BLOCK_M a consumer, BLOCK_N, STAGES); a program holds CONSUMERS x BLOCK_M rows
# PACKED_ACT: the activation on bf16 pairs (_gelu_tanh_doubled_bf16x2), bf16 inputs only: whether the
# activation's FP32 issue work binds at D 64, where the schedule alone gained nothing (call 3)
CONFIGS = {64: [(64, 128, 2, False), (64, 128, 3, False), (64, 64, 3, False), (64, 64, 4, False),
                (64, 128, 3, True)],
           128: [(64, 64, 2, False), (64, 64, 3, False), (64, 64, 4, False), (64, 128, 2, False),
                 (64, 64, 3, True)]}
MAXNREG = 168            # 12 warps (three warpgroups) a program, one program an SM: 168 x 384 registers
CONSUMER_REGS = 240      # producer warpgroup 24: 24 + 2 x 240 = 3 x 168


def unsupported(q, k, block_m: int, block_n: int) -> str | None:
    if q.dtype != torch.bfloat16 or not q.dtype == k.dtype:
        return "bf16 only"
    if q.shape[-1] not in (64, 128) or not q.is_contiguous() or not k.is_contiguous():
        return "contiguous q, k, v with D 64 or 128 only"
    if q.shape[2] % (N_CONSUMERS * block_m) or k.shape[2] % block_n or k.shape[2] < 2 * block_n:
        return f"T a multiple of {N_CONSUMERS * block_m} and S a multiple of {block_n}, at least {2 * block_n}, only"
    return None


def gdpa_forward_ws(q, k, v, scale: float, block_m: int = 64, block_n: int = 128, stages: int = 2,
                    packed_act: bool = False, out: torch.Tensor | None = None) -> torch.Tensor:
    """O = scale · gelu_tanh(q·kᵀ) · v, full lengths, through the warp-specialized kernel."""
    reason = unsupported(q, k, block_m, block_n)
    if reason:
        raise ValueError(f"gdpa_forward_ws: {reason}")
    B, H, T, _ = q.shape
    o = torch.empty_like(q) if out is None else out
    descs = descriptors(q, k, v, o, block_m, block_n)
    gdpa_fwd_ws_kernel[(T // (N_CONSUMERS * block_m), B * H)](
        *descs, T, k.shape[2], float(scale), stages, packed_act, CONSUMER_REGS, num_warps=4, maxnreg=MAXNREG)
    return o


def compile_sm90(head_dim: int, block_m: int, block_n: int, stages: int, packed_act: bool = False):
    q = torch.empty(1, 1, 2 * N_CONSUMERS * block_m, head_dim, dtype=torch.bfloat16)
    k = torch.empty(1, 1, 2 * block_n, head_dim, dtype=torch.bfloat16)
    descs = descriptors(q, k, k, torch.empty_like(q), block_m, block_n)
    return compile_gluon_sm90(gdpa_fwd_ws_kernel, descs,
                              {"STAGES": stages, "PACKED_ACT": packed_act, "CONSUMER_REGS": CONSUMER_REGS,
                               "num_warps": 4}, {"num_warps": 4, "maxnreg": MAXNREG})


# ----------------------------------------------------------------------------- GPU check and timing

SHAPES = [(1152, 256, 256), (1152, 512, 512), (1152, 1024, 1024), (288, 2048, 2048),
          (1152, 512, 256), (1152, 1024, 256), (1152, 2048, 256)]   # (B, T, S): bench_gdpa.py's
QUICK_SHAPES = [(8, 128, 128), (8, 256, 256), (8, 256, 384), (8, 512, 640)]   # 2, 3, 5 key tiles at 64/128
TOLERANCE = 1e-2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, "gdpa_gluon_ws.json") if out else None)
    parser.add_argument("--head-dim", type=int, default=64, choices=(64, 128))
    parser.add_argument("--heads", type=int, default=None, help="default: 8 at D 64, 4 at D 128")
    parser.add_argument("--quick", action="store_true", help="small shapes: correctness, little timing")
    parser.add_argument("--compile-only", action="store_true",
                        help="compile each config for sm_90 (no GPU needed) and print its resources")
    args = parser.parse_args()
    if args.compile_only:
        for head_dim, configs in CONFIGS.items():
            for bm, bn, stages, packed_act in configs:
                kernel = compile_sm90(head_dim, bm, bn, stages, packed_act)
                r = resource_usage(kernel.asm["cubin"])
                sass = sass_instructions(kernel.asm["cubin"])
                hgmma, waits = wgmma_waits(sass)
                print(f"D{head_dim} {bm}x{bn} stages {stages}{' bf16x2' if packed_act else ''}: "
                      f"regs {r['reg']} stack {r['stack']} shared {kernel.metadata.shared} "
                      f"tanh_under_wgmma {activation_under_wgmma(sass)} hgmma {hgmma} waits {len(waits)} "
                      f"setmaxnreg {sum(s.startswith('USETMAXREG') for s in sass)}", flush=True)
        return 0
    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] != 9:
        print("needs a Hopper GPU (sm_90)", file=sys.stderr)
        return 1
    from bench_gdpa import ACT, SDPA_PEERS, gdpa_forward_op, sdpa_peer, time_or_none
    from benchutil import write_json
    D = args.head_dim
    H = args.heads or (8 if D == 64 else 4)
    rows, start = [], time.time()
    torch.manual_seed(0)
    for B, T, S in QUICK_SHAPES if args.quick else SHAPES:
        q = (torch.randn(B, H, T, D, device="cuda") * D ** -0.25).bfloat16()
        k = (torch.randn(B, H, S, D, device="cuda") * D ** -0.25).bfloat16()
        v = torch.randn(B, H, S, D, device="cuda").bfloat16()
        scale = 1.0 / T
        lengths = torch.full((B,), T, device="cuda", dtype=torch.int64)
        flops = 4 * B * H * T * S * D
        ref_fn = lambda: gdpa_forward_op(q, k, v, lengths, None, ACT, scale, -1, False)  # noqa: E731
        ref = ref_fn()
        triton_ms = triton.testing.do_bench(ref_fn, return_mode="median")
        n = min(B, 8)
        exact = (torch.nn.functional.gelu(q[:n].float() @ k[:n].float().mT, approximate="tanh")
                 @ v[:n].float()) * scale
        cudnn = sdpa_peer(SDPA_PEERS["cudnn"])
        cudnn_ms = time_or_none(lambda: cudnn(q, k, v), 100)
        row = {"B": B, "H": H, "T": T, "S": S, "D": D, "triton_tflops": flops / triton_ms / 1e9,
               "cudnn_tflops": flops / cudnn_ms / 1e9 if cudnn_ms else None, "kernels": {}}
        candidates = [(f"ws {bm}x{bn}x{st}{' bf16x2' if pa else ''}",
                       lambda o=None, c=(bm, bn, st, pa): gdpa_forward_ws(q, k, v, scale, *c, out=o))
                      for bm, bn, st, pa in CONFIGS[D]]
        candidates += [(f"gdpa_gluon 128x64x{st}x8 overlap",
                        lambda o=None, st=st: gdpa_forward_overlap(q, k, v, scale, 128, 64, st, 8, True, out=o))
                       for st in (4,)]
        for name, fn in candidates:
            try:
                o = fn(torch.full_like(q, float("nan")))   # NaN-filled: a tile never stored shows
                err = ((o[:n].float() - exact).norm() / exact.norm()).item()
                vs_triton = ((o.float() - ref.float()).norm() / ref.float().norm()).item()
                ms = triton.testing.do_bench(fn, return_mode="median")
                row["kernels"][name] = {"tflops": flops / ms / 1e9, "rel_err_vs_fp32": err,
                                        "rel_diff_vs_triton": vs_triton, "correct": err <= TOLERANCE}
            except Exception as exc:  # an experiment: record what failed and go on
                row["kernels"][name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        rows.append(row)
        write_json(args.json, rows)   # after every shape: a hang in a later one keeps these
        peers = f"triton {row['triton_tflops']:.0f}" + (f", cuDNN {row['cudnn_tflops']:.0f}"
                                                       if row["cudnn_tflops"] else ", cuDNN refused")
        ok = {nm: g for nm, g in row["kernels"].items() if g.get("correct")}
        best = max(ok, key=lambda nm: ok[nm]["tflops"], default=None)
        summary = (f"best {best}: {ok[best]['tflops']:.0f} = {ok[best]['tflops'] / row['triton_tflops']:.2f}x triton"
                   + (f", {ok[best]['tflops'] / row['cudnn_tflops']:.2f}x cuDNN" if row["cudnn_tflops"] else "")
                   if best else "nothing correct")
        print(f"B{B} H{H} T{T} S{S} D{D}: {peers} TFLOP/s; {summary}\n    "
              + "; ".join(f"{nm} {g['tflops']:.0f} (err {g['rel_err_vs_fp32']:.1e}{'' if g['correct'] else ' WRONG'})"
                          if "tflops" in g else f"{nm} {g['error']}" for nm, g in row["kernels"].items()),
              flush=True)
    write_json(args.json, rows, start, H=H, D=D)
    return 0


if __name__ == "__main__":
    sys.exit(main())
