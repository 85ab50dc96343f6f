"""Experiment: does Triton 3.6's automatic warp specialization speed up GDPA on Hopper?

    python3 bench/gdpa_ws_probe.py [--json PATH] [--quick]     # on an H100/H200
    python3 bench/gdpa_ws_probe.py --compile-only               # anywhere: sm_90 resources

Why. The GDPA kernels (templates/kernels/gdpa.py) run each tile's GEMMs and its activation one
after the other in every warp; FlashAttention-3 and cuDNN overlap them with producer/consumer
warpgroups. The thirteenth session found `tl.range(..., warp_specialize=True)` ignored at 8 warps
and failing at 4 in the real kernels. Compiled for sm_90 with Triton 3.6 (this session), a loop
whose loads are all tensor-descriptor (TMA) loads and whose body has no masks *is* partitioned at
4 warps: 12 warps a program (a TMA producer warpgroup and two consumer warpgroups, each with half
the owned rows), `setmaxnreg`, registers 168, in the forward and in the dK/dV loop alike.

This file times that on the GPU before anything is built on it: the three GDPA kernels written
for that shape (bf16, q [B, H, T, D], k, v [B, H, S, D] contiguous, full lengths, no window,
gelu_tanh, T a multiple of 128 and S of 128), each with `warp_specialize` on and off over a few
configs, against the kernels the compiler selects (gdpa.gdpa_forward / gdpa.gdpa_backward, the
H200's autotuned configs) in the same process. Every output is checked against the float32 torch
reference. If the specialized kernels win by enough, the next step is the real kernels' jagged
rows (descriptor bounds per example instead of masks) and packed layout.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import gdpa_inputs, gdpa_reference, kernel_ms, rel_err, write_text  # noqa: E402

KERNELS = Path(__file__).resolve().parent.parent / "templates" / "kernels" / "gdpa.py"
SQRT_2_OVER_PI = tl.constexpr(0.7978845608028654)
GELU_CUBIC = tl.constexpr(0.044715)


@triton.jit
def _gelu2(x):
    """(2·gelu_tanh(x), 2·gelu_tanh'(x)): the halves go into the output scale, as in gdpa.py."""
    x2 = x * x
    u = x * (x2 * (SQRT_2_OVER_PI * GELU_CUBIC) + SQRT_2_OVER_PI)
    t = tl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=r,r", [u], dtype=tl.float32,
                                  is_pure=True, pack=1)
    du = x2 * (3.0 * SQRT_2_OVER_PI * GELU_CUBIC) + SQRT_2_OVER_PI
    return x + x * t, (1.0 + t) + x * (1.0 - t * t) * du


@triton.jit
def _desc(base, rows, D: tl.constexpr, BLOCK: tl.constexpr):
    return tl.make_tensor_descriptor(base, shape=[rows, D], strides=[D, 1], block_shape=[BLOCK, D])


@triton.jit
def _fwd(Q, K, V, O, T, S, scale, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
         STAGES: tl.constexpr, WS: tl.constexpr):
    m0 = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1).to(tl.int64)
    qd, od = _desc(Q + bh * T * D, T, D, BLOCK_M), _desc(O + bh * T * D, T, D, BLOCK_M)
    kd, vd = _desc(K + bh * S * D, S, D, BLOCK_N), _desc(V + bh * S * D, S, D, BLOCK_N)
    q = qd.load([m0, 0])
    acc = tl.zeros((BLOCK_M, D), tl.float32)
    for n0 in tl.range(0, S, BLOCK_N, num_stages=STAGES, warp_specialize=WS):
        s = tl.dot(q, kd.load([n0, 0]).T)
        p, _ = _gelu2(s)
        acc = tl.dot(p.to(tl.bfloat16), vd.load([n0, 0]), acc)
    od.store([m0, 0], (acc * (scale * 0.5)).to(tl.bfloat16))


