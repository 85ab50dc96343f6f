"""Experiment: a GDPA forward in Gluon that overlaps the activation with the tensor cores (Hopper).

    python3 bench/gdpa_gluon.py [--json PATH]          # on an H100/H200: check, then time
    python3 bench/gdpa_gluon.py --compile-only         # anywhere: compile for sm_90, print resources

Why. The Triton GDPA forward (templates/kernels/gdpa.py) runs per key tile Q·Kᵀ, waits, runs the
activation (one MUFU tanh and four FP32 ops a score) with the tensor cores idle, then P·V
(BENCHMARKS.md, GDPA: 42-61% of the matmul ceiling, 0.73-0.83x SDPA's cuDNN backend). Triton 3.6
will not overlap the two by itself on Hopper (`warp_specialize` is ignored at 8 warps and fails at
4; a one-tile software pipelining in Triton was slower). Gluon, Triton's lower-level language
(in the triton package: no new dependency), lets a kernel say which asynchronous wgmma to wait
for. This kernel follows the schedule FlashAttention-3 calls intra-warpgroup overlap:

    S_0 = Q·K_0ᵀ; wait
    for j = 0 .. n-2:                       (in flight on entry: O += P_{j-1}·V_{j-1})
        issue S_{j+1} = Q·K_{j+1}ᵀ       (async)
        P_j = act(S_j)                      (MUFU and FP32 work under both wgmmas)
        wait for P_{j-1}·V_{j-1}; refill its K/V stage with tile j-1+STAGES (TMA)
        issue O += P_j·V_j                  (async)
        wait for S_{j+1}                    (P_j·V_j stays in flight)
    P_{n-1} = act(S_{n-1}); O += P_{n-1}·V_{n-1}

Tiles j-1, j and j+1 are resident at once, so STAGES >= 3. OVERLAP=False is the control: the
same tiles, stages and TMA pipeline, but each Q·Kᵀ waited for before its activation and each P·V
before the next tile, the Triton kernel's serial schedule; timing both tells how much of any gain
is the overlap and how much the TMA pipeline.

Scope (an experiment, not a kernel the compiler selects): bf16, q [B, H, T, D] and k, v
[B, H, S, D] contiguous, every length full, no window, gelu_tanh, D in {64, 128}, T a multiple of
BLOCK_M and S of BLOCK_N (two tiles at least). `main` checks it against the float32 torch reference and times it
beside the Triton kernel (same process, same shapes as bench/bench_gdpa.py's). If it wins, the
next step is jagged lengths (masked last tiles) and the packed layout, then kernel selection.

On a machine without a GPU, tests/test_gdpa_gluon.py compiles it for sm_90 with the installed
Triton (layouts, wgmma shapes, shared memory). Measured on the H200 since the eleventh session
(BENCHMARKS.md, GDPA, "The Gluon forward, first run" and later sessions): the overlap 7-19% over
its serial control and 3-15% over the Triton kernel at D 128 (runs differ), 0.82-0.92x Triton at
D 64 (nineteenth session).
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
from compile_kernels import cuobjdump, resource_usage  # noqa: E402

# Triton 3.6 (the H200's) names the TMA copies async_copy_*; later releases async_load/async_store
_tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared
_tma_store = getattr(tma, "async_store", None) or tma.async_copy_shared_to_global

SQRT_2_OVER_PI = gl.constexpr(0.7978845608028654)   # Gluon kernels read only constexpr globals
GELU_CUBIC = gl.constexpr(0.044715)


@gluon.jit
def _gelu_tanh_doubled(x):
    """2·gelu_tanh(x) = x·(1 + tanh(u)): the 0.5 goes into the output scale (as in gdpa.py)."""
    u = x * (x * x * (SQRT_2_OVER_PI * GELU_CUBIC) + SQRT_2_OVER_PI)
    t = gl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=r,r", [u], dtype=gl.float32,
                                  is_pure=True, pack=1)
    return x + x * t


@gluon.jit
def _load_kv(k_desc, v_desc, k_smem, v_smem, bars, tile, kv_row, BLOCK_N: gl.constexpr,
             STAGES: gl.constexpr):
    """TMA both tiles of key tile `tile` into stage tile % STAGES, completing on its barrier."""
    slot = tile % STAGES
    bar = bars.index(slot)
    mbarrier.expect(bar, k_desc.block_type.nbytes + v_desc.block_type.nbytes)
    _tma_load(k_desc, [kv_row + tile * BLOCK_N, 0], bar, k_smem.index(slot))
    _tma_load(v_desc, [kv_row + tile * BLOCK_N, 0], bar, v_smem.index(slot))


@gluon.jit
def _wait_tile(bars, tile, STAGES: gl.constexpr):
    mbarrier.wait(bars.index(tile % STAGES), (tile // STAGES) & 1)


@gluon.jit
def gdpa_fwd_overlap_kernel(q_desc, k_desc, v_desc, o_desc, T, S, scale,
                            STAGES: gl.constexpr, OVERLAP: gl.constexpr, num_warps: gl.constexpr):
    """OVERLAP False is the control: the same tiles, stages and TMA pipeline, but each key tile's
    Q·Kᵀ is waited for before its activation (which reads it, so no compiler can hoist it) and
    each P·V before the next tile: the Triton kernel's serial schedule."""
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_D: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    gl.static_assert(STAGES >= 3, "tiles j-1 (P·V), j and j+1 (Q·Kᵀ) are resident at once")
    # wgmma: m16 atoms, one per warp along M (BLOCK_M = 16 x num_warps), n the whole tile width
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_N, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_D, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)

    pid_m = gl.program_id(0)
    bh = gl.program_id(1)
    q_row = bh * T + pid_m * BLOCK_M
    kv_row = bh * S
    n_tiles = S // BLOCK_N

    q_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_D], q_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_D], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_D], v_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    kv_bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(kv_bars.index(i), count=1)

    mbarrier.expect(q_bar, q_desc.block_type.nbytes)
    _tma_load(q_desc, [q_row, 0], q_bar, q_smem)
    for i in gl.static_range(STAGES):  # fill every stage
        if i < n_tiles:
            _load_kv(k_desc, v_desc, k_smem, v_smem, kv_bars, i, kv_row, BLOCK_N, STAGES)
    mbarrier.wait(q_bar, 0)

    s_zero = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, s_layout)
    acc = gl.zeros([BLOCK_M, HEAD_D], gl.float32, o_layout)

    if OVERLAP:
        _wait_tile(kv_bars, 0, STAGES)
        s = warpgroup_mma(q_smem, k_smem.index(0).permute((1, 0)), s_zero, use_acc=False, is_async=True)
        s = warpgroup_mma_wait(num_outstanding=0, deps=(s, ))
        # Iteration j issues Q·K_{j+1}ᵀ, runs the activation of S_j under it and under the P·V still in
        # flight from j-1, waits for that P·V (the older group) and frees its stage, issues P_j·V_j,
        # and waits for Q·K_{j+1}ᵀ, leaving P_j·V_j in flight. j = 0 is peeled: nothing is in flight
        # before it, and the loop carries the in-flight accumulator.
        _wait_tile(kv_bars, 1, STAGES)
        s_next = warpgroup_mma(q_smem, k_smem.index(1).permute((1, 0)), s_zero, use_acc=False, is_async=True)
        p_prev = gl.convert_layout(_gelu_tanh_doubled(s).to(dtype), p_layout)
        acc = warpgroup_mma(p_prev, v_smem.index(0), acc, use_acc=False, is_async=True)
        s = warpgroup_mma_wait(num_outstanding=1, deps=(s_next, ))
        for j in range(1, n_tiles - 1):
            _wait_tile(kv_bars, j + 1, STAGES)
            s_next = warpgroup_mma(q_smem, k_smem.index((j + 1) % STAGES).permute((1, 0)), s_zero,
                                   use_acc=False, is_async=True)
            p = gl.convert_layout(_gelu_tanh_doubled(s).to(dtype), p_layout)
            acc, p_prev = warpgroup_mma_wait(num_outstanding=1, deps=(acc, p_prev))   # P_{j-1}·V_{j-1}
            if j - 1 + STAGES < n_tiles:  # tile j-1's stage is read by nothing in flight now
                _load_kv(k_desc, v_desc, k_smem, v_smem, kv_bars, j - 1 + STAGES, kv_row, BLOCK_N, STAGES)
            acc = warpgroup_mma(p, v_smem.index(j % STAGES), acc, is_async=True)
            s = warpgroup_mma_wait(num_outstanding=1, deps=(s_next, ))                 # Q·K_{j+1}ᵀ
            p_prev = p
        p = gl.convert_layout(_gelu_tanh_doubled(s).to(dtype), p_layout)
        acc, p_prev = warpgroup_mma_wait(num_outstanding=0, deps=(acc, p_prev))
        acc = warpgroup_mma(p, v_smem.index((n_tiles - 1) % STAGES), acc, is_async=True)
        acc, p = warpgroup_mma_wait(num_outstanding=0, deps=(acc, p))
    else:
        for j in range(0, n_tiles):
            _wait_tile(kv_bars, j, STAGES)
            s = warpgroup_mma(q_smem, k_smem.index(j % STAGES).permute((1, 0)), s_zero, use_acc=False,
                              is_async=True)
            s = warpgroup_mma_wait(num_outstanding=0, deps=(s, ))
            p = gl.convert_layout(_gelu_tanh_doubled(s).to(dtype), p_layout)
            acc = warpgroup_mma(p, v_smem.index(j % STAGES), acc, is_async=True)
            acc, p = warpgroup_mma_wait(num_outstanding=0, deps=(acc, p))
            if j + STAGES < n_tiles:  # tile j's stage is free
                _load_kv(k_desc, v_desc, k_smem, v_smem, kv_bars, j + STAGES, kv_row, BLOCK_N, STAGES)

    mbarrier.invalidate(q_bar)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(kv_bars.index(i))
    o_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_D], o_desc.layout)
    o_smem.store((acc * (scale * 0.5)).to(dtype))
    fence_async_shared()
    _tma_store(o_desc, [q_row, 0], o_smem)
    tma.store_wait(pendings=0)


