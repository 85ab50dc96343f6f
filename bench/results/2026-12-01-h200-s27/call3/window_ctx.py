"""Why bench_window's D 128 W 128 bidirectional rows time our kernels ~20% slower than a fresh
process does (call 2): the same kernels by kernel time, on fresh inputs (int32 lengths) and on
bench_window's own (jagged_batch, int64 lengths), before and after do_bench's sustained loop, with
the GPU's SM clock, power and temperature between steps."""
import subprocess, sys
sys.path.insert(0, "bench")
import torch
import bench_window as bw
from benchutil import kernel_ms_by_name
from triton.testing import do_bench
B, H, T, D, W = bw.SHAPES[2]
wa = bw.wa
scale = D ** -0.5
def smi(tag):
    out = subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    print(f"  [{tag}] sm MHz, mem MHz, W, C, throttle: {out}", flush=True)
torch.manual_seed(0)
fresh = [torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16) for _ in range(4)] + [torch.full((B,), T, device="cuda", dtype=torch.int32)]
q, k, v, do, _ = bw.jagged_batch(B, H, T, D, "cuda")
benchin = [q, k, v, do, torch.full((B,), T, device="cuda", dtype=torch.int64)]
def fb(inp, causal=False):
    q, k, v, do, n = inp
    def run():
        o, lse = wa.window_attention_forward(q, k, v, n, W, causal, scale)
        wa.window_attention_backward(do, q, k, v, o, lse, n, W, causal, scale)
    return run
def show(tag, fn):
    for _ in range(3): fn()
    by = kernel_ms_by_name(fn)
    print(f"{tag}: {sum(by.values()):.4f} ms: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(by.items())), flush=True)
smi("start")
show("A fresh inputs, int32 lengths", fb(fresh))
show("B bench inputs, int64 lengths", fb(benchin))
show("B' bench q/k/v/do, int32 lengths", fb(benchin[:4] + fresh[4:]))
show("B'' fresh q/k/v/do, int64 lengths", fb(fresh[:4] + benchin[4:]))
smi("before do_bench")
for rep in range(3):
    ms = do_bench(fb(benchin), return_mode="median")
    smi(f"after do_bench {rep}: {ms:.4f} ms")
    show(f"C{rep} bench inputs after do_bench", fb(benchin))
show("D fresh inputs again", fb(fresh))
ms = do_bench(fb(fresh), return_mode="median"); smi(f"after do_bench fresh: {ms:.4f} ms")
show("E fresh inputs after do_bench", fb(fresh))
show("F causal, bench inputs", fb(benchin, True))
