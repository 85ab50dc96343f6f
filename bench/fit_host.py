"""Fit the estimate's host time per op from measured host-bound training steps.

    python3 bench/fit_host.py RESULTS.json... --fit kunlun_60g:fused@16 kunlun_60g:compiled@16 \
        [--target h200] [--write]

A training step cannot finish before the host has issued it: Python, autograd, dispatch and the
kernel launches. On small models or small batches that host time, not the GPU, sets the step
(kunlun_6g compiled per block on the H200: 121 ms a step, 60 ms of it kernels). cost.py prices it
as `host_ops` (the graph's matmul, attention and Triton-kernel ops, batched experts once per
batch) times a per-op host cost per
mode: eager, and torch.compile per block (the bench's default scope). This script takes that cost
from measured rows of bench/bench_models.py that are host-bound: a row qualifies when its GPU time
(measured, or else the GPU estimate) is at most half its step. Each mode's cost is the mean over
its rows of step / host_ops. --write stores it, with the rows it came from, in the "host" object of
kunlun_compiler/calibration/<target>.json (calibrate.py keeps that object when it rewrites the
file); without --write the fit is printed only. Check it against rows it was not fitted on with
bench/compare_estimates.py.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from compare_estimates import graph_of  # noqa: E402
from bench_models import VARIANTS  # noqa: E402
from kunlun_compiler import hardware  # noqa: E402
from kunlun_compiler.cost import estimate  # noqa: E402

HOST_BOUND = 0.5   # a row's GPU time over its step at most this


class FitError(ValueError):
    """A fit that cannot be made; the message says which row or mode."""


def mode_of(row: dict) -> str:
    """The host mode a bench_models row ran in: eager, or compiled per block."""
    variant = VARIANTS[row["variant"]]
    mode, scope = variant.mode, variant.scope
    if variant.graph:
        raise FitError(f"{row['variant']} replays the step as one CUDA graph: it has no host time per op to fit")
    if mode is None:
        return "eager"
    if mode == "default" and scope == "blocks":
        return "compiled"
    raise FitError(f"{row['variant']} runs torch.compile with mode {mode!r}, scope {scope!r}: "
                   "the host fit covers eager and the default compile per block only")


def select(rows: list[dict], picks: list[str]) -> list[dict]:
    """The measured rows named spec:variant@batch (the first of each, as bench_models writes them)."""
    out = []
    for pick in picks:
        spec, _, rest = pick.partition(":")
        variant, _, batch = rest.partition("@")
        found = [r for r in rows if r.get("measured_step_s") and r.get("spec") == spec
                 and r.get("variant") == variant and str(r.get("batch_size")) == batch]
        if not found:
            raise FitError(f"no measured row {pick!r} in the results")
        out.append(found[0])
    return out


def fit(rows: list[dict], target: str) -> dict:
    """The "host" object: {mode}_s_per_op for both modes, and the rows each came from."""
    per_mode: dict[str, list[float]] = {m: [] for m in hardware.HOST_MODES}
    used = []
    for row in rows:
        mode = mode_of(row)
        fused = VARIANTS[row["variant"]][0]
        est = estimate(graph_of(row["spec"], fused), target, row["batch_size"])
        gpu = row.get("gpu_step_s") or (est.est_gpu_time_compiled_s if mode == "compiled" else est.est_gpu_time_s)
        step = row["measured_step_s"]
        name = f"{row['spec']}:{row['variant']}@{row['batch_size']}"
        if gpu > HOST_BOUND * step:
            raise FitError(f"{name} is not host-bound: GPU {gpu * 1e3:.1f} ms of a {step * 1e3:.1f} ms step")
        per_mode[mode].append(step / est.host_ops)
        used.append({"row": name, "mode": mode, "measured_step_s": step, "gpu_s": gpu,
                     "gpu_measured": bool(row.get("gpu_step_s")), "host_ops": est.host_ops,
                     "s_per_op": step / est.host_ops})
    missing = [m for m, v in per_mode.items() if not v]
    if missing:
        raise FitError(f"no host-bound row for mode {', '.join(missing)}: fit needs one of each")
    return {**{f"{m}_s_per_op": statistics.fmean(v) for m, v in per_mode.items()},
            "ops": "host_ops: the graph's matmul, attention and Triton-kernel ops with a kernel of their own "
                   "(cost.is_host_op: batched experts count once per batch)",
            "fit_from": used}


def write(host: dict, path: Path, command: str) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data["host"] = {**host, "command": command}
    hardware.parse_calibration(data, str(path))          # refuse to write what the loader refuses
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path, help="bench_models.py JSON files")
    p.add_argument("--fit", nargs="+", required=True, metavar="SPEC:VARIANT@BATCH",
                   help="the host-bound rows to fit on (at least one eager and one compiled)")
    p.add_argument("--target", default="h200")
    p.add_argument("--write", action="store_true", help="store the fit in the target's calibration file")
    args = p.parse_args(argv)
    try:
        rows = [r for path in args.results for r in json.loads(path.read_text(encoding="utf-8"))]
        host = fit(select(rows, args.fit), args.target)
    except (OSError, ValueError) as exc:     # FitError, JSON and file errors: one line, status 1
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for m in hardware.HOST_MODES:
        print(f"{m:<10}{host[f'{m}_s_per_op'] * 1e6:9.1f} us per host op")
    for u in host["fit_from"]:
        print(f"  {u['row']:<32} {u['mode']:<9} step {u['measured_step_s'] * 1e3:7.1f} ms, "
              f"GPU {u['gpu_s'] * 1e3:6.1f} ms{'' if u['gpu_measured'] else ' (estimated)'}, "
              f"{u['host_ops']} host ops")
    if args.write:
        path = hardware.CALIBRATION_DIR / f"{args.target}.json"
        rel = [str(r.resolve().relative_to(ROOT)) if r.resolve().is_relative_to(ROOT) else str(r) for r in args.results]
        write(host, path, " ".join(["python3 bench/fit_host.py", *rel, "--fit", *args.fit,
                                    "--target", args.target, "--write"]))
        print(f"wrote the host fit into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
