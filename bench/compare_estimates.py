"""Set today's build-time estimate beside training steps measured earlier: step and per group.

    python3 bench/compare_estimates.py bench/results/2026-11-29-h200-s4/models_call*.json [--target h200]

Each input is a JSON list written by bench/bench_models.py. Every measured row is re-estimated
with the compiler and calibration of this checkout (kunlun_compiler/calibration/<target>.json)
at the row's batch size, for the row's variant: its spec as written or with `fuse: false`, and
the eager or the compiled estimate (casts fused away) as the row ran eager or under torch.compile.
The step estimate is max(GPU time, host time) (cost.py); its ratio is taken over the measured wall
step time, and the GPU part's over the measured GPU kernel time. Per group, the estimate is what
the bench measures, each block run alone: the sum over its blocks of max(GPU time, host time)
(Estimate.group_steps). Prints markdown tables.
"""
from __future__ import annotations

import argparse
import json
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_models import VARIANTS, _ms, spec_data  # noqa: E402
from kunlun_compiler.compiler import compile_spec  # noqa: E402
from kunlun_compiler.cost import estimate, time_key  # noqa: E402
from kunlun_compiler.spec import Spec  # noqa: E402


@cache
def graph_of(spec: str, fused: bool):
    return compile_spec(Spec.model_validate(spec_data(spec, fused))).graph


def re_estimate(row: dict, target: str) -> tuple[float, float, float, dict, dict]:
    """(step, GPU, host seconds, {group: seconds, blocks run alone}, {group: GPU seconds}) of
    today's estimate for a measured row."""
    v = VARIANTS[row["variant"]]
    est = estimate(graph_of(row["spec"], v.fused), target, row["batch_size"], stream=v.stream)
    compiled, packed = bool(v.mode), v.layout == "packed"
    gpu = {g: t[time_key(compiled, packed)] for g, t in est.groups().items()}
    step, gpu_step, host = est.step(compiled, packed)
    if v.graph:                   # one CUDA graph launch a step: the GPU time alone
        step, host = gpu_step, 0.0
    return step, gpu_step, host, est.group_steps(compiled, packed), gpu


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "n/a"


def tables(rows: list[dict], target: str) -> str:
    ok = [r for r in rows if r.get("measured_step_s") and r.get("variant") in VARIANTS]
    out = ["| spec | variant | batch | measured ms | GPU kernels ms | estimated ms | est GPU / host ms "
           "| est ÷ measured | est GPU ÷ GPU |", "|---|---|---|---|---|---|---|---|---|"]
    groups = ["| spec | variant | batch | group | measured ms | GPU kernels ms | estimated ms | est GPU ms "
              "| est ÷ measured | est GPU ÷ GPU |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in ok:
        step, est_gpu, est_host, per_group, per_group_gpu = re_estimate(r, target)
        gpu = r.get("gpu_step_s")
        out.append(f"| {r['spec']} | {r['variant']} | {r['batch_size']} | {_ms(r['measured_step_s'])} | {_ms(gpu)} "
                   f"| {_ms(step)} | {_ms(est_gpu)} / {_ms(est_host)} | {_ratio(step, r['measured_step_s'])} "
                   f"| {_ratio(est_gpu, gpu)} |")
        if not r.get("blocks_total_s"):
            continue
        for g, v in sorted(r["groups"].items(), key=lambda kv: -kv[1].get("measured_s", 0)):
            if v.get("measured_s"):
                est, est_gpu_g = per_group.get(g, 0.0), per_group_gpu.get(g, 0.0)
                groups.append(f"| {r['spec']} | {r['variant']} | {r['batch_size']} | {g} | {_ms(v['measured_s'])} "
                              f"| {_ms(v.get('gpu_s'))} | {_ms(est)} | {_ms(est_gpu_g)} "
                              f"| {_ratio(est, v['measured_s'])} | {_ratio(est_gpu_g, v.get('gpu_s'))} |")
    return "\n".join(out + ([""] + groups if len(groups) > 2 else []))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path, help="bench_models.py JSON files")
    p.add_argument("--target", default="h200", help="hardware table entry to estimate for")
    args = p.parse_args(argv)
    try:
        rows = [r for path in args.results for r in json.loads(path.read_text(encoding="utf-8"))]
        text = tables(rows, args.target)
    except (OSError, ValueError, KeyError, TypeError) as exc:   # files, JSON, rows: one line, status 1
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
