"""Train the presets and the ablation specs on this GPU; write the measured table into BENCHMARKS.md.

Every run is one `python -m <package> bench --json` in its own process (an OOM or a hang costs one
row, not the sweep), on packages built from specs/ by kunlunc into --work. A run that does not fit
in memory is retried at half the batch. Variants of a spec:

  fused      the spec as written (Triton kernels where kernel selection picked them), eager
  compiled   the same, under torch.compile, block by block (Model.compile_blocks: like blocks share
             a graph, so a deep preset compiles in a fraction of whole-model compile time)
  compiled_model     the same, torch.compile of the whole model as one graph
  unfused    the spec with `compile: {fuse: false}` (plain torch ops), eager
  unfused_compiled   the same, under torch.compile block by block
  cudagraphs the spec as written, torch.compile(mode="reduce-overhead"): compiled and replayed in
             CUDA graphs (no per-op host work; the eager model is host-bound at small batches)
  packed, compiled_packed   fused and compiled with the events as packed rows (`--layout packed`:
             the towers' projections, norms and kernels skip the padding)
  compiled_packed_bf16      compiled_packed with the towers' residual stream in the compute dtype
             (`--stream compute`: bf16 for these specs)
  graphed, unfused_graphed, compiled_packed_bf16_graphed   the step (optimizer included) captured
             once in a CUDA graph and replayed (`--cuda-graph`)
  compiled_model_packed_bf16_graphed   the same with the whole forward compiled as one graph, so
             inductor can fuse across blocks (a residual add with the next block's norm)

Usage (GPU host, repo root; kunlunc importable):
  python3 bench/bench_models.py --json $OUT/models.json                  # default sweep
  python3 bench/bench_models.py --runs kunlun_60g:fused@64 kunlun_6g:unfused --json $OUT/m.json
  python3 bench/bench_models.py --report $OUT/models.json --markdown BENCHMARKS.md   # table only
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
class Variant(NamedTuple):
    fused: bool            # the spec as written (compile.fuse), or fuse: false
    mode: str | None       # torch.compile mode, None for eager
    scope: str | None      # compile scope: blocks or model
    layout: str            # padded or packed batches
    stream: str            # the towers' residual stream: fp32 or compute (bf16)
    graph: bool = False    # the whole step captured in one CUDA graph and replayed (--cuda-graph)


VARIANTS = {
    "fused": Variant(True, None, None, "padded", "fp32"),
    "compiled": Variant(True, "default", "blocks", "padded", "fp32"),
    "compiled_model": Variant(True, "default", "model", "padded", "fp32"),
    "cudagraphs": Variant(True, "reduce-overhead", "blocks", "padded", "fp32"),
    "unfused": Variant(False, None, None, "padded", "fp32"),
    "unfused_compiled": Variant(False, "default", "blocks", "padded", "fp32"),
    "packed": Variant(True, None, None, "packed", "fp32"),
    "compiled_packed": Variant(True, "default", "blocks", "packed", "fp32"),
    "compiled_packed_bf16": Variant(True, "default", "blocks", "packed", "compute"),
    # eager and compiled steps replayed as one CUDA graph: the GPU's work without host time per op
    "graphed": Variant(True, None, None, "padded", "fp32", graph=True),
    "unfused_graphed": Variant(False, None, None, "padded", "fp32", graph=True),
    "compiled_packed_bf16_graphed": Variant(True, "default", "blocks", "packed", "compute", graph=True),
    # the whole forward as one graph: inductor may fuse across blocks (a block's residual add with
    # the next block's norm and casts), which per-block graphs cannot; priced as per block
    "compiled_model_packed_bf16_graphed": Variant(True, "default", "model", "packed", "compute", graph=True),
}
AS_WRITTEN = tuple(v for v, (fused, *_) in VARIANTS.items() if fused)   # fused, compiled, cudagraphs, ...
# The paper's reported deltas for the ablations (Kunlun, arXiv 2602.10016): FLOPs and QPS of the
# full model against the ablated one.
PAPER = {
    "ablation_no_compskip": ("CompSkip on vs off", "-43%", "+35%"),
    "ablation_no_swa": ("sliding window vs full attention", "-29.5%", "+31%"),
    "ablation_one_tower": ("event towers vs one shared tower", "-11%", "+13%"),
    "ablation_no_gdpa_fusion": ("GDPA fused vs unfused", "0%", "n/a"),
    "ablation_pma": ("HSP vs PMA", "n/a", "n/a"),
    "ablation_one_expert": ("2 Wukong experts vs 1", "n/a", "n/a"),
}
# Default sweep: batch sizes that fit an H200 (141 GB) as measured there (2026-11-29: kunlun_60g
# fused 94 GB at 256, unfused 70 GB at 16, compiled_packed 91 GB at 384); halved on OOM. kunlun_6g
# is host-bound at 256 even compiled (121 ms a step, 60 ms of kernels), so the ablations run at 1024
# in the fastest variant, where each step is GPU work (the estimate's max(GPU, host) says so, and
# the five ablations measured 0.95-1.10 of it there). More than one 10-minute device call: pick
# with --runs.
ABLATION_RUN = "compiled_packed_bf16@1024"
DEFAULT_RUNS = (
    "kunlun_6g:fused@256", "kunlun_6g:unfused@256", "kunlun_6g:compiled@256", "kunlun_6g:unfused_compiled@256",
    "kunlun_60g:fused@256", "kunlun_60g:unfused@16", "kunlun_60g:compiled@256", "kunlun_60g:unfused_compiled@16",
    "kunlun_60g:compiled_packed@256", "kunlun_60g:compiled_packed_bf16@256", "kunlun_60g:compiled_packed_bf16@384",
    "kunlun_60g:cudagraphs@64", "kunlun_180g:fused@64",
    *(f"{spec}:{ABLATION_RUN}" for spec in ("kunlun_6g", *PAPER)),
)
MARK_BEGIN, MARK_END = "<!-- bench_models:begin -->", "<!-- bench_models:end -->"


@dataclass(frozen=True)
class Run:
    spec: str
    variant: str
    batch: int | None

    @classmethod
    def parse(cls, text: str) -> "Run":
        head, _, batch = text.partition("@")
        spec, _, variant = head.partition(":")
        variant = variant or "fused"
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r} in {text!r}; known: {', '.join(VARIANTS)}")
        return cls(spec, variant, int(batch) if batch else None)


def spec_data(spec: str, fused: bool) -> dict:
    """specs/<spec>.yaml as data, or its `fuse: false` twin (named <name>_unfused)."""
    data = yaml.safe_load((ROOT / "specs" / f"{spec}.yaml").read_text())
    if not fused:
        data["name"] = f"{data['name']}_unfused"
        data.setdefault("compile", {})["fuse"] = False
    return data


def build(spec: str, fused: bool, work: Path) -> str:
    """Build specs/<spec>.yaml (or its fuse: false twin) into work/; return the package name."""
    data = spec_data(spec, fused)
    name = data["name"]
    if not (work / name / "__init__.py").exists():
        path = work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        subprocess.run([sys.executable, "-m", "kunlun_compiler.cli", "build", str(path), "-o", str(work), "-q"],
                       check=True, cwd=ROOT)
    return name


def measure(run: Run, work: Path, steps: int, timeout: float, device: str = "cuda",
            blocks: bool = True, logs: Path | None = None) -> dict:
    """One run in its own process; a failed run's whole stderr goes to `logs` when given."""
    fused, mode, scope, layout, stream, graph = VARIANTS[run.variant]
    name = build(run.spec, fused, work)
    batch = run.batch
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(work), os.environ.get("PYTHONPATH", "")])}
    first_error = None
    while True:
        cmd = [sys.executable, "-m", name, "bench", "--device", device, "--json", "--steps", str(steps)]
        cmd += ["--batch-size", str(batch)] if batch else []
        cmd += ["--compile", mode, "--compile-scope", scope] if mode else []
        cmd += [] if blocks else ["--no-blocks"]
        cmd += ["--layout", layout, "--stream", stream] + (["--cuda-graph"] if graph else [])
        t0 = time.time()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"spec": run.spec, "variant": run.variant, "batch_size": batch, "error": f"timeout {timeout:.0f}s"}
        if proc.returncode == 0:
            out = json.loads(proc.stdout)
            out.update(spec=run.spec, variant=run.variant, wall_s=round(time.time() - t0, 1))
            if first_error:
                out["first_attempt_error"] = first_error
            return out
        if "OutOfMemoryError" in proc.stderr and batch and batch > 1:
            batch //= 2
            continue
        if mode and first_error is None and COLD_FIRST_STEP.search(proc.stderr):
            first_error = error_line(proc.stderr)   # once: the caches are warm now
            continue
        failed = {"spec": run.spec, "variant": run.variant, "batch_size": batch, "error": error_line(proc.stderr)}
        if logs:
            log = logs / f"{run.spec}-{run.variant}-{batch}.stderr.txt"
            log.write_text(proc.stderr)
            failed["log"] = log.name
        return failed


