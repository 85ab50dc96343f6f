"""Seed pooling's level-1 forward with several heads a program, against the production kernel.

    python3 bench/seed_pooling_heads.py [--json PATH] [--quick]

Why. The forward reads K/V at 64-67% of the copy bandwidth at bench_seed_pooling.py's first shape
(B1024 H4 T1024 D64, 64 seeds; target 70%), and no launch config of the production kernel does
better (bench/seed_pooling_configs.py, twentieth session). Its programs take one (example, head):
in the model's layout, K = V = one [B, T, H·D] sequence, so a program reads 128 bytes of every
512-byte row and the row's other heads are read by other programs, on other SMs, at other times.
Here one program takes HP heads of an example and loads their tiles side by side (HP·D contiguous
bytes of each row), with an online softmax per head. If DRAM locality is what the production
kernel lacks, this reads faster; the production kernel on a contiguous [B, H, T, D] copy (each
head's rows back to back) is timed beside it as the same question asked the other way.

Every variant is checked against the production kernel's output (and lse) on the same inputs, full
and jagged lengths, and timed by GPU kernel time (benchutil.kernel_ms). --quick: the checks only,
at odd shapes (the interpreter runs them on CPU: TRITON_INTERPRET=1).
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
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the scripts beside this one
from benchutil import direct_launch, kernel_ms, rel_err, write_json  # noqa: E402
from compile_kernels import kernel_module  # noqa: E402

sp = kernel_module("seed_pooling")
_store_result = sp._store_result   # the production kernel's epilogue (normalize, lse, store)
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _head_step(q, kt, t_ok, m, l, acc, qk_scale):
    """One K/V tile of one head: the production kernel's online-softmax step (K = V)."""
    s = tl.dot(q, tl.trans(kt)) * qk_scale
    s = tl.where(t_ok[None, :], s, float("-inf"))
    m_new = tl.maximum(m, tl.max(s, 1))
    alpha = tl.exp2(m - m_new)
    p = tl.exp2(s - m_new[:, None])
    l = l * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + tl.dot(p.to(kt.dtype), kt)
    return m_new, l, acc


@triton.jit
def _fwd_heads_kernel(Q, KV, LENGTHS, O, LSE, H, T, skv_b, skv_t, qk_scale,
                      HP: tl.constexpr, S: tl.constexpr, D: tl.constexpr, BLOCK_T: tl.constexpr):
    """Grid (B, H / HP): heads h0 .. h0 + HP - 1 of example b. Seeds [H, S, D] contiguous, S and D
    powers of two >= 16, K = V = kv [B, T, H·D] (row stride skv_t), HP in 1, 2, 4."""
    qk_scale = tl.cast(qk_scale, tl.float32)
    b = tl.program_id(0)
    h0 = tl.program_id(1) * HP
    offs_s = tl.arange(0, S)
    offs_d = tl.arange(0, D)
    offs_t = tl.arange(0, BLOCK_T)
    seeds = Q + h0 * S * D + offs_s[:, None] * D + offs_d[None, :]
    q0 = tl.load(seeds)
    q1 = q0
    q2 = q0
    q3 = q0
    if HP >= 2:
        q1 = tl.load(seeds + S * D)
    if HP >= 4:
        q2 = tl.load(seeds + 2 * S * D)
        q3 = tl.load(seeds + 3 * S * D)
    length = tl.minimum(tl.maximum(tl.load(LENGTHS + b).to(tl.int32), 0), T)
    m0 = tl.full([S], float("-inf"), tl.float32)
    l0 = tl.zeros([S], tl.float32)
    acc0 = tl.zeros([S, D], tl.float32)
    m1, l1, acc1 = m0, l0, acc0
    m2, l2, acc2 = m0, l0, acc0
    m3, l3, acc3 = m0, l0, acc0
    base = KV + b.to(tl.int64) * skv_b + h0 * D + offs_d[None, :]
    for t0 in range(0, length, BLOCK_T):
        t = t0 + offs_t
        t_ok = t < length
        ptrs = base + t[:, None].to(tl.int64) * skv_t
        k0 = tl.load(ptrs, mask=t_ok[:, None], other=0.0)
        if HP >= 2:
            k1 = tl.load(ptrs + D, mask=t_ok[:, None], other=0.0)
        if HP >= 4:
            k2 = tl.load(ptrs + 2 * D, mask=t_ok[:, None], other=0.0)
            k3 = tl.load(ptrs + 3 * D, mask=t_ok[:, None], other=0.0)
        m0, l0, acc0 = _head_step(q0, k0, t_ok, m0, l0, acc0, qk_scale)
        if HP >= 2:
            m1, l1, acc1 = _head_step(q1, k1, t_ok, m1, l1, acc1, qk_scale)
        if HP >= 4:
            m2, l2, acc2 = _head_step(q2, k2, t_ok, m2, l2, acc2, qk_scale)
            m3, l3, acc3 = _head_step(q3, k3, t_ok, m3, l3, acc3, qk_scale)
    bh = b * H + h0
    s_ok = offs_s < S
    _store_result(O, LSE, bh, offs_s, s_ok, offs_d, m0, l0, acc0, S, D, D)
    if HP >= 2:
        _store_result(O, LSE, bh + 1, offs_s, s_ok, offs_d, m1, l1, acc1, S, D, D)
    if HP >= 4:
        _store_result(O, LSE, bh + 2, offs_s, s_ok, offs_d, m2, l2, acc2, S, D, D)
        _store_result(O, LSE, bh + 3, offs_s, s_ok, offs_d, m3, l3, acc3, S, D, D)


