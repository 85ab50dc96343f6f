"""Versions of the GDPA or window-attention kernel file, their forwards timed side by side in one process.

    python3 bench/fwd_ab.py gdpa|window --kernel base=PATH --kernel new=PATH [...] [--rounds 3] [--json PATH]

For each shape of bench_gdpa.py (both head layouts it measures: H 4 x D 128 and H 8 x D 64) or of
bench_window.py (causal and bidirectional), and each version: the forward at full lengths (padded,
the benchmark's layout) and at lengths uniform in [0, T] (the queries packed as rows [N, H, D], the
models' layout; window attention packs K and V too), by GPU kernel time (benchutil.kernel_ms: no
host time), the versions interleaved round by round, each figure the median of its rounds. Every
version autotunes for itself (a kernel file's autotune cache is keyed by its source). Outputs are
checked against the first version's (bf16, bound 1e-2 of the norm); a version that disagrees is
reported, its times are not, and the exit status is 1. Prints per version the times and their
ratio to the first version.
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
from benchutil import direct_launch, gdpa_inputs, kernel_ms, kernel_versions, rel_err, write_text  # noqa: E402

DEVICE = "cuda"     # (tests run the script on the CPU through Triton's interpreter, in fp32)
DTYPE = torch.bfloat16
TOLERANCE = 1e-2
# (kind, B, T, S) as bench_gdpa.SHAPES, and (B, H, T, D, window) as bench_window.SHAPES: copied,
# not imported, because those scripts load the production kernel file at import.
GDPA_SHAPES = [("self", 1152, 256, 256), ("self", 1152, 512, 512), ("self", 1152, 1024, 1024),
               ("self", 288, 2048, 2048), ("cross", 1152, 512, 256), ("cross", 1152, 1024, 256),
               ("cross", 1152, 2048, 256)]
GDPA_HEADS = [(4, 128), (8, 64)]
WINDOW_SHAPES = [(64, 4, 2048, 64, 256), (32, 8, 4096, 64, 512), (128, 4, 1024, 128, 128)]


def packed_rows(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, H, T, D] -> [N, H, D]: each example's first lengths[b] rows, back to back."""
    valid = torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]
    return x.transpose(1, 2)[valid].contiguous()


def gdpa_cases(shapes: list, gen) -> list:
    """[(label, {case: (args, kwargs)})] for GDPA: a forward call's arguments per case."""
    out = []
    for H, D in GDPA_HEADS:
        for kind, B, T, S in shapes:
            q, k, v, _ = gdpa_inputs(B, H, T, S, D, DEVICE, DTYPE)
            full = torch.full((B,), T, dtype=torch.int64, device=DEVICE)
            lengths = torch.randint(0, T + 1, (B,), generator=gen, device=DEVICE)
            starts = torch.cumsum(lengths, 0) - lengths
            q_rows = packed_rows(q, lengths)
            scale = D ** -0.5
            out.append((f"{kind} B{B} T{T} S{S} H{H} D{D}", {
                "full": ((q, k, v, full, None, "gelu_tanh", scale), {}),
                "jagged": ((q_rows, k, v, lengths, None, "gelu_tanh", scale),
                           dict(q_starts=starts, max_len=T)),
            }))
    return out


def window_cases(shapes: list, gen, edges: bool = False) -> list:
    """The same for window attention, causal and bidirectional at each shape. edges: the first
    example's length 0 and the last's T, the rest drawn."""
    out = []
    for B, H, T, D, window in shapes:
        seqs = [torch.randn(B, T, H * D, generator=gen, device=DEVICE).to(DTYPE) for _ in range(3)]
        q, k, v = (x.view(B, T, H, D).transpose(1, 2) for x in seqs)    # the models' heads views
        full = torch.full((B,), T, dtype=torch.int64, device=DEVICE)
        lengths = torch.randint(0, T + 1, (B,), generator=gen, device=DEVICE)
        if edges:
            lengths[0], lengths[-1] = 0, T
        starts = torch.cumsum(lengths, 0) - lengths
        rows = [packed_rows(x, lengths) for x in (q, k, v)]
        for causal in (True, False):
            band = "causal" if causal else "bidir"
            out.append((f"B{B} H{H} T{T} D{D} W{window} {band}", {
                "full": ((q, k, v, full, window, causal, D ** -0.5), {}),
                "jagged": ((*rows, lengths, window, causal, D ** -0.5), dict(starts=starts, max_len=T)),
            }))
    return out


def forward_fn(kind: str, module, args, kwargs):
    """The timed call: one forward of this version's kernel file, its output only."""
    if kind == "gdpa":
        return lambda: module.gdpa_forward(*args, **kwargs)
    return lambda: module.window_attention_forward(*args, **kwargs)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("kind", choices=["gdpa", "window"])
    parser.add_argument("--kernel", action="append", required=True, metavar="LABEL=PATH")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", default="", help="indices into the kind's shapes (default: all)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if DEVICE == "cuda" and not torch.cuda.is_available():
        sys.exit("fwd_ab: needs a CUDA GPU")
    json_path = args.json or (os.path.join(out, f"fwd_ab_{args.kind}.json") if out else None)
    paths, versions = kernel_versions(parser, args.kernel, f"_fwd_ab_{args.kind}")
    base = next(iter(versions))
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    shapes = GDPA_SHAPES if args.kind == "gdpa" else WINDOW_SHAPES
    if args.shapes:
        shapes = [shapes[int(i)] for i in args.shapes.split(",")]
    cases = (gdpa_cases if args.kind == "gdpa" else window_cases)(shapes, gen)
    report = {"gpu": torch.cuda.get_device_name() if DEVICE == "cuda" else DEVICE, "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d"), "kind": args.kind, "kernels": paths, "shapes": []}
    ok_all = True
    with direct_launch():
        for label_shape, calls in cases:
            print(f"\n{label_shape}", flush=True)
            fns = {label: {name: forward_fn(args.kind, m, *calls[name]) for name in calls}
                   for label, m in versions.items()}
            first, errors = None, {}
            for label in versions:
                got = [fns[label][name]() for name in calls]
                first = first or got
                errors[label] = max(rel_err(a, b) for a, b in zip(got, first))
            samples = {label: {name: [] for name in calls} for label in versions}
            for _ in range(args.rounds):
                for label in versions:
                    for name, fn in fns[label].items():
                        samples[label][name].append(kernel_ms(fn))
            rows = {}
            for label in versions:
                ms = {name: statistics.median(v) for name, v in samples[label].items()}
                rows[label] = {"ok": errors[label] <= TOLERANCE, "max_rel_diff": errors[label], "ms": ms}
            for label, row in rows.items():
                if not row["ok"]:
                    ok_all = False
                    print(f"  {label:<12} DISAGREES ({row['max_rel_diff']:.1e} > {TOLERANCE:g}): not timed")
                    continue
                parts = [f"{name} {row['ms'][name] * 1e3:8.1f} us ({rows[base]['ms'][name] / row['ms'][name]:.3f}x)"
                         for name in row["ms"]]
                print(f"  {label:<12} " + "; ".join(parts) + f"; jagged/full {row['ms']['jagged'] / row['ms']['full']:.3f}"
                      + f"  (diff {row['max_rel_diff']:.1e})", flush=True)
            report["shapes"].append({"shape": label_shape, "rounds": args.rounds, "versions": rows})
    if json_path:
        write_text(json_path, json.dumps(report, indent=1))
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
