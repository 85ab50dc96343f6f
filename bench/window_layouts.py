"""Why a packed jagged window launch runs slower than the padded one: the two timed apart.

    python bench/window_layouts.py [--json PATH] [--shape B,H,T,D,W] [--rounds 3]

bench_window.py times the jagged batch padded [B, H, T, D] and packed [N, H, D] one after the other
and has twice shown a packed row at 1.2-1.4x the padded time on the same tuned config and the same
lengths (BENCHMARKS.md, window attention, twelfth session). Here the same jagged batch (its seed
and lengths) runs in both layouts, forward and backward separately, in both orders, `--rounds`
times, each timed two ways: `do_bench`'s median (wall time of the launches) and the profiler's
kernel time (GPU time alone, so host time between launches cannot show). Prints the ratios and
each launch's tuned config; writes JSON. Default shape: B64 H4 T2048 D64 W256, causal and bidir.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from triton.testing import do_bench

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_window as bw  # noqa: E402
from benchutil import kernel_ms, write_json  # noqa: E402

wa = bw.wa


def launches(B, H, T, D, window, causal, device="cuda", dtype=torch.bfloat16):
    """{(layout, pass): fn} on one jagged batch (bench_window's seed and lengths)."""
    q, k, v, do, lengths = bw.jagged_batch(B, H, T, D, device, dtype)
    scale = D ** -0.5
    pq, pk, pv, pdo, _, starts, _ = bw.pack_jagged((q, k, v, do), lengths)
    padded = dict(q=q, k=k, v=v, do=do, extra={})
    packed = dict(q=pq, k=pk, v=pv, do=pdo, extra=dict(starts=starts, max_len=T))
    out = {}
    for name, t in (("padded", padded), ("packed", packed)):
        o, lse = wa.window_attention_forward(t["q"], t["k"], t["v"], lengths, window, causal, scale,
                                             **t["extra"])
        out[(name, "fwd")] = (lambda t=t: wa.window_attention_forward(
            t["q"], t["k"], t["v"], lengths, window, causal, scale, **t["extra"]))
        out[(name, "bwd")] = (lambda t=t, o=o, lse=lse: wa.window_attention_backward(
            t["do"], t["q"], t["k"], t["v"], o, lse, lengths, window, causal, scale, **t["extra"]))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    p.add_argument("--json", default=os.path.join(out, "window_layouts.json") if out else None)
    p.add_argument("--shape", default="64,4,2048,64,256", help="B,H,T,D,W")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 1
    B, H, T, D, W = (int(x) for x in args.shape.split(","))
    rows, start = [], time.time()
    for causal in (True, False):
        fns = launches(B, H, T, D, W, causal)
        for p_ in ("fwd", "bwd"):
            times = {("padded", "wall"): [], ("packed", "wall"): [], ("padded", "gpu"): [], ("packed", "gpu"): []}
            for r in range(args.rounds):
                order = ("padded", "packed") if r % 2 == 0 else ("packed", "padded")
                for layout in order:
                    times[(layout, "wall")].append(do_bench(fns[(layout, p_)], return_mode="median"))
                    times[(layout, "gpu")].append(kernel_ms(fns[(layout, p_)]))
            med = {f"{layout}_{how}_ms": statistics.median(v) for (layout, how), v in times.items()}
            row = {"causal": causal, "pass": p_, **med,
                   "packed_over_padded_wall": med["packed_wall_ms"] / med["padded_wall_ms"],
                   "packed_over_padded_gpu": med["packed_gpu_ms"] / med["padded_gpu_ms"],
                   "all": {f"{layout} {how}": v for (layout, how), v in times.items()}}
            rows.append(row)
            print(f"{'causal' if causal else 'bidir '} {p_}: padded {med['padded_wall_ms']:.3f} ms wall "
                  f"{med['padded_gpu_ms']:.3f} GPU, packed {med['packed_wall_ms']:.3f} wall "
                  f"{med['packed_gpu_ms']:.3f} GPU: packed/padded {row['packed_over_padded_wall']:.2f} wall, "
                  f"{row['packed_over_padded_gpu']:.2f} GPU", flush=True)
    configs = bw.chosen_configs()
    for key, cfg in configs.items():
        print(f"tuned {key}: {cfg}")
    write_json(args.json, rows, start, shape={"B": B, "H": H, "T": T, "D": D, "window": W},
               configs=configs, command=" ".join(sys.argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