def descriptors(q, k, v, o, block_m: int, block_n: int):
    """TMA descriptors over the [rows, D] views of contiguous q, k, v, o."""
    D = q.shape[-1]
    descs = []
    for x, rows in ((q, block_m), (k, block_n), (v, block_n), (o, block_m)):
        flat = x.reshape(-1, D)
        layout = gl.NVMMASharedLayout.get_default_for([rows, D], gl.bfloat16)
        descs.append(TensorDescriptor(flat, list(flat.shape), list(flat.stride()), [rows, D], layout))
    return descs


def unsupported(q, k, v, block_m: int, block_n: int) -> str | None:
    if q.dtype != torch.bfloat16 or not q.dtype == k.dtype == v.dtype:
        return "bf16 only"
    if q.shape[-1] not in (64, 128) or not q.is_contiguous() or not k.is_contiguous() or not v.is_contiguous():
        return "contiguous q, k, v with D 64 or 128 only"
    if q.shape[2] % block_m or k.shape[2] % block_n or k.shape[2] < 2 * block_n:
        return f"T a multiple of {block_m} and S a multiple of {block_n}, at least {2 * block_n}, only"
    return None


def gdpa_forward_overlap(q, k, v, scale: float, block_m: int = 128, block_n: int = 64,
                         stages: int = 3, num_warps: int = 8, overlap: bool = True,
                         out: torch.Tensor | None = None) -> torch.Tensor:
    """O = scale · gelu_tanh(q·kᵀ) · v, full lengths, through the Gluon kernel (overlap False: its
    control, the activation not overlapped), into `out` if given (contiguous, like q)."""
    reason = unsupported(q, k, v, block_m, block_n)
    if reason:
        raise ValueError(f"gdpa_forward_overlap: {reason}")
    B, H, T, _ = q.shape
    o = torch.empty_like(q) if out is None else out
    q_desc, k_desc, v_desc, o_desc = descriptors(q, k, v, o, block_m, block_n)
    gdpa_fwd_overlap_kernel[(T // block_m, B * H)](q_desc, k_desc, v_desc, o_desc, T, k.shape[2],
                                                   float(scale), stages, overlap, num_warps=num_warps)
    return o


# ----------------------------------------------------------------------------- compile without a GPU

def compile_sm90(block_m: int = 128, block_n: int = 64, stages: int = 3, num_warps: int = 8,
                 head_dim: int = 128, overlap: bool = True):
    """The kernel compiled for sm_90 by the installed Triton, with no GPU (descriptors over CPU
    tensors give the signature a launch would)."""
    import inspect

    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    from triton.runtime.jit import mangle_type
    q = torch.empty(1, 1, 2 * block_m, head_dim, dtype=torch.bfloat16)
    k = torch.empty(1, 1, 2 * block_n, head_dim, dtype=torch.bfloat16)
    descs = descriptors(q, k, k, torch.empty_like(q), block_m, block_n)
    fn = gdpa_fwd_overlap_kernel
    params = list(inspect.signature(fn.fn).parameters)
    signature = {name: mangle_type(d) for name, d in zip(params, descs)}
    signature.update(T="i32", S="i32", scale="fp32", STAGES="constexpr", OVERLAP="constexpr",
                     num_warps="constexpr")
    constexprs = {(params.index("STAGES"),): stages, (params.index("OVERLAP"),): overlap,
                  (params.index("num_warps"),): num_warps}
    return triton.compile(GluonASTSource(fn, signature, constexprs=constexprs),
                          target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})


