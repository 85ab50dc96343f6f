"""Experiment: the sliding-window softmax forward in Gluon, its softmax under the tensor cores (Hopper).

    python3 bench/window_gluon_fwd.py [--json PATH] [--quick]   # on an H100/H200: check, then time
    python3 bench/window_gluon_fwd.py --compile-only            # anywhere: compile for sm_90, resources

Why. The window forward (templates/kernels/window_attention.py's Triton kernel) is 1.16-1.40x
FlexAttention at four of bench_window.py's six rows, against the target's 1.5x (BENCHMARKS.md).
Nsight Compute (twenty-third session) has it issuing in 63% of its cycles with no pipe past 41%:
bound by its serial chain, Q·Kᵀ -> wait -> softmax -> P·V, per key tile. The Gluon backward of the
same tiles gained 1.15-1.42x over Triton's; the forward never had a Gluon version. This one runs
FlashAttention-3's intra-warpgroup overlap, in FlashAttention-3's order:

    S_0 = Q·K_0ᵀ; wait; softmax(S_0) -> P_0
    for j = 1 .. n-1:                        (nothing in flight on entry)
        issue S_j = Q·K_jᵀ
        O *= alpha_{j-1}                     (under S_j)
        issue O += P_{j-1}·V_{j-1}
        wait S_j; softmax(S_j) -> P_j, alpha_j   (MUFU and FP32 work under P_{j-1}·V_{j-1})
        wait P_{j-1}·V_{j-1}; refill its stage
    O *= alpha_{n-1}; O += P_{n-1}·V_{n-1}

(The first version kept P_j·V_j in flight across the loop's back edge, as bench/gdpa_gluon.py does;
with the rescale of O reading that accumulator after its wait, ptxas serialized every wgmma of the
kernel, C7514 "non wgmma instructions reading accumulator registers", and it ran 0.87-0.96x
Triton: BENCHMARKS.md, sliding-window attention, twenty-eighth session. --compile-only prints how
many exp2 a loop issues under a wgmma; tests/test_window_gluon_fwd.py checks it.)

OVERLAP=False is the control: the same tiles, TMA ring and masks, each wgmma waited for at once
(the Triton kernel's schedule). Per tile the band mask is applied only where the tile needs it (a
uniform branch: the band's edge tiles and the one that crosses the length).

Scope: the production forward's semantics (window_attention.window_attention_forward: band
-LEFT <= j - i <= RIGHT, jagged lengths, padded [B, H, T, D] or packed [N, H, D] rows, o zero and
lse -inf past a length, nothing written outside an example's rows when packed), bf16/fp16, D 64 or
128, sm_90. Host side and shared helpers come from templates/kernels/window_attention_hopper.py
(TMA views of the models' heads layouts, the TMA ring, masked stores). Not selected by the
compiler: `main` checks it against the Triton forward (o, lse; NaN-filled outputs) and times both,
in one process by GPU kernel time, at bench_window.py's shapes, full lengths and packed jagged rows.
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
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, warpgroup_mma, warpgroup_mma_wait
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from compile_kernels import kernel_module  # noqa: E402

hop = kernel_module("window_attention_hopper")
# the Hopper backward's device helpers, resolved by the kernel below through this module's globals
_release, _wait_tile, _load_pair = hop._release, hop._wait_tile, hop._load_pair
_zero_rows_from, _store_rows, _example, _out_base = hop._zero_rows_from, hop._store_rows, hop._example, hop._out_base
_barrier, _tma_load = hop._barrier, hop._tma_load
_LOG2E = 1.4426950408889634


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
def _serial(acc, m_i, l_i, n_tiles, q_smem, k_smem, v_smem, bars, s_zero, n_first, m0, offs_m, lo, length, LEFT,
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
        acc = acc * gl.expand_dims(gl.convert_layout(alpha, gl.SliceLayout(1, o_layout)), 1)
        acc = warpgroup_mma(p_op, v_smem.index(j % STAGES), acc, is_async=True)
        acc, p_op = warpgroup_mma_wait(num_outstanding=0, deps=(acc, p_op))
        if j + STAGES < n_tiles:  # tile j's stage is free
            _load_pair(k_desc, v_desc, k_smem, v_smem, bars, j + STAGES, k_row, v_row, k_col, v_col,
                       BLOCK_N, STAGES)
    return acc, m_i, l_i


@gluon.jit
def window_fwd_kernel(q_desc, k_desc, v_desc, O, LSE, LENGTHS, STARTS,
                      q_b, q_h, q_c, k_b, k_h, k_c, v_b, v_h, v_c,
                      stride_ob, stride_oh, stride_ot, stride_od,
                      H, T, LEFT, RIGHT, scale_log2,
                      PACKED: gl.constexpr, STAGES: gl.constexpr, OVERLAP: gl.constexpr,
                      num_warps: gl.constexpr):
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
    q_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_D], q_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_D], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_D], v_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    for stage in gl.static_range(STAGES):
        mbarrier.init(bars.index(stage), count=1)
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
                acc = acc * gl.expand_dims(gl.convert_layout(alpha, gl.SliceLayout(1, o_layout)), 1)
                acc = warpgroup_mma(p_prev, v_smem.index((j - 1) % STAGES), acc, is_async=True)
                s = warpgroup_mma_wait(num_outstanding=1, deps=(s, ))                        # Q·K_jᵀ
                p, m_i, l_i, alpha = _softmax_tile(s, m_i, l_i, j, *at, BLOCK_M, BLOCK_N, s_layout)
                acc, p_prev = warpgroup_mma_wait(num_outstanding=0, deps=(acc, p_prev))    # P_{j-1}·V_{j-1}
                if j - 1 + STAGES < n_tiles:  # tile j-1's stage is free
                    _load_pair(k_desc, v_desc, k_smem, v_smem, bars, j - 1 + STAGES, k_row, v_row,
                               h * k_c, h * v_c, BLOCK_N, STAGES)
                p_prev = gl.convert_layout(p.to(dtype), p_layout)
            j_last = n_tiles - 1
            _zero_v_tail(v_smem, j_last, n_first, length, BLOCK_N, HEAD_D, STAGES, num_warps)
            acc = acc * gl.expand_dims(gl.convert_layout(alpha, gl.SliceLayout(1, o_layout)), 1)
            acc = warpgroup_mma(p_prev, v_smem.index(j_last % STAGES), acc, is_async=True)
            acc, p_prev = warpgroup_mma_wait(num_outstanding=0, deps=(acc, p_prev))
        else:
            acc, m_i, l_i = _serial(acc, m_i, l_i, n_tiles, q_smem, k_smem, v_smem, bars, s_zero, *at, k_desc,
                                    v_desc, k_row, v_row, h * k_c, h * v_c, BLOCK_M, BLOCK_N, HEAD_D, STAGES,
                                    s_layout, o_layout, p_layout, num_warps)
    _release(q_bar, bars, STAGES)
    # rows past the length (their queries were whatever the memory held) and rows with no key: 0, -inf
    keep = (offs_m < length) & (l_i > 0)
    inv_l = gl.where(keep, 1.0 / gl.where(keep, l_i, 1.0), 0.0)
    lse = gl.where(keep, (m_i + gl.log2(gl.where(keep, l_i, 1.0))) * 0.6931471805599453, float("-inf"))
    gl.store(LSE + bh.to(gl.int64) * T + offs_m, lse, mask=offs_m < T)
    out = acc * gl.expand_dims(gl.convert_layout(inv_l, gl.SliceLayout(1, o_layout)), 1)
    _store_rows(o_base, stride_ot, stride_od, out, m0, length, limit, BLOCK_M, HEAD_D, dtype, num_warps)


def window_forward_gluon(q, k, v, lengths, window: int, causal: bool, scale: float, starts=None,
                         max_len: int | None = None, config=(64, 64, 3, 4), overlap: bool = True,
                         out=None, lse=None):
    """(o, lse) as window_attention.window_attention_forward: padded q, k, v [B, H, T, D], or packed
    rows [N, H, D] with starts and max_len. config (BLOCK_M, BLOCK_N, STAGES, num_warps), BLOCK_M =
    16 x num_warps. out, lse: preallocated outputs (the check fills them with NaN first)."""
    packed = starts is not None
    if packed:
        N, H, D = q.shape
        B, T = lengths.shape[0], max_len
    else:
        B, H, T, D = q.shape
    reason = hop.unsupported({"q": q, "k": k, "v": v, "grad_out": q}, packed, B, H)
    if reason:
        raise ValueError(f"window_forward_gluon: {reason}")
    bm, bn, stages, warps = config
    assert bm == 16 * warps, "BLOCK_M is 16 rows a warp (one m16 wgmma atom each)"
    left = min(window, T)
    right = 0 if causal else min(window, T)
    o = torch.empty_like(q) if out is None else out
    lse = torch.empty(B, H, T, device=q.device, dtype=torch.float32) if lse is None else lse
    descs, rows = zip(*(hop._descriptor(x, packed, n) for x, n in ((q, bm), (k, bn), (v, bn))))
    window_fwd_kernel[(triton.cdiv(T, bm), B * H)](
        *descs, o, lse, lengths, starts if packed else lengths, *(r for view in rows for r in view),
        *hop._out_strides(o, packed), H, T, left, right, float(scale) * _LOG2E,
        PACKED=packed, STAGES=stages, OVERLAP=overlap, num_warps=warps)
    return o, lse


# ----------------------------------------------------------------------------- compile without a GPU

# (BLOCK_M, BLOCK_N, STAGES, num_warps); 64 x 128 left out: it spills at D 128 (255 registers)
CONFIGS = [(64, 64, 3, 4), (64, 32, 3, 4), (128, 64, 3, 8), (128, 32, 3, 8), (64, 64, 4, 4), (64, 32, 4, 4),
           (64, 64, 2, 4)]


def compile_sm90(config, head_dim: int, packed: bool, overlap: bool):
    from compile_kernels import compile_gluon_sm90
    bm, bn, stages, warps = config
    x = torch.empty(1, 1, 256, head_dim, dtype=torch.bfloat16)
    descs = [hop._descriptor(x, False, rows)[0] for rows in (bm, bn, bn)]
    return compile_gluon_sm90(window_fwd_kernel, descs,
                              {"PACKED": packed, "STAGES": stages, "OVERLAP": overlap, "num_warps": warps},
                              {"num_warps": warps})


# ----------------------------------------------------------------------------- GPU check and timing

SHAPES = [(64, 4, 2048, 64, 256), (32, 8, 4096, 64, 512), (128, 4, 1024, 128, 128)]   # bench_window.py's
QUICK_SHAPES = [(3, 2, 300, 64, 37), (2, 3, 37, 128, 5), (4, 2, 1, 64, 3), (2, 2, 517, 128, 1000),
                (3, 2, 200, 64, 64)]
TOLERANCE = 1e-2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, "window_gluon_fwd.json") if out else None)
    parser.add_argument("--quick", action="store_true", help="odd shapes: correctness only")
    parser.add_argument("--compile-only", action="store_true")
    parser.add_argument("--configs", default="", help="indices into CONFIGS (default: all)")
    args = parser.parse_args()
    configs = [CONFIGS[int(i)] for i in args.configs.split(",")] if args.configs else CONFIGS
    if args.compile_only:
        from compile_kernels import resource_usage
        from gdpa_gluon import activation_under_wgmma, sass_instructions
        for config, head_dim, overlap in itertools.product(configs, (64, 128), (True, False)):
            for packed in (False, True):
                try:
                    kernel = compile_sm90(config, head_dim, packed, overlap)
                except Exception as exc:
                    print(f"{config} D{head_dim} {'overlap' if overlap else 'control'}: FAILED "
                          f"{type(exc).__name__}: {str(exc)[-1500:]}")
                    return 1
                r = resource_usage(kernel.asm["cubin"])
                under = activation_under_wgmma(sass_instructions(kernel.asm["cubin"]), "MUFU.EX2")
                print(f"{'overlap' if overlap else 'control':8} D{head_dim} {'packed' if packed else 'padded'} "
                      f"{config}: regs {r['reg']} stack {r['stack']} shared {kernel.metadata.shared} "
                      f"ex2_under_wgmma {under}", flush=True)
        return 0
    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] != 9:
        print("needs a Hopper GPU (sm_90)", file=sys.stderr)
        return 1
    from benchutil import kernel_ms, write_json
    wa = kernel_module("window_attention")
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows_out, start_time, bad = [], time.time(), 0
    for B, H, T, D, window in QUICK_SHAPES if args.quick else SHAPES:
        seqs = [torch.randn(B, T, H * D, generator=gen, device="cuda").bfloat16() for _ in range(3)]
        q, k, v = (x.view(B, T, H, D).transpose(1, 2) for x in seqs)    # the models' heads views
        full = torch.full((B,), T, dtype=torch.int64, device="cuda")
        lengths = torch.randint(0, T + 1, (B,), generator=gen, device="cuda")
        if args.quick:
            lengths[0] = 0
            lengths[-1] = T
        starts = torch.cumsum(lengths, 0) - lengths
        valid = torch.arange(T, device="cuda")[None, :] < lengths[:, None]
        packed_rows = [x.transpose(1, 2)[valid].contiguous() for x in (q, k, v)]
        scale = D ** -0.5
        for causal in (True, False):
            band = "causal" if causal else "bidir"
            cases = {"full": ((q, k, v, full, window, causal, scale), {}),
                     "jagged": ((*packed_rows, lengths, window, causal, scale), dict(starts=starts, max_len=T))}
            row = {"shape": [B, H, T, D, window], "band": band}
            for case, (a, kw) in cases.items():
                ref_o, ref_lse = wa.window_attention_forward(*a, **kw)
                triton_ms = None if args.quick else kernel_ms(lambda: wa.window_attention_forward(*a, **kw))
                row[case] = {"triton_ms": triton_ms, "gluon": {}}
                for config, overlap in itertools.product(configs, (True, False)):
                    name = f"{config[0]}x{config[1]}x{config[2]}x{config[3]}{'' if overlap else ' control'}"
                    try:
                        o, lse = window_forward_gluon(*a, **kw, config=config, overlap=overlap,
                                                      out=torch.full_like(ref_o, float("nan")),
                                                      lse=torch.full_like(ref_lse, float("nan")))
                        torch.cuda.synchronize()
                        err = ((o.float() - ref_o.float()).norm() / ref_o.float().norm().clamp_min(1e-30)).item()
                        fin = ref_lse > float("-inf")
                        lse_ok = bool(torch.equal(lse[~fin], ref_lse[~fin])) and \
                            bool(torch.allclose(lse[fin], ref_lse[fin], atol=1e-2, rtol=1e-3))
                        ok = err <= TOLERANCE and lse_ok and bool(torch.isfinite(o).all())
                        bad += not ok
                        entry = {"rel_diff_vs_triton": err, "lse_ok": lse_ok, "correct": ok}
                        if not args.quick and ok:
                            ms = kernel_ms(lambda: window_forward_gluon(*a, **kw, config=config, overlap=overlap))
                            entry.update(ms=ms, x_triton=triton_ms / ms)
                    except Exception as exc:  # an experiment: record what failed and go on
                        entry = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
                        bad += 1
                    row[case]["gluon"][name] = entry
                label = f"B{B} H{H} T{T} D{D} W{window} {band} {case}"
                tri = f"triton {triton_ms * 1e3:.1f} us" if triton_ms else "triton (not timed)"
                print(f"{label}: {tri}; " + "; ".join(
                    f"{n} " + (e["error"] if "error" in e else
                               (f"{e['ms'] * 1e3:.1f} us {e['x_triton']:.3f}x" if "ms" in e else "")
                               + f" (diff {e['rel_diff_vs_triton']:.1e}{'' if e['correct'] else ' WRONG'})")
                    for n, e in row[case]["gluon"].items()), flush=True)
            rows_out.append(row)
            write_json(args.json, rows_out)
    write_json(args.json, rows_out, start_time)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
