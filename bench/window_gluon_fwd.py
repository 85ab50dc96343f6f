"""The Hopper window forward (templates/kernels/window_attention_hopper.py's _fwd_kernel) at every
config and both schedules, checked against the Triton forward and timed beside it.

    python3 bench/window_gluon_fwd.py [--json PATH] [--quick] [--configs 0,2]   # on an H100/H200
    python3 bench/window_gluon_fwd.py --compile-only                              # anywhere: sm_90

Why. The Triton window forward (templates/kernels/window_attention.py) was 1.16-1.40x FlexAttention
at four of bench_window.py's six rows, against the target's 1.5x (BENCHMARKS.md), and Nsight
Compute had it bound by its serial chain (Q·Kᵀ -> wait -> softmax -> P·V, per key tile). The Gluon
forward reads K/V by TMA into a ring, masks only the tiles that need it, and has two schedules:
serial (each wgmma waited for at once, as Triton's) and FlashAttention-3's intra-warpgroup overlap
(OVERLAP; _fwd_overlap):

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
Triton. --compile-only prints how many exp2 a loop issues under a wgmma; tests/test_window_gluon_fwd.py
checks it.) This script's measurements (BENCHMARKS.md, sliding-window attention, twenty-eighth
session) chose the production build: serial, 64 x 64 tiles, two stages, at D 64 (HOPPER_FWD).

`main` runs each config and schedule on NaN-filled outputs against the Triton forward (o within
1e-2 of its norm, lse equal where -inf and close elsewhere) and times both in one process by GPU
kernel time, at bench_window.py's shapes, full lengths (padded, the models' heads views) and packed
jagged rows; --quick checks odd shapes only (T 1 to 517, lengths 0 and T). Exit status 1 if any
disagrees.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from compile_kernels import kernel_module  # noqa: E402

wa = kernel_module("window_attention")
hop = wa._hopper_module()          # window_attention_hopper.py, the module wa's forward launches


def window_forward_gluon(q, k, v, lengths, window: int, causal: bool, scale: float, starts=None,
                         max_len: int | None = None, config=(64, 64, 2, 4), overlap: bool = False,
                         out=None, lse=None):
    """(o, lse) as window_attention.window_attention_forward (its layout checks and band), through
    the Hopper module's forward (fwd_hopper) at this config (BLOCK_M, BLOCK_N, STAGES, num_warps;
    BLOCK_M = 16 x num_warps) and schedule. out, lse: preallocated outputs (the check fills them with
    NaN first)."""
    lay = wa._Layout(q, k, v, lengths, starts, max_len)
    reason = hop.unsupported({"q": q, "k": k, "v": v}, lay.packed, lay.B, lay.H)
    if reason:
        raise ValueError(f"window_forward_gluon: {reason}")
    assert config[0] == 16 * config[3], "BLOCK_M is 16 rows a warp (one m16 wgmma atom each)"
    left, right = wa._band(window, causal, lay.T)
    o = torch.empty_like(q) if out is None else out
    lse = lay.row_stats(q.device) if lse is None else lse
    hop.fwd_hopper(q, k, v, lengths, starts, lay.B, lay.H, lay.T, left, right, scale, o, lse,
                   config=config, overlap=overlap)
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
    return compile_gluon_sm90(hop._fwd_kernel, descs,
                              {"PACKED": packed, "STAGES": stages, "OVERLAP": overlap, "num_warps": warps},
                              {"num_warps": warps})


# ----------------------------------------------------------------------------- GPU check and timing

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
    from fwd_ab import WINDOW_SHAPES, window_cases     # bench_window.py's shapes, the models' layouts
    wa._HOPPER_FWD = False          # the reference and baseline: the Triton forward at every head dim
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows_out, start_time, bad = [], time.time(), 0
    for label, cases in window_cases(QUICK_SHAPES if args.quick else WINDOW_SHAPES, gen, edges=args.quick):
        row = {"label": label}
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
            tri = f"triton {triton_ms * 1e3:.1f} us" if triton_ms else "triton (not timed)"
            print(f"{label} {case}: {tri}; " + "; ".join(
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