def heads_forward(seeds, x, lengths, scale, hp: int, block_t: int, warps: int, stages: int):
    """(o [B, H, S, D], lse [B, H, S]) for K = V = x [B, T, H·D] with HP heads a program."""
    H, S, D = seeds.shape
    B, T, _ = x.shape
    o = x.new_empty(B, H, S, D)
    lse = torch.empty(B, H, S, dtype=torch.float32, device=x.device)
    _fwd_heads_kernel[(B, H // hp)](seeds, x, lengths, o, lse, H, T, x.stride(0), x.stride(1),
                                    scale * math.log2(math.e), HP=hp, S=S, D=D, BLOCK_T=block_t,
                                    num_warps=warps, num_stages=stages)
    return o, lse


def heads_view(seeds, x):
    """K = V as the production kernel takes it from the model: x [B, T, H·D] as [B, H, T, D]."""
    B, T, _ = x.shape
    H, _, D = seeds.shape
    return x.view(B, T, H, D).transpose(1, 2)


def production(seeds, kv, lengths, scale):
    return sp.seed_pooling_forward(seeds, kv, kv, lengths, scale)


def inputs(B, H, T, D, S, jagged: bool, device, seed=0):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    x = torch.randn(B, T, H * D, generator=gen).to(device, dtype)
    seeds = torch.randn(H, S, D, generator=gen).to(device, dtype)
    lengths = (torch.randint(0, T + 1, (B,), generator=gen) if jagged else torch.full((B,), T)).to(device)
    if jagged and B >= 2:
        lengths[0], lengths[1] = 0, min(1, T)   # an empty example and a one-key example
    return seeds, x, lengths


def check(o, lse, o_ref, lse_ref) -> float:
    finite = ~torch.isinf(lse_ref)
    assert torch.equal(torch.isinf(lse), ~finite), "empty examples differ"
    return max(rel_err(o, o_ref), rel_err(lse[finite], lse_ref[finite]) if finite.any() else 0.0)


def quick(device: str) -> list[dict]:
    rows = []
    for (B, H, T, D, S), hp, jagged in itertools.product(
            [(3, 4, 37, 16, 16), (4, 4, 70, 32, 16), (2, 2, 1, 16, 32)], (1, 2, 4), (False, True)):
        if H % hp:
            continue
        seeds, x, lengths = inputs(B, H, T, D, S, jagged, device)
        scale = D ** -0.5
        o_ref, lse_ref = production(seeds, heads_view(seeds, x), lengths, scale)
        o, lse = heads_forward(seeds, x, lengths, scale, hp, 32 if _INTERPRET else 64, 4, 2)
        err = check(o, lse, o_ref, lse_ref)
        rows.append(dict(B=B, H=H, T=T, D=D, S=S, hp=hp, jagged=jagged, rel_err=err))
        print(f"B{B} H{H} T{T} D{D} S{S} HP{hp} {'jagged' if jagged else 'full  '}  rel err {err:.1e}")
        assert err <= (1e-5 if device == "cpu" else 1e-2), rows[-1]
    return rows


SHAPES = [dict(B=1024, H=4, T=1024, D=64, S=64), dict(B=512, H=8, T=2048, D=64, S=128)]
CONFIGS = [(hp, t, w, st) for hp in (2, 4) for t in (32, 64) for w in (4, 8) for st in (2, 3, 4)]


def timed(device: str, copy_bw: float) -> list[dict]:
    rows = []
    for shape in SHAPES:
        for jagged in (False, True):
            seeds, x, lengths = inputs(**shape, jagged=jagged, device=device)
            scale = shape["D"] ** -0.5
            valid = float(lengths.clamp(max=shape["T"]).sum()) * x.shape[2] * x.element_size()
            kv = heads_view(seeds, x)
            kv_contiguous = kv.contiguous()   # made before timing: the copy is not the kernel's
            o_ref, lse_ref = production(seeds, kv, lengths, scale)

            def row(name, fn, **extra):
                ms = kernel_ms(fn)
                o, lse = fn()
                err = check(o, lse, o_ref, lse_ref)
                r = dict(**shape, jagged=jagged, variant=name, ms=ms, read_TBps=valid / ms / 1e9,
                         pct_copy=100 * valid / (ms * 1e-3) / copy_bw, rel_err=err, **extra)
                rows.append(r)
                print(f"{shape} {'jagged' if jagged else 'full'} {name:<28} {ms * 1e3:8.1f} us "
                      f"{r['pct_copy']:5.1f}% of copy  err {err:.1e}", flush=True)

            row("production (model layout)", lambda: production(seeds, kv, lengths, scale))
            row("production (contiguous)", lambda: production(seeds, kv_contiguous, lengths, scale))
            for hp, t, w, st in CONFIGS:
                if shape["H"] % hp or hp * shape["S"] * shape["D"] > 4 * 64 * 64:
                    continue   # four 64 x 64 fp32 accumulators at most
                try:
                    row(f"HP{hp} T{t} w{w} s{st}", lambda: heads_forward(seeds, x, lengths, scale, hp, t, w, st),
                        hp=hp, block_t=t, warps=w, stages=st)
                except Exception as e:   # out of shared memory or registers: say so, go on
                    print(f"HP{hp} T{t} w{w} s{st}: {type(e).__name__}: {str(e)[:120]}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, "seed_pooling_heads.json") if out else None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    start = time.time()
    device = "cuda" if torch.cuda.is_available() and not _INTERPRET else "cpu"
    rows = quick(device)
    if not args.quick:
        if device != "cuda":
            sys.exit("seed_pooling_heads: timing needs a CUDA GPU (--quick runs the checks on CPU)")
        from bench_seed_pooling import copy_ceiling
        copy_bw = copy_ceiling()
        print(f"copy ceiling {copy_bw / 1e12:.2f} TB/s")
        with direct_launch():
            rows += timed(device, copy_bw)
    write_json(args.json, rows, start if device == "cuda" else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