# A compiled run's first step on cold caches can fail in backward: inductor's autotuner writes a
# buffer that autograd saved back with copy_ (bench/first_step_check.py; BENCHMARKS.md, seventh
# session). With the caches warm it passes, so such a run is retried once and says so.
COLD_FIRST_STEP = re.compile(r"modified by an inplace operation: \[torch\.cuda\.LongTensor")
_EXCEPTION = re.compile(r"^(\w+\.)*\w*(Error|Exception|Unsupported)\b.*")


def error_line(stderr: str) -> str:
    """The line that names the exception (its last occurrence), not the traceback's closing advice."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    named = [line for line in lines if _EXCEPTION.match(line)]
    return (named or lines or ["no output"])[-1]


# ---- the table ---------------------------------------------------------------------------------
def _by(results: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["spec"], r["variant"]): r for r in results}


def _per_second(r: dict) -> float:
    return r["batch_size"] / r["measured_step_s"]


def _ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def _seconds(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 1e3:.1f}"


def markdown(results: list[dict], header: str) -> str:
    ok = [r for r in results if "error" not in r]
    lines = [MARK_BEGIN, header, "",
             "| spec | variant | batch | step ms (measured) | GPU kernels ms | step ms (estimated) | est ÷ meas "
             "| est ÷ GPU | TFLOP/s | MFU | est. MFU | peak GB | first step s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in ok:
        lines.append(
            f"| {r['spec']} | {r['variant']} | {r['batch_size']} | {_ms(r['measured_step_s'])} | "
            f"{_ms(r.get('gpu_step_s'))} | "
            f"{_ms(r['estimated_step_s'])} | {r['estimated_step_s'] / r['measured_step_s']:.2f} | "
            f"{_ratio(r['estimated_step_s'], r.get('gpu_step_s'))} | "
            f"{r['measured_tflops']:.0f} | {r['measured_mfu']:.1%} | {r['estimated_mfu']:.1%} | "
            f"{r.get('max_memory_gb', float('nan')):.0f} | {_seconds(r.get('first_step_s'))}"
            f"{' (2nd attempt: the 1st failed cold)' if r.get('first_attempt_error') else ''} |")
    for r in results:
        if "error" in r:
            lines.append(f"| {r['spec']} | {r['variant']} | {r.get('batch_size')} | failed: {r['error'][:120]} ||||||||||")
    by = _by(ok)
    speed = []
    for spec in dict.fromkeys(r["spec"] for r in ok):
        for variant, other in (("fused", "unfused"), ("fused", "unfused_compiled"), ("compiled", "unfused_compiled"),
                               ("compiled", "fused"), ("cudagraphs", "fused"), ("packed", "fused"),
                               ("compiled_packed", "compiled"), ("compiled_packed_bf16", "compiled_packed"),
                               ("graphed", "unfused_graphed"), ("graphed", "fused"),
                               ("compiled_packed_bf16_graphed", "compiled_packed_bf16")):
            a, b = by.get((spec, variant)), by.get((spec, other))
            if a and b:
                speed.append(f"| {spec} | {variant} ÷ {other} | {a['batch_size']} vs {b['batch_size']} | "
                             f"{_per_second(a) / _per_second(b):.2f}x |")
    if speed:
        lines += ["", "Variants against each other, examples per second (= steps per second at equal batches; "
                  "an unfused run that did not fit was halved until it did):", "",
                  "| spec | ratio | batches | examples/s ratio |", "|---|---|---|---|", *speed]
    blocks = [r for r in ok if r.get("blocks_total_s") and r["variant"] in AS_WRITTEN]
    if blocks:
        lines += ["", "Per group (each block timed alone, forward + backward; estimate from the same build: "
                  "per block the longer of its GPU and host time; est GPU ÷ GPU compares the GPU parts):", "",
                  "| spec | variant | batch | group | measured ms | GPU kernels ms | estimated ms | est ÷ meas "
                  "| est GPU ÷ GPU | TFLOP/s |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in blocks:
            for g, v in sorted(r["groups"].items(), key=lambda kv: -kv[1].get("measured_s", 0)):
                if v.get("measured_s"):
                    gpu = v.get("gpu_s")
                    est_gpu = v.get("estimated_gpu_s", v["estimated_s"])   # rows from before the field: GPU only
                    lines.append(f"| {r['spec']} | {r['variant']} | {r['batch_size']} | {g} | {_ms(v['measured_s'])} | "
                                 f"{_ms(gpu)} | {_ms(v['estimated_s'])} | "
                                 f"{v['estimated_s'] / v['measured_s']:.2f} | {_ratio(est_gpu, gpu)} | "
                                 f"{v.get('measured_tflops', 0):.0f} |")
            rest = r["measured_step_s"] - r["blocks_total_s"]
            note = _ms(rest) if rest >= 0 else "n/a: the blocks alone sum to more than the step (host-bound)"
            lines.append(f"| {r['spec']} | {r['variant']} | {r['batch_size']} | optimizer + glue (step − blocks) | {note} "
                         "| | | | | |")
    abl = _ablations(by)
    if abl:
        lines += ["", "Ablations: the full kunlun_6g against each ablated spec (same variant, same batch):", "",
                  "| ablation | variant | FLOPs/example (full vs ablated) | FLOP delta | paper | steps/s delta | paper |",
                  "|---|---|---|---|---|---|---|", *abl]
    lines.append(MARK_END)
    return "\n".join(lines)


def _ablations(by: dict) -> list[str]:
    """One row per ablation and variant (eager fused, compiled) measured for both kunlun_6g and
    the ablated spec: eager rows at small batches measure host work more than GPU work."""
    rows = []
    for variant in AS_WRITTEN:
        full = by.get(("kunlun_6g", variant))
        if not full:
            continue
        for spec, (what, p_flops, p_qps) in PAPER.items():
            r = by.get((spec, variant))
            if not r:
                continue
            f_full = full["model_flops_per_step"] / full["batch_size"]
            f_abl = r["model_flops_per_step"] / r["batch_size"]
            rows.append(f"| {what} ({spec}) | {variant} | {f_full / 1e9:.2f} vs {f_abl / 1e9:.2f} GFLOP | "
                        f"{f_full / f_abl - 1:+.1%} | {p_flops} | {_per_second(full) / _per_second(r) - 1:+.1%} | {p_qps} |")
    return rows


def write_markdown(path: Path, table: str) -> None:
    text = path.read_text() if path.exists() else ""
    if MARK_BEGIN in text and MARK_END in text:
        head, rest = text.split(MARK_BEGIN, 1)
        text = head + table + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Model training steps\n\n" + table + "\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="*", default=list(DEFAULT_RUNS), help="spec[:variant][@batch] ...")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--timeout", type=float, default=420, help="seconds per run")
    p.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "kunlunc-bench")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--no-blocks", action="store_true", help="skip the per-block timing")
    p.add_argument("--json", type=Path, help="write (and extend) the results here")
    p.add_argument("--report", type=Path, help="do not run; read results from this JSON")
    p.add_argument("--markdown", type=Path, help="write the table between the markers in this file")
    args = p.parse_args(argv)
    if args.report:
        results = json.loads(args.report.read_text())
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        results = []
        for text in args.runs:
            r = measure(Run.parse(text), args.work, args.steps, args.timeout, args.device,
                        not args.no_blocks, args.json.parent if args.json else None)
            results.append(r)
            print(json.dumps({k: r.get(k) for k in ("spec", "variant", "batch_size", "measured_step_s",
                                                    "estimated_step_s", "measured_mfu", "error", "wall_s")}),
                  flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
    ok = [r for r in results if "error" not in r]
    header = (f"Measured on {ok[0]['device']} by `python3 bench/bench_models.py`; "
              f"median of the timed steps; MFU against {ok[0]['peak_flops'] / 1e12:.0f} TFLOP/s.") if ok else ""
    table = markdown(results, header)
    if args.markdown:
        write_markdown(args.markdown, table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