def sass_lines(cubin: bytes) -> list[tuple[int, str]]:
    """The cubin's SASS instructions in order, each (address, opcode and operands) (Triton's bundled
    cuobjdump)."""
    import re
    text = cuobjdump(cubin, "-sass")
    found = (re.match(r"\s*/\*([0-9a-f]+)\*/\s+([^;]*);", line) for line in text.splitlines())
    return [(int(m.group(1), 16), " ".join(m.group(2).split())) for m in found if m]


def sass_instructions(cubin: bytes) -> list[str]:
    """The cubin's SASS instructions in order, opcode and operands."""
    return [text for _, text in sass_lines(cubin)]


def activation_under_wgmma(instructions: list[str], mufu: str = "MUFU.TANH") -> int:
    """How many `mufu` ops (MUFU.TANH: GDPA's activation; MUFU.EX2: softmax) the SASS issues, in
    text order, while a wgmma group is in flight: after
    an HGMMA whose group is not yet waited for. An HGMMA marked gsb0 commits its group;
    `WARPGROUP.DEPBAR.LE gsb0, N` waits until at most N groups are outstanding. (A loop body is
    read once, from the state the code before it leaves.)"""
    import re
    under, outstanding, uncommitted = 0, 0, False
    for ins in instructions:
        op = ins.split()[0]
        if op.startswith("@"):                       # a predicated instruction: the opcode follows
            op = ins.split()[1]
        if op.startswith("HGMMA"):
            if "gsb0" in ins:
                outstanding, uncommitted = outstanding + 1, False
            else:
                uncommitted = True
        elif op.startswith("WARPGROUP.DEPBAR"):
            allowed = re.search(r"gsb0\s*,\s*(0x[0-9a-f]+|\d+)", ins)
            outstanding = min(outstanding, int(allowed.group(1), 0) if allowed else 0)
        elif op.startswith(mufu) and (outstanding or uncommitted):
            under += 1
    return under


