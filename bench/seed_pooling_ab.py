"""Several versions of the seed-pooling kernel file timed side by side in one process.

    python3 bench/seed_pooling_ab.py --kernel base=PATH --kernel new=PATH [...] [--rounds 3] [--json PATH]

For each shape of bench_seed_pooling.py (bf16, K = V, the models' layout) and each version: level 1
forward and forward + backward (dK + dV summed), full lengths (padded) and jagged (lengths uniform
in [0, T], packed rows), and level 2's forward (S2 seeds over level 1's S1 outputs), by GPU kernel time (benchutil.kernel_ms, the profiler's: no host time),
the versions interleaved round by round and each figure the median of its rounds. Every version
autotunes for itself (a kernel file's autotune cache is keyed by its source). Outputs are checked
against the first version's (bf16: each version rounds differently, so the bound is 1e-2 of the
norm); a version that disagrees is reported, its times are not, and the exit status is 1. Prints
per version the level-1 forward's share of the copy bandwidth, the times, their ratio to the first
version, and the configs the autotuner chose.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the scripts beside this one
from bench_seed_pooling import SHAPES, copy_ceiling, pack, rel_err  # noqa: E402
from benchutil import direct_launch, kernel_ms, kernel_versions, write_text  # noqa: E402

DEVICE = "cuda"     # (tests run the script on the CPU through Triton's interpreter)
TOLERANCE = 1e-2


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def cases(sp, seeds, kv, full, rows, jagged, packed, grad, scale, level2):
    """{name: fn} of the timed calls for one version: padded kv at full lengths, packed rows
    (with their starts and max_len in `packed`) at the jagged ones; and level 2's forward, `level2` =
    (its seeds, level 1's output [B, H, S1, D] as K = V, its lengths: S1 each)."""

    def fwd(x, lengths, **kw):
        return lambda: sp.seed_pooling_forward(seeds, x, x, lengths, scale, **kw)

    def fwd_bwd(x, lengths, **kw):
        def run():
            o, lse = sp.seed_pooling_forward(seeds, x, x, lengths, scale, **kw)
            return sp.seed_pooling_backward_shared_kv(grad, seeds, x, o, lse, lengths, scale, **kw)
        return run

    seeds2, o1, full2 = level2
    return {"fwd full": fwd(kv, full), "fwd jagged": fwd(rows, jagged, **packed),
            "fwd+bwd full": fwd_bwd(kv, full), "fwd+bwd jagged": fwd_bwd(rows, jagged, **packed),
            "fwd level 2": lambda: sp.seed_pooling_forward(seeds2, o1, o1, full2, scale)}


def chosen(sp, seeds, kv, scale, seeds2, o1) -> dict:
    """{kernel: [configs]} the version's forward (pointer-load and TMA) and backward autotuners
    chose so far, and level 2's forward's."""
    picks = {}
    for name, tuned, (s, x) in (("fwd", ("_fwd_tuned", "_fwd_tma_tuned"), (seeds, kv)), ("bwd", ("_bwd_tuned",), (seeds, kv)),
                                ("fwd level 2", ("_fwd_tuned", "_fwd_tma_tuned"), (seeds2, o1))):
        meta = sp._meta(s, x, x, scale)[0]
        tuners = [sp._tuned_kernel(getattr(sp, attr), meta) for attr in tuned if hasattr(sp, attr)]
        picks[name] = sorted({str(config) for tuner in tuners for config in getattr(tuner, "cache", {}).values()})
    return picks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--kernel", action="append", required=True, metavar="LABEL=PATH")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", default="0,1", help="indices into SHAPES (bench_seed_pooling's)")
    parser.add_argument("--json", default=os.path.join(out, "seed_pooling_ab.json") if out else None)
    args = parser.parse_args()
    if DEVICE == "cuda" and not torch.cuda.is_available():
        sys.exit("seed_pooling_ab: needs a CUDA GPU")
    paths, versions = kernel_versions(parser, args.kernel, "_seed_pooling_ab")
    base = next(iter(versions))
    copy_bw = copy_ceiling()
    print(f"copy ceiling {copy_bw / 1e12:.2f} TB/s", flush=True)
    report = {"gpu": torch.cuda.get_device_name() if DEVICE == "cuda" else DEVICE, "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d"), "copy_TBps": copy_bw / 1e12,
              "kernels": paths, "shapes": []}
    with direct_launch():
        for index in (int(i) for i in args.shapes.split(",")):
            shape = SHAPES[index]
            B, H, T, D, S, S2 = (shape[k] for k in ("B", "H", "T", "D", "S1", "S2"))
            gen = torch.Generator(device=DEVICE).manual_seed(0)
            bf16 = dict(device=DEVICE, dtype=torch.bfloat16)
            seq = torch.randn(B, T, H * D, generator=gen, **bf16)
            kv = seq.view(B, T, H, D).transpose(1, 2)
            seeds = torch.randn(H, S, D, generator=gen, **bf16)
            grad = torch.randn(B, H, S, D, generator=gen, **bf16)
            full = torch.full((B,), T, dtype=torch.int64, device=DEVICE)
            jagged = torch.randint(0, T + 1, (B,), generator=gen, device=DEVICE)
            rows, starts = pack(seq, jagged, H)
            packed = dict(starts=starts, max_len=T)
            scale = D ** -0.5
            seeds2 = torch.randn(H, S2, D, generator=gen, **bf16)
            o1 = next(iter(versions.values())).seed_pooling_forward(seeds, kv, kv, full, scale)[0]
            level2 = (seeds2, o1, torch.full((B,), S, dtype=torch.int64, device=DEVICE))
            print(f"\nshape {shape}", flush=True)
            calls, errors, first = {}, {}, None
            for label, sp in versions.items():
                calls[label] = cases(sp, seeds, kv, full, rows, jagged, packed, grad, scale, level2)
                got = [calls[label]["fwd full"]()[0], *calls[label]["fwd+bwd jagged"](),  # o, dseeds, dkv
                       calls[label]["fwd level 2"]()[0]]
                sync()
                first = first or got
                errors[label] = max(rel_err(a, b) for a, b in zip(got, first))
                print(f"  {label}: tuned; max rel. difference from {base}: "
                      f"{errors[label]:.1e}", flush=True)
            samples = {label: {name: [] for name in calls[label]} for label in versions}
            for _ in range(args.rounds):
                for label in versions:
                    for name, fn in calls[label].items():
                        samples[label][name].append(kernel_ms(fn))
            results = {}
            for label in versions:
                ms = {name: statistics.median(v) for name, v in samples[label].items()}
                ok = errors[label] <= TOLERANCE
                results[label] = {"ok": ok, "max_rel_diff": errors[label], "ms": ms,
                               "configs": chosen(versions[label], seeds, kv, scale, seeds2, o1),
                               "fwd_frac_of_copy": seq.nbytes / (ms["fwd full"] * 1e-3) / copy_bw,
                               "jagged_over_full": {
                                   "fwd": ms["fwd jagged"] / ms["fwd full"],
                                   "fwd+bwd": ms["fwd+bwd jagged"] / ms["fwd+bwd full"]}}
            for label, row in results.items():
                if not row["ok"]:
                    print(f"  {label:<16} DISAGREES ({row['max_rel_diff']:.1e} > {TOLERANCE:g}): not timed")
                    continue
                parts = [f"{name} {row['ms'][name] * 1e3:7.1f} us ({results[base]['ms'][name] / row['ms'][name]:.3f}x)"
                         for name in row["ms"]]
                print(f"  {label:<16} {100 * row['fwd_frac_of_copy']:.1f}% of copy; " + "; ".join(parts)
                      + f"; jagged/full {row['jagged_over_full']['fwd']:.3f} / {row['jagged_over_full']['fwd+bwd']:.3f}")
                print(f"  {'':<16} configs: {row['configs']}")
            report["shapes"].append({"shape": shape, "rounds": args.rounds, "versions": results})
    if args.json:
        write_text(args.json, json.dumps(report, indent=1))
    return 0 if all(row["ok"] for shape in report["shapes"] for row in shape["versions"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
