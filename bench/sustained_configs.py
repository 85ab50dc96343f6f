"""The window forward's configs timed on a cool GPU and in the sustained, power-capped state.

    python3 bench/sustained_configs.py [--json PATH] [--shape 2] [--causal] [--warm-s 2] [--cool-s 5]

Why. Under our window kernels the H200 reaches its power cap and lowers the SM clock (1,770-1,875
against 1,965-1,980 MHz; BENCHMARKS.md, sliding-window attention, twenty-seventh session), while
Triton's autotuner times each config for a fraction of a second, on a GPU that has mostly been
idle. A config that wins cool may draw more power than one that loses by a little, and lose once
the clock drops. This times every Hopper candidate of the forward (with autotuning on, the list
the autotuner chooses from) at one of bench_window.py's shapes, each pinned (benchutil.pinned):

- cool: its GPU kernel time after the GPU idled --cool-s seconds;
- hot: its GPU kernel time right after --warm-s seconds of its own back-to-back launches;
- the SM clock and the throttle reasons (nvidia-smi) after each;

and which config the autotuner picks at that key. Prints a table and writes JSON (--json, default
$OUT/sustained_configs.json when OUT is set). Needs a CUDA GPU; loads the kernel file by path.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from benchutil import kernel_ms, pinned, write_json  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, "sustained_configs.json") if out else None)
    parser.add_argument("--shape", type=int, default=2, help="index into bench_window.SHAPES")
    parser.add_argument("--causal", action="store_true", help="the causal band (default bidirectional)")
    parser.add_argument("--warm-s", type=float, default=2.0, help="seconds of launches before a hot timing")
    parser.add_argument("--cool-s", type=float, default=5.0, help="seconds idle before a cool timing")
    return parser.parse_args(argv)


def config_label(config) -> str:
    """'BLOCK_M x BLOCK_N, W warps, S stages' of a triton.Config."""
    kw = config.kwargs
    return f"{kw['BLOCK_M']} x {kw['BLOCK_N']}, {config.num_warps} warps, {config.num_stages} stages"


def gpu_state() -> dict:
    """The SM clock (MHz), power (W) and active throttle reasons of GPU 0, from nvidia-smi."""
    fields = ["clocks.sm", "power.draw", "clocks_throttle_reasons.active"]
    try:
        line = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return {}
    return dict(zip(("sm_mhz", "power_w", "throttle"), (x.strip() for x in line.split(","))))


def run_for(fn, seconds: float) -> None:
    """fn() back to back for about `seconds` (synchronizing every 20 calls)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(20):
            fn()
        torch.cuda.synchronize()


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 1
    start = time.time()
    import bench_window as bw
    wa = bw.wa
    wa._HOPPER_FWD = False                     # the Triton forward's configs, also where the Gluon one runs
    B, H, T, D, window = bw.SHAPES[args.shape]
    q, k, v, _, _ = bw.jagged_batch(B, H, T, D, "cuda")
    full = torch.full((B,), T, device="cuda", dtype=torch.int64)
    scale = D ** -0.5

    def forward():
        wa.window_attention_forward(q, k, v, full, window, args.causal, scale)

    tuner = wa._FWD[wa._head_meta(q, False)["BLOCK_D"] > 128]   # the forward's autotuner at this head dim
    forward()                                  # the autotuner's own pick at this key
    torch.cuda.synchronize()
    picked = next(iter(tuner.cache.values()), None)
    band = "causal" if args.causal else "bidirectional"
    print(f"window forward B{B} H{H} T{T} D{D} W{window} {band}; autotuner's pick: "
          f"{config_label(picked) if picked else '?'}", flush=True)
    rows = []
    for config in list(tuner.configs):
        def cool():
            forward()                          # compiled and bound before the idle wait
            torch.cuda.synchronize()
            time.sleep(args.cool_s)
            return kernel_ms(forward), gpu_state()

        def hot():
            run_for(forward, args.warm_s)
            return kernel_ms(forward), gpu_state()
        cool_ms, cool_state = pinned(tuner, config, cool)
        hot_ms, hot_state = pinned(tuner, config, hot)
        row = {"config": config_label(config), "picked": config is picked, "cool_ms": cool_ms,
               "hot_ms": hot_ms, "cool_state": cool_state, "hot_state": hot_state}
        rows.append(row)
        print(f"  {row['config']:<32}{' (picked)' if row['picked'] else '':<10} cool {cool_ms:.4f} ms "
              f"({cool_state.get('sm_mhz', '?')} MHz), hot {hot_ms:.4f} ms ({hot_state.get('sm_mhz', '?')} MHz, "
              f"{hot_state.get('power_w', '?')} W), hot / cool {hot_ms / cool_ms:.3f}", flush=True)
        write_json(args.json, rows)            # partial: kept if a later config hangs
    write_json(args.json, rows, start, shape=[B, H, T, D, window], causal=args.causal,
               warm_s=args.warm_s, cool_s=args.cool_s,
               picked=config_label(picked) if picked else None)
    if rows:
        best_cool = min(rows, key=lambda r: r["cool_ms"])
        best_hot = min(rows, key=lambda r: r["hot_ms"])
        print(f"fastest cool: {best_cool['config']}; fastest hot: {best_hot['config']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
