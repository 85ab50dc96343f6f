"""Seed pooling's level-1 kernels at every launch config, beside the autotuner's pick.

    python3 bench/seed_pooling_configs.py [--json PATH] [--shapes 0 1] [--which fwd bwd]
    python3 bench/seed_pooling_configs.py --model --which bwd --bwd "64,4,3 128,8,3"   # chosen configs

Why. The seed-pooling targets missed narrowly at bench_seed_pooling.py's first shape (K/V read at
64-66% of the copy bandwidth against 70%; both levels forward+backward 1.98x the two-call SDPA
path against 2x), and the backward takes 3.9x the forward's time where its GEMMs are 2.5x the
forward's. The autotuner only chooses among the few configs templates/kernels/seed_pooling.py
offers (_FWD_TRIPLES, _BWD_TRIPLES): this times a wider set (tile rows, warps, stages; the
backward's seed block too) at the bench's shapes, the model's layout (K = V, one [B, T, H·D]
sequence), by GPU kernel time, so that a config worth offering shows by how much.

Each config is launched through the kernels' own host code (partition heuristics, strides,
combine kernel) with the kernel's autotuner pinned to that one config (benchutil.pinned), and
checked against the tuned launch's result.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the scripts beside this one
from bench_seed_pooling import SHAPES, copy_ceiling  # noqa: E402
from benchutil import direct_launch, kernel_ms, pinned, rel_err, write_json  # noqa: E402
from compile_kernels import kernel_module  # noqa: E402

sp = kernel_module("seed_pooling")

# (BLOCK_T, num_warps, num_stages); the shared-memory check below drops what cannot fit
FWD = [(t, w, st) for t in (64, 128, 256) for w in (4, 8) for st in (2, 3, 4, 5)]
# (BLOCK_T, num_warps, num_stages, seed-block divisor): 1 = the launch's seed block, 2 = half of it
BWD = ([(t, w, st, 1) for t in (16, 32, 64, 128) for w in (4, 8) for st in (2, 3)]
       + [(t, 8, st, 2) for t in (32, 64) for st in (2, 3)])
SMEM = 220 * 1024
# kunlun_60g's four towers at batch 256, padded to max_len (the model packs them: jagged, K = V):
# click, impression, purchase (D 128), search
MODEL_SHAPES = [dict(B=256, H=8, T=2048, D=64, S1=128), dict(B=256, H=4, T=4096, D=64, S1=128),
                dict(B=256, H=4, T=1024, D=128, S1=64), dict(B=256, H=6, T=1024, D=64, S1=64)]


def _fits_smem(block_t: int, stages: int, head_dim: int) -> bool:
    return stages * block_t * head_dim * 2 <= SMEM          # K = V: one bf16 tile a stage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, "seed_pooling_configs.json") if out else None)
    parser.add_argument("--shapes", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--which", nargs="*", default=["fwd", "bwd"], choices=["fwd", "bwd"])
    parser.add_argument("--budget-s", type=float, default=480, help="stop starting configs after this")
    parser.add_argument("--model", action="store_true", help="kunlun_60g's tower shapes (MODEL_SHAPES)")
    parser.add_argument("--bwd", default=None, metavar="'T,W,ST ...'",
                        help="only these backward triples, over the launch's seed block (default: BWD)")
    args = parser.parse_args()
    bwd_configs = BWD if args.bwd is None else [(*map(int, c.split(",")), 1) for c in args.bwd.split()]
    shapes = MODEL_SHAPES if args.model else [SHAPES[i] for i in args.shapes]
    if not torch.cuda.is_available():
        print("needs a GPU", file=sys.stderr)
        return 1
    start, rows = time.time(), []
    copy_bw = copy_ceiling()
    print(f"copy ceiling {copy_bw / 1e12:.2f} TB/s", flush=True)
    for shape in shapes:
        B, H, T, D, S = (shape[k] for k in ("B", "H", "T", "D", "S1"))
        gen = torch.Generator(device="cuda").manual_seed(0)
        seq = torch.randn(B, T, H * D, generator=gen, device="cuda", dtype=torch.bfloat16)
        kv = seq.view(B, T, H, D).transpose(1, 2)
        seeds = torch.randn(H, S, D, generator=gen, device="cuda", dtype=torch.bfloat16)
        lengths = torch.full((B,), T, dtype=torch.int64, device="cuda")
        jagged = torch.randint(0, T + 1, (B,), generator=gen, device="cuda")
        scale = D ** -0.5
        with direct_launch():
            o, lse = sp.seed_pooling_forward(seeds, kv, kv, lengths, scale)
            grad = torch.randn_like(o)
            base_bwd = sp.seed_pooling_backward_shared_kv(grad, seeds, kv, o, lse, lengths, scale)
        block_s = sp._seed_blocks(S, D)[0]

        def fwd(lens=lengths):
            return sp.seed_pooling_forward(seeds, kv, kv, lens, scale)

        def bwd(lens=lengths):
            return sp.seed_pooling_backward_shared_kv(grad, seeds, kv, o, lse, lens, scale)

        meta = sp._meta(seeds, kv, kv, scale)[0]   # the autotuners the host code launches through
        tma = isinstance(sp._tma_views(kv, kv, False, meta["BLOCK_D"], None)[0], sp.TensorDescriptor)
        tuners = {"fwd": sp._tuned_kernel(sp._fwd_tma_tuned if tma else sp._fwd_tuned, meta),
                  "bwd": sp._tuned_kernel(sp._bwd_tuned, meta)}

        def record(which, label, config, ref):
            """One row: the launch at `config` (None: the autotuner's choice), full and jagged."""
            run = fwd if which == "fwd" else bwd

            def at_config(lens):
                return (lambda: run(lens)) if config is None else (
                    lambda: pinned(tuners[which], config, lambda: run(lens)))
            row = {"shape": shape, "which": which, "config": label}
            try:
                with direct_launch():
                    diff = max(rel_err(g, r) for g, r in zip(at_config(lengths)(), ref))
                    row["us"] = kernel_ms(at_config(lengths), 10) * 1e3
                    row["jagged_us"] = kernel_ms(at_config(jagged), 10) * 1e3
                row["rel_diff_vs_tuned"] = diff
                row["ok"] = diff <= 1e-2
                msg = f"{row['us']:8.1f} us, jagged {row['jagged_us'] / row['us']:.2f}"
                if which == "fwd":
                    row["frac_of_copy"] = seq.nbytes / (row["us"] * 1e-6) / copy_bw
                    msg += f", {100 * row['frac_of_copy']:.0f}% of copy BW"
                msg += f", diff {diff:.1e}{'' if row['ok'] else ' WRONG'}"
            except Exception as exc:   # a config that fails to compile or launch: record it, go on
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                msg = row["error"]
            rows.append(row)
            write_json(args.json, rows)
            print(f"B{B} H{H} T{T} D{D} S{S} {which} {label:<22} {msg}", flush=True)

        if "fwd" in args.which:
            record("fwd", "tuned", None, (o, lse))
            for t, w, st in FWD:
                if time.time() - start > args.budget_s:
                    break
                if _fits_smem(t, st, D):
                    record("fwd", f"T{t} w{w} s{st}",
                           triton.Config({"BLOCK_T": t}, num_warps=w, num_stages=st), (o, lse))
        if "bwd" in args.which:
            record("bwd", "tuned", None, base_bwd[:2])
            for t, w, st, div in bwd_configs:
                if time.time() - start > args.budget_s:
                    break
                bs = max(16, block_s // div)
                if div > 1 and bs == block_s:
                    continue
                config = triton.Config({"BLOCK_T": t, "BLOCK_S": bs, "N_SBLK": triton.cdiv(S, bs)},
                                       num_warps=w, num_stages=st)
                record("bwd", f"T{t} w{w} s{st} S{bs}", config, base_bwd[:2])
    write_json(args.json, rows, start)
    wrong = sum(1 for r in rows if r.get("ok") is False)
    print(f"{len(rows)} rows, {wrong} wrong, {sum('error' in r for r in rows)} failed")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