@triton.jit
def _dkdv(Q, K, V, DO, DK, DV, T, S, scale, D: tl.constexpr, BLOCK_M: tl.constexpr,
          BLOCK_N: tl.constexpr, STAGES: tl.constexpr, WS: tl.constexpr):
    """dV = Σ_i act(s)ᵀ dO, dK = Σ_i (dO Vᵀ ⊙ act'(s))ᵀ Q over query tiles, for BLOCK_N owned keys
    (transposed tiles, s^T = K Qᵀ, so both accumulators are [BLOCK_N, D])."""
    n0 = tl.program_id(0) * BLOCK_N
    bh = tl.program_id(1).to(tl.int64)
    qd, dod = _desc(Q + bh * T * D, T, D, BLOCK_M), _desc(DO + bh * T * D, T, D, BLOCK_M)
    kd, vd = _desc(K + bh * S * D, S, D, BLOCK_N), _desc(V + bh * S * D, S, D, BLOCK_N)
    dkd, dvd = _desc(DK + bh * S * D, S, D, BLOCK_N), _desc(DV + bh * S * D, S, D, BLOCK_N)
    k, v = kd.load([n0, 0]), vd.load([n0, 0])
    dk = tl.zeros((BLOCK_N, D), tl.float32)
    dv = tl.zeros((BLOCK_N, D), tl.float32)
    for m0 in tl.range(0, T, BLOCK_M, num_stages=STAGES, warp_specialize=WS):
        q, do = qd.load([m0, 0]), dod.load([m0, 0])
        st = tl.dot(k, q.T)
        pt, dact = _gelu2(st)
        dv = tl.dot(pt.to(tl.bfloat16), do, dv)
        dst = tl.dot(v, do.T) * dact
        dk = tl.dot(dst.to(tl.bfloat16), q, dk)
    dkd.store([n0, 0], (dk * (scale * 0.5)).to(tl.bfloat16))
    dvd.store([n0, 0], (dv * (scale * 0.5)).to(tl.bfloat16))


@triton.jit
def _dq(Q, K, V, DO, DQ, T, S, scale, D: tl.constexpr, BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr, STAGES: tl.constexpr, WS: tl.constexpr):
    m0 = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1).to(tl.int64)
    qd, dod = _desc(Q + bh * T * D, T, D, BLOCK_M), _desc(DO + bh * T * D, T, D, BLOCK_M)
    dqd = _desc(DQ + bh * T * D, T, D, BLOCK_M)
    kd, vd = _desc(K + bh * S * D, S, D, BLOCK_N), _desc(V + bh * S * D, S, D, BLOCK_N)
    q, do = qd.load([m0, 0]), dod.load([m0, 0])
    dq = tl.zeros((BLOCK_M, D), tl.float32)
    for n0 in tl.range(0, S, BLOCK_N, num_stages=STAGES, warp_specialize=WS):
        k = kd.load([n0, 0])
        _, dact = _gelu2(tl.dot(q, k.T))
        ds = tl.dot(do, vd.load([n0, 0]).T) * dact
        dq = tl.dot(ds.to(tl.bfloat16), k, dq)
    dqd.store([m0, 0], (dq * (scale * 0.5)).to(tl.bfloat16))


# (BLOCK_M, BLOCK_N, STAGES, num_warps): with WS the compiler makes it 3 warpgroups at 4 warps
FWD_CONFIGS = [(128, 64, 2, 4), (128, 64, 3, 4), (128, 128, 2, 4), (128, 64, 3, 8)]
DKDV_CONFIGS = [(64, 128, 2, 4), (64, 64, 2, 4), (64, 128, 3, 4), (32, 128, 2, 8)]
DQ_CONFIGS = [(128, 64, 2, 4), (128, 64, 3, 4), (128, 32, 2, 4), (128, 64, 2, 8)]


def _alloc(size: int, align: int, stream):   # device-side descriptors need global scratch
    return torch.empty(size, dtype=torch.int8, device="cuda")