# ----------------------------------------------------------------------------- GPU check and timing

# (BLOCK_M, BLOCK_N, STAGES, num_warps); 128 x 128 at D = 128 would need 229 KB of shared memory
CONFIGS = [(128, 64, 3, 8), (128, 64, 4, 8), (64, 64, 4, 4), (64, 128, 3, 4)]
SHAPES = [(1152, 256, 256), (1152, 512, 512), (1152, 1024, 1024), (288, 2048, 2048),
          (1152, 512, 256), (1152, 2048, 256)]   # (B, T, S) at H = 4, D = 128: bench_gdpa.py's
# --quick: correctness first, at the schedule's edges: S of 2 key tiles (the peeled first
# iteration and the tail only), 3 (one loop iteration), 5 (stages refilled), at 64-wide tiles
QUICK_SHAPES = [(8, 128, 128), (8, 256, 192), (8, 256, 320), (8, 512, 512)]
TOLERANCE = 1e-2   # bf16 against the float32 reference, as the Triton kernels' GPU tests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, "gdpa_gluon.json") if out else None)
    parser.add_argument("--quick", action="store_true",
                        help="small shapes at the schedule's edges: correctness first, little timing")
    parser.add_argument("--compile-only", action="store_true",
                        help="compile each config for sm_90 (no GPU needed) and print its resources")
    args = parser.parse_args()
    if args.compile_only:
        for overlap in (True, False):
            for head_dim in (64, 128):
                for bm, bn, stages, warps in CONFIGS:
                    kernel = compile_sm90(bm, bn, stages, warps, head_dim, overlap)
                    r = resource_usage(kernel.asm["cubin"])
                    under = activation_under_wgmma(sass_instructions(kernel.asm["cubin"]))
                    print(f"{'overlap' if overlap else 'control'} D{head_dim} {bm}x{bn} stages {stages} "
                          f"warps {warps}: regs {r['reg']} stack {r['stack']} shared {kernel.metadata.shared} "
                          f"tanh_under_wgmma {under}")
        return 0
    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] != 9:
        print("needs a Hopper GPU (sm_90)", file=sys.stderr)
        return 1
    # the Triton kernel as bench_gdpa.py times it (its triton_op launches directly in eager);
    # imported here, not at the top: it registers its ops when imported
    from bench_gdpa import ACT, SDPA_PEERS, gdpa_forward_op, median_ms, naive, sdpa_peer, time_or_none
    from benchutil import write_json
    H, D = 4, 128
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
        exact = (torch.nn.functional.gelu(q[:8].float() @ k[:8].float().mT, approximate="tanh")
                 @ v[:8].float()) * scale
        # the peers in the same process: the naive path, and SDPA's cuDNN backend (softmax, the
        # baseline file's "SDPA flash"; None where it refuses the shape)
        naive_ms = median_ms(lambda: naive(q, k, v, scale), 100)
        cudnn = sdpa_peer(SDPA_PEERS["cudnn"])
        cudnn_ms = time_or_none(lambda: cudnn(q, k, v), 100)
        row = {"B": B, "T": T, "S": S, "triton_tflops": flops / triton_ms / 1e9,
               "naive_tflops": flops / naive_ms / 1e9,
               "cudnn_tflops": flops / cudnn_ms / 1e9 if cudnn_ms else None, "gluon": {}}
        for (bm, bn, stages, warps), overlap in itertools.product(CONFIGS, (True, False)):
            name = f"{bm}x{bn}x{stages}x{warps}{'' if overlap else ' control'}"
            try:
                fn = lambda: gdpa_forward_overlap(q, k, v, scale, bm, bn, stages, warps, overlap)  # noqa: E731
                # checked on a NaN-filled output: a fresh torch.empty can be the cached block of
                # the Triton kernel's last output, which a kernel that stored nothing would pass off
                # as its own (the first GPU run's outputs were bit-identical to Triton's)
                o = gdpa_forward_overlap(q, k, v, scale, bm, bn, stages, warps, overlap,
                                         out=torch.full_like(q, float("nan")))
                err = ((o[:8].float() - exact).norm() / exact.norm()).item()
                vs_triton = ((o.float() - ref.float()).norm() / ref.float().norm()).item()
                ms = triton.testing.do_bench(fn, return_mode="median")
                row["gluon"][name] = {"tflops": flops / ms / 1e9, "rel_err_vs_fp32": err,
                                      "rel_diff_vs_triton": vs_triton, "correct": err <= TOLERANCE}
            except Exception as exc:  # an experiment: record what failed and go on
                row["gluon"][name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        rows.append(row)
        write_json(args.json, rows)   # after every shape: a hang in a later one keeps these
        best = max((g["tflops"] for g in row["gluon"].values() if "tflops" in g), default=float("nan"))
        peers = f"naive {row['naive_tflops']:.0f}" + (f", cuDNN {row['cudnn_tflops']:.0f}"
                                                     if row["cudnn_tflops"] else ", cuDNN refused")
        print(f"B{B} T{T} S{S}: triton {row['triton_tflops']:.0f} TFLOP/s, {peers}, gluon best {best:.0f}; "
              + ", ".join(f"{n} {g['tflops']:.0f} (err {g['rel_err_vs_fp32']:.1e}"
                          f"{'' if g['correct'] else ' WRONG'})"
                          if "tflops" in g else f"{n} {g['error']}" for n, g in row["gluon"].items()),
              flush=True)
    write_json(args.json, rows, start, H=H, D=D)
    return 0


if __name__ == "__main__":
    sys.exit(main())
