"""Experiment: the warp-specialized GDPA forward (bench/gdpa_gluon_ws.py) with the production
kernels' scope, checked and timed on the GPU before it could move into templates/kernels.

Measured in the twentieth session (BENCHMARKS.md, GDPA): correct at every shape and layout, but
0.67-0.91x the autotuned Triton forward at the models' PFFN and the baselines' D 128 shapes (heads
views or contiguous k, v alike), so it stays an experiment. The gain below did not survive a
re-measure in one process either: 1.09-1.11x on long self-attention, none on short keys.

    python3 bench/gdpa_hopper_fwd.py --quick     # on an H100/H200: odd shapes, every layout, correctness
    python3 bench/gdpa_hopper_fwd.py             # then timed against the Triton forward
    python3 bench/gdpa_hopper_fwd.py --compile-only   # anywhere: compiled for sm_90, resources

Why. bench/gdpa_gluon_ws.py measured the warp-specialized schedule (a TMA producer warp, two
consumer warpgroups of 64 query rows each) at 1.10-1.25x the Triton forward at D 128 on full
lengths, and no gain at D 64 (BENCHMARKS.md, GDPA, nineteenth session). The compiler cannot select
it until it does what gdpa.gdpa_forward does. This kernel adds, with the production backward's own
helpers (templates/kernels/gdpa_hopper.py, window_attention_hopper.py):

- jagged query rows: padded q [B, H, T, D] (rows at or past a length written as zeros, up to T) or
  packed q [N, H, D] with per-example starts (only the examples' own rows written); a program whose
  rows all lie past its length walks no key tile (padded: it stores zeros);
- k, v as any [B, H, S, D] views TMA can address (the models' heads views of one projection);
- gdpa_hopper._act_and_grad's six activations (one per launch, as gdpa_forward's head groups), the
  head table (HEAD_TABLE: a launch covering the heads one activation owns);
- masked register stores (window_attention_hopper._store_rows), any output strides.

Out of scope, as for the Hopper backward: a window (Triton runs it), kv lengths (the PFFN's keys are
all valid; a key tile past a kv length would need its rows zeroed in shared memory before both
consumers read it), S not a multiple of BLOCK_N. Query rows past a length are read (TMA reads whole
tiles; padding may hold NaN) but only ever reach their own output rows, which are masked.
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
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, warpgroup_mma, warpgroup_mma_wait

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the scripts beside this one
from compile_kernels import compile_gluon_sm90, kernel_module, resource_usage  # noqa: E402
from gdpa_gluon import sass_instructions  # noqa: E402
from gdpa_gluon_bwd import wgmma_waits  # noqa: E402
from gdpa_gluon_ws import CONSUMER_REGS, CONSUMERS, MAXNREG, _produce, gdpa_forward_ws  # noqa: E402  (the schedule's)

_hop = kernel_module("gdpa_hopper")            # the production backward's module and its helpers
_common = _hop._common
_program, _act_and_grad = _hop._program, _hop._act_and_grad
_store_rows, _out_strides = _common._store_rows, _common._out_strides
ACT_IDS = {"gelu_tanh": 0, "gelu": 1, "silu": 2, "relu": 3, "relu2": 4, "identity": 5}


@gluon.jit
def _consume(q_smem, k_smem, v_smem, q_bar, ready, empty, o_base, stride_ot, stride_od, m0, q_len, limit,
             n_tiles, scale, ACT: gl.constexpr, WHICH: gl.constexpr):
    """A consumer (one warpgroup): O = act(Q·Kᵀ)·V for its 64 rows from m0 + WHICH·64, stored with
    masks (zeros at rows >= q_len, nothing at rows >= limit). Where its rows all lie past q_len it
    computes nothing but still waits for and releases every stage, which the producer refills only
    once both consumers have released it."""
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
    first = m0 + WHICH * BLOCK_M
    acc = gl.zeros([BLOCK_M, HEAD_D], gl.float32, o_layout)
    if first < q_len:
        q = q_smem.index(WHICH)
        s_zero = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, s_layout)
        mbarrier.wait(q_bar, 0)
        mbarrier.wait(ready.index(0), 0)      # tile 0 peeled: the loop carries an in-flight P·V
        s = warpgroup_mma(q, k_smem.index(0).permute((1, 0)), s_zero, use_acc=False, is_async=True)
        s = warpgroup_mma_wait(num_outstanding=0, deps=(s, ))
        p = gl.convert_layout(_act_and_grad(s, ACT)[0].to(dtype), p_layout)
        acc = warpgroup_mma(p, v_smem.index(0), acc, use_acc=False, is_async=True)
        for j in range(1, n_tiles):
            slot = j % STAGES
            mbarrier.wait(ready.index(slot), (j // STAGES) & 1)
            s = warpgroup_mma(q, k_smem.index(slot).permute((1, 0)), s_zero, use_acc=False, is_async=True)
            s, acc, p = warpgroup_mma_wait(num_outstanding=0, deps=(s, acc, p))   # and P_{j-1}·V_{j-1}
            mbarrier.arrive(empty.index((j - 1) % STAGES), count=1)              # K/V_{j-1} read
            p = gl.convert_layout(_act_and_grad(s, ACT)[0].to(dtype), p_layout)
            acc = warpgroup_mma(p, v_smem.index(slot), acc, is_async=True)
        acc, p = warpgroup_mma_wait(num_outstanding=0, deps=(acc, p))
    else:
        for j in range(n_tiles):
            slot = j % STAGES
            mbarrier.wait(ready.index(slot), (j // STAGES) & 1)
            if j > 0:
                mbarrier.arrive(empty.index((j - 1) % STAGES), count=1)
    _store_rows(o_base, stride_ot, stride_od, acc * scale, first, q_len, limit, BLOCK_M, HEAD_D, dtype, warps)


@gluon.jit
def gdpa_fwd_hopper_kernel(q_desc, k_desc, v_desc, O, Q_LEN, HEADS, Q_STARTS,
                           q_b, q_h, q_c, k_b, k_h, k_c, v_b, v_h, v_c,
                           stride_ob, stride_oh, stride_ot, stride_od, n_heads, T, S, scale,
                           ACT: gl.constexpr, HEAD_TABLE: gl.constexpr, PACKED: gl.constexpr,
                           STAGES: gl.constexpr, CONSUMER_REGS: gl.constexpr, num_warps: gl.constexpr):
    """O of CONSUMERS x 64 query rows of one (b, head slot) over all S keys. num_warps (4) is the
    default partition, consumer 0; consumer 1 and the producer are workers."""
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_D: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    gl.static_assert(num_warps == 4, "each consumer is one warpgroup")
    m0 = gl.program_id(0) * (CONSUMERS * BLOCK_M)
    b, h, q_len, kv_len, start, limit = _program(Q_LEN, Q_LEN, HEADS, Q_STARTS, n_heads, T, S, False,
                                                 HEAD_TABLE, PACKED)
    if PACKED:
        o_base = O + start.to(gl.int64) * stride_ot + h.to(gl.int64) * stride_oh
    else:
        o_base = O + b.to(gl.int64) * stride_ob + h.to(gl.int64) * stride_oh
    n_tiles = gl.where(m0 < q_len, kv_len // BLOCK_N, 0)
    q_smem = gl.allocate_shared_memory(dtype, [CONSUMERS, BLOCK_M, HEAD_D], q_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_D], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_D], v_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=CONSUMERS)
    q_row = start + b * q_b + h * q_h + m0
    first: gl.constexpr = 0
    second: gl.constexpr = 1
    gl.warp_specialize([
        (_consume, (q_smem, k_smem, v_smem, q_bar, ready, empty, o_base, stride_ot, stride_od, m0, q_len,
                    limit, n_tiles, scale, ACT, first)),
        (_consume, (q_smem, k_smem, v_smem, q_bar, ready, empty, o_base, stride_ot, stride_od, m0, q_len,
                    limit, n_tiles, scale, ACT, second)),
        (_produce, (q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_bar, ready, empty, q_row, h * q_c,
                    b * k_b + h * k_h, h * k_c, b * v_b + h * v_h, h * v_c, n_tiles)),
    ], [4, 1], [CONSUMER_REGS, 24])


# ----------------------------------------------------------------------------- host side

BLOCK_M = 64                       # a consumer's rows; a program owns CONSUMERS x BLOCK_M
CONFIGS = {64: (128, 3), 128: (64, 3)}   # head dim -> (BLOCK_N, STAGES): gdpa_gluon_ws.py's best


def unsupported(q, k, v, packed: bool, batch_heads: int) -> str | None:
    """The Hopper backwards' shared checks (window_attention_hopper.tensors_reason: dtype, head dim,
    grid column, TMA views, sm_90; q stands in for the grad_out a forward does not read), then S a
    multiple of the key tile; None where all pass."""
    reason = _common.tensors_reason({"q": q, "k": k, "v": v, "grad_out": q},
                                    {"q": packed, "k": False, "v": False, "grad_out": packed}, batch_heads)
    if reason is not None:
        return reason
    block_n = CONFIGS[q.shape[-1]][0]
    if k.shape[2] % block_n or k.shape[2] == 0:
        return f"S a positive multiple of {block_n} only"
    return None


def gdpa_forward_hopper(q, k, v, q_lengths, activation: str, scale: float, q_starts=None, max_len=None,
                        heads=None, out=None):
    """O = scale · act(q·kᵀ) · v (gdpa.gdpa_forward's contract for one activation, no window, no kv
    lengths): padded q [B, H, T, D] or packed q [N, H, D] (q_starts, max_len); k, v [B, H, S, D]
    views. heads: the head indices this launch covers (a head table), default all."""
    packed = q_starts is not None
    B, H, S = k.shape[0], k.shape[1], k.shape[2]
    n_heads = H if heads is None else len(heads)
    reason = unsupported(q, k, v, packed, B * n_heads)
    if reason:
        raise ValueError(f"gdpa_forward_hopper: {reason}")
    block_n, stages = CONFIGS[q.shape[-1]]
    T = max_len if packed else q.shape[2]
    o = torch.empty_like(q) if out is None else out
    descs, rows = zip(*(_common._descriptor(x, p, n) for x, p, n in
                        ((q, packed, BLOCK_M), (k, False, block_n), (v, False, block_n))))
    table = None if heads is None else torch.tensor(heads, device=q.device, dtype=torch.int32)
    factor = 2.0 if activation == "gelu_tanh" else 1.0       # _act_and_grad doubles gelu_tanh
    if B * n_heads == 0 or T == 0:
        return o
    gdpa_fwd_hopper_kernel[(triton.cdiv(T, 2 * BLOCK_M), B * n_heads)](
        *descs, o, q_lengths, table if table is not None else q_lengths, q_starts if packed else q_lengths,
        *(r for view in rows for r in view), *_out_strides(o, packed), n_heads, T, S, float(scale) / factor,
        ACT=ACT_IDS[activation], HEAD_TABLE=table is not None, PACKED=packed, STAGES=stages,
        CONSUMER_REGS=CONSUMER_REGS, num_warps=4, maxnreg=MAXNREG)
    return o


def compile_sm90(head_dim: int, packed: bool, act: int = 0, head_table: bool = False):
    """The kernel compiled for sm_90 by the installed Triton, without a GPU."""
    block_n, stages = CONFIGS[head_dim]
    x = torch.empty(1, 1, 256, head_dim, dtype=torch.bfloat16)
    descs = [_common._descriptor(x, False, n)[0] for n in (BLOCK_M, block_n, block_n)]
    constexprs = {"ACT": act, "HEAD_TABLE": head_table, "PACKED": packed, "STAGES": stages,
                  "CONSUMER_REGS": CONSUMER_REGS, "num_warps": 4}
    return compile_gluon_sm90(gdpa_fwd_hopper_kernel, descs, constexprs, {"num_warps": 4, "maxnreg": MAXNREG})


def print_compiled() -> None:
    for head_dim in CONFIGS:
        for packed in (False, True):
            for act in (0, 3):
                kernel = compile_sm90(head_dim, packed, act, head_table=packed)
                r = resource_usage(kernel.asm["cubin"])
                instructions = sass_instructions(kernel.asm["cubin"])
                hgmma, waits = wgmma_waits(instructions)
                print(f"fwd D{head_dim} {'packed' if packed else 'padded'} act {act}: regs {r['reg']} "
                      f"stack {r['stack']} shared {kernel.metadata.shared} hgmma {hgmma} waits {len(waits)} "
                      f"tanh {sum('MUFU.TANH' in i for i in instructions)} "
                      f"setmaxnreg {sum(i.startswith('USETMAXREG') for i in instructions)}", flush=True)


# ----------------------------------------------------------------------------- GPU check and timing

# (B, H, T, S, D, activation): the odd shapes first (T not a multiple of 128, a single 128-key or 64-key
# tile, lengths of 0 and 1), then kunlun_60g's PFFN shapes and the baselines' D 128 cross shapes
QUICK_SHAPES = [(3, 2, 37, 128, 64, "gelu_tanh"), (2, 3, 300, 256, 128, "silu"), (4, 2, 1, 128, 64, "relu2"),
                (2, 2, 129, 512, 64, "gelu"), (3, 1, 517, 64, 128, "identity"), (2, 4, 200, 384, 64, "relu")]
SHAPES = [(256, 8, 2048, 512, 64, "gelu_tanh"), (256, 4, 4096, 512, 64, "gelu_tanh"),
          (256, 4, 1024, 512, 128, "gelu_tanh"), (1152, 4, 512, 256, 128, "gelu_tanh"),
          (1152, 4, 2048, 256, 128, "gelu_tanh")]
TOLERANCE = 1e-2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, "gdpa_hopper_fwd.json") if out else None)
    parser.add_argument("--quick", action="store_true", help="small odd shapes, every layout: correctness")
    parser.add_argument("--compile-only", action="store_true",
                        help="compile it for sm_90 (no GPU needed) and print its resources")
    parser.add_argument("--kv", choices=("views", "contiguous", "both"), default="views",
                        help="k, v as heads views of one [B, S, 2HD] projection (the models'), contiguous "
                             "[B, H, S, D] tensors (bench_gdpa.py's), or each in turn")
    parser.add_argument("--with-ws", action="store_true",
                        help="also time bench/gdpa_gluon_ws.py's kernel (full rows, contiguous k, v): "
                             "what the production scope costs the schedule")
    args = parser.parse_args()
    if args.compile_only:
        print_compiled()
        return 0
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("needs an sm_90 GPU", file=sys.stderr)
        return 1
    from benchutil import direct_launch, kernel_ms, write_json
    from gdpa_hopper import ACTIVATIONS
    from window_hopper import rel_err
    gdpa = kernel_module("gdpa")
    rows, start, wrong = [], time.time(), 0
    gen = torch.Generator(device="cuda").manual_seed(0)
    kv_layouts = ("views", "contiguous") if args.kv == "both" else (args.kv, )
    cases = [(shape, kv_layout) for shape in (QUICK_SHAPES if args.quick else SHAPES) for kv_layout in kv_layouts]
    for (B, H, T, S, D, act), kv_layout in cases:
        scale = 1.0 / S
        q = (torch.randn(B, H, T, D, device="cuda", generator=gen) * D ** -0.25).bfloat16()
        kv = torch.randn(B, S, 2 * H * D, device="cuda", generator=gen)
        kv[..., :H * D] *= D ** -0.25
        kv = kv.bfloat16()
        k, v = kv.view(B, S, 2, H, D).permute(2, 0, 3, 1, 4).unbind(0)       # heads views [B, H, S, D]
        if kv_layout == "contiguous":
            k, v = k.contiguous(), v.contiguous()
        jagged = torch.randint(0, T + 1, (B,), device="cuda", generator=gen)
        jagged[0] = T
        if B > 1:
            jagged[1] = 0
        for layout in ("full", "jagged", "packed"):
            lengths = torch.full((B,), T, device="cuda") if layout == "full" else jagged
            valid = torch.arange(T, device="cuda")[None, :] < lengths[:, None]                   # [B, T]
            qq, kw = q.masked_fill(~valid[:, None, :, None], float("nan")), {}
            if layout == "packed":
                qq = q.transpose(1, 2)[valid].contiguous()                                        # [N, H, D]
                kw = dict(q_starts=torch.cumsum(lengths, 0) - lengths, max_len=T)

            def ours(o=None):
                return gdpa_forward_hopper(qq, k, v, lengths, act, scale, out=o, **kw)

            def triton_fwd():
                with direct_launch():
                    return gdpa.gdpa_forward(qq, k, v, lengths, None, act, scale, **kw)

            def padded(o):
                if layout != "packed":
                    return o
                full = torch.zeros(B, T, H, D, device="cuda", dtype=o.dtype)
                full[valid] = o
                return full.transpose(1, 2)
            row = {"B": B, "H": H, "T": T, "S": S, "D": D, "activation": act, "layout": layout, "kv": kv_layout}
            try:
                got = padded(ours(torch.full_like(qq, float("nan"))))   # NaN-filled: a row never stored shows
                base = padded(triton_fwd())
                n = min(B, 4)
                s = q[:n].float() @ k[:n].float().mT
                ref = ACTIVATIONS[act](s) @ v[:n].float() * scale
                ref = ref.masked_fill(~valid[:n, None, :, None], 0.0)
                row["err_vs_triton"], row["err_vs_fp32"] = rel_err(got, base), rel_err(got[:n], ref)
                row["triton_err_vs_fp32"] = rel_err(base[:n], ref)
                row["correct"] = max(row["err_vs_triton"], row["err_vs_fp32"]) <= TOLERANCE
                row["hopper_ms"], row["triton_ms"] = kernel_ms(ours, 10), kernel_ms(triton_fwd, 10)
                row["speedup"] = row["triton_ms"] / max(row["hopper_ms"], 1e-9)
                msg = (f"hopper {row['hopper_ms']:.3f} ms, triton {row['triton_ms']:.3f} ms, speed-up "
                       f"{row['speedup']:.2f}x; err vs triton {row['err_vs_triton']:.1e}, vs fp32 "
                       f"{row['err_vs_fp32']:.1e} (triton {row['triton_err_vs_fp32']:.1e})"
                       f"{'' if row['correct'] else ' WRONG'}")
                if args.with_ws and layout == "full" and kv_layout == "contiguous" and act == "gelu_tanh":
                    block_n, stages = CONFIGS[D]
                    ws_o = gdpa_forward_ws(q, k, v, scale, BLOCK_M, block_n, stages)
                    row["ws_err_vs_triton"] = rel_err(ws_o, base)
                    row["ws_ms"] = kernel_ms(lambda: gdpa_forward_ws(q, k, v, scale, BLOCK_M, block_n, stages), 10)
                    msg += f"; gdpa_gluon_ws {row['ws_ms']:.3f} ms (err vs triton {row['ws_err_vs_triton']:.1e})"
            except Exception as exc:   # an experiment: record what failed and go on
                row["correct"], row["error"] = False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                msg = row["error"]
            wrong += not row["correct"]
            rows.append(row)
            write_json(args.json, rows)
            print(f"B{B} H{H} T{T} S{S} D{D} {act} {layout} kv {kv_layout}: {msg}", flush=True)
    write_json(args.json, rows, start)
    print(f"{'all correct' if not wrong else f'{wrong} WRONG'} ({len(rows)} rows)")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
