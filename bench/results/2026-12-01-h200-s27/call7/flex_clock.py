"""Do Flex's kernels slow under the clock drop that slows ours (call 3)? D 128 W 128 bidirectional
forward+backward, GPU kernel time a call, ours and Flex, on a cool GPU and right after a do_bench
loop of each, with nvidia-smi's SM clock and throttle reasons."""
import subprocess, sys
sys.path.insert(0, "bench")
import torch
import bench_window as bw
from benchutil import kernel_ms_by_name
from triton.testing import do_bench
from torch.nn.attention.flex_attention import flex_attention, create_block_mask
B, H, T, D, W = bw.SHAPES[2]
wa = bw.wa
scale = D ** -0.5
q, k, v, do, _ = bw.jagged_batch(B, H, T, D, "cuda")
full = torch.full((B,), T, device="cuda", dtype=torch.int64)
def smi(tag):
    out = subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,power.draw,temperature.gpu,clocks_throttle_reasons.active",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    print(f"  [{tag}] sm MHz, W, C, throttle: {out}", flush=True)
def ours():
    o, lse = wa.window_attention_forward(q, k, v, full, W, False, scale)
    wa.window_attention_backward(do, q, k, v, o, lse, full, W, False, scale)
mask = create_block_mask(lambda b, h, i, j: (i - j <= W) & (j - i <= W), None, None, T, T, device="cuda")
flex = torch.compile(flex_attention, dynamic=False)
qg, kg, vg = (x.detach().requires_grad_() for x in (q, k, v))
def flex_fb():
    out = flex(qg, kg, vg, block_mask=mask, scale=scale)
    torch.autograd.grad(out, (qg, kg, vg), do)
def kms(fn):
    return sum(kernel_ms_by_name(fn).values())
for _ in range(3): ours(); flex_fb()
torch.cuda.synchronize()
import time; time.sleep(5)
smi("cool")
print(f"cool: ours {kms(ours):.4f} ms, flex {kms(flex_fb):.4f} ms", flush=True)
for rep in range(3):
    for name, fn in (("ours", ours), ("flex", flex_fb)):
        ms = do_bench(fn, return_mode="median")
        smi(f"after do_bench of {name} ({ms:.4f} ms)")
        print(f"hot {rep}, after {name}'s do_bench: ours {kms(ours):.4f} ms, flex {kms(flex_fb):.4f} ms", flush=True)