def run_fwd(q, k, v, scale, cfg, ws):
    B, H, T, D = q.shape
    S = k.shape[2]
    bm, bn, st, w = cfg
    o = torch.empty_like(q)
    _fwd[(T // bm, B * H)](q, k, v, o, T, S, scale, D, bm, bn, st, ws, num_warps=w)
    return o


def run_bwd(do, q, k, v, scale, cfg_kv, cfg_q, ws):
    B, H, T, D = q.shape
    S = k.shape[2]
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    bm, bn, st, w = cfg_kv
    _dkdv[(S // bn, B * H)](q, k, v, do, dk, dv, T, S, scale, D, bm, bn, st, ws, num_warps=w)
    bm, bn, st, w = cfg_q
    _dq[(T // bm, B * H)](q, k, v, do, dq, T, S, scale, D, bm, bn, st, ws, num_warps=w)
    return dq, dk, dv


def load_gdpa():
    spec = importlib.util.spec_from_file_location("gdpa_kernels", KERNELS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best(fn_of_cfg, configs, label):
    """(ms, cfg) of the fastest config by GPU kernel time; configs that fail to compile or run
    are reported and skipped."""
    found = []
    for cfg in configs:
        try:
            fn_of_cfg(cfg)
            torch.cuda.synchronize()
            found.append((kernel_ms(lambda: fn_of_cfg(cfg)), cfg))
        except Exception as e:  # a config the compiler rejects (shared memory, WS pass)
            print(f"  {label} {cfg}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
    return min(found) if found else (float("nan"), None)


def shape_row(gdpa, B, H, T, S, D):
    torch.manual_seed(0)
    q, k, v, do = gdpa_inputs(B, H, T, S, D)
    scale = 1.0 / S
    lengths = torch.full((B,), T, device="cuda", dtype=torch.int64)
    ours_fwd = lambda: gdpa.gdpa_forward(q, k, v, lengths, None, "gelu_tanh", scale)   # noqa: E731
    ours_bwd = lambda: gdpa.gdpa_backward(do, q, k, v, lengths, None, "gelu_tanh", scale)  # noqa: E731
    ours_fwd(), ours_bwd()   # autotune first
    row = {"B": B, "H": H, "T": T, "S": S, "D": D, "ours_fwd_ms": kernel_ms(ours_fwd),
           "ours_bwd_ms": kernel_ms(ours_bwd)}
    for ws in (False, True):
        tag = "ws" if ws else "plain"
        row[f"{tag}_fwd_ms"], row[f"{tag}_fwd_cfg"] = best(
            lambda c: run_fwd(q, k, v, scale, c, ws), FWD_CONFIGS, f"{tag} fwd")
        row[f"{tag}_dkdv_ms"], cfg_kv = best(
            lambda c: run_bwd(do, q, k, v, scale, c, DQ_CONFIGS[0], ws), DKDV_CONFIGS, f"{tag} dkdv")
        dq_ms, cfg_q = best(lambda c: run_bwd(do, q, k, v, scale, cfg_kv or DKDV_CONFIGS[0], c, ws),
                            DQ_CONFIGS, f"{tag} dq")
        row[f"{tag}_bwd_ms"] = dq_ms   # dK/dV and dQ together, at the best dK/dV config
        row[f"{tag}_bwd_cfg"] = [cfg_kv, cfg_q]
        if cfg_kv and cfg_q and row[f"{tag}_fwd_cfg"]:
            o_ref, dq_ref, dk_ref, dv_ref = gdpa_reference(q, k, v, do, scale)
            got = (run_fwd(q, k, v, scale, row[f"{tag}_fwd_cfg"], ws),
                   *run_bwd(do, q, k, v, scale, cfg_kv, cfg_q, ws))
            row[f"{tag}_err"] = max(rel_err(x, r) for x, r in zip(got, (o_ref, dq_ref, dk_ref, dv_ref)))
    return row


def compile_only() -> int:
    from triton.backends.compiler import GPUTarget
    from compile_kernels import cuobjdump, resource_usage
    names = {"_fwd": ["Q", "K", "V", "O"], "_dkdv": ["Q", "K", "V", "DO", "DK", "DV"],
             "_dq": ["Q", "K", "V", "DO", "DQ"]}
    for kernel, configs in ((_fwd, FWD_CONFIGS), (_dkdv, DKDV_CONFIGS), (_dq, DQ_CONFIGS)):
        ptrs = names[kernel.fn.__name__]
        for D in (64, 128):
            for (bm, bn, st, w) in configs:
                for ws in (False, True):
                    sig = {**{p: "*bf16" for p in ptrs}, "T": "i32", "S": "i32", "scale": "fp32",
                           "D": "constexpr", "BLOCK_M": "constexpr", "BLOCK_N": "constexpr",
                           "STAGES": "constexpr", "WS": "constexpr"}
                    n = len(ptrs) + 3
                    src = triton.compiler.ASTSource(
                        fn=kernel, signature=sig,
                        constexprs={(n,): D, (n + 1,): bm, (n + 2,): bn, (n + 3,): st, (n + 4,): ws},
                        attrs={(i,): [["tt.divisibility", 16]] for i in range(len(ptrs) + 2)})
                    label = f"{kernel.fn.__name__} D{D} {bm}x{bn} s{st} w{w} ws={ws}"
                    try:
                        c = triton.compile(src, target=GPUTarget("cuda", 90, 32),
                                           options={"num_warps": w, "num_stages": st})
                    except Exception as e:
                        print(f"{label}: fails: {str(e).splitlines()[0][:120]}")
                        continue
                    sass = cuobjdump(c.asm["cubin"], "-sass")
                    print(f"{label}: {resource_usage(c.asm['cubin'])}, warps {c.metadata.num_warps}, "
                          f"HGMMA {sass.count('HGMMA')}, partitioned {'ttg.warp_specialize' in c.asm['ttgir']}")
    return 0


SHAPES = [(1152, 4, 512, 512, 128), (288, 4, 2048, 2048, 128), (1152, 4, 1024, 256, 128),
          (1152, 8, 512, 512, 64), (1152, 8, 1024, 256, 64)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path)
    p.add_argument("--quick", action="store_true", help="the first shape only")
    p.add_argument("--compile-only", action="store_true")
    args = p.parse_args(argv)
    if args.compile_only:
        return compile_only()
    triton.set_allocator(_alloc)
    gdpa = load_gdpa()
    t0 = time.time()
    rows = []
    print("GPU kernel ms (profiler); ours = the kernels the compiler selects; plain / ws = TMA "
          "kernels with warp_specialize off / on, best of their configs")
    for B, H, T, S, D in SHAPES[:1] if args.quick else SHAPES:
        r = shape_row(gdpa, B, H, T, S, D)
        rows.append(r)
        print(f"B{B} H{H} T{T} S{S} D{D}: fwd ours {r['ours_fwd_ms']:.3f} plain {r['plain_fwd_ms']:.3f} "
              f"ws {r['ws_fwd_ms']:.3f} (ws÷ours {r['ours_fwd_ms'] / r['ws_fwd_ms']:.2f}x, cfg {r['ws_fwd_cfg']}); "
              f"bwd ours {r['ours_bwd_ms']:.3f} plain {r['plain_bwd_ms']:.3f} ws {r['ws_bwd_ms']:.3f} "
              f"(ws÷ours {r['ours_bwd_ms'] / r['ws_bwd_ms']:.2f}x, dkdv {r['ws_dkdv_ms']:.3f}, "
              f"cfg {r['ws_bwd_cfg']}); "
              f"err plain {r.get('plain_err', float('nan')):.1e} ws {r.get('ws_err', float('nan')):.1e}",
              flush=True)
    print(f"wall time {time.time() - t0:.0f} s")
    if args.json or os.environ.get("OUT"):
        path = args.json or Path(os.environ["OUT"]) / "gdpa_ws_probe.json"
        write_text(path, json.dumps(rows, indent=1))
    bad = [r for r in rows for t in ("plain", "ws") if not r.get(f"{t}_err", 1.0) <= 1e-2]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
