"""Where the D 128 W 128 bidirectional forward+backward goes: GPU kernel time a call by kernel, ours
against Flex (bench_window.py's shape 2), after bench_window's own warm-up of both."""
import sys
sys.path.insert(0, "bench")
import torch
import bench_window as bw
from benchutil import kernel_ms_by_name
from torch.nn.attention.flex_attention import flex_attention, create_block_mask
B, H, T, D, W = bw.SHAPES[2]
wa = bw.wa
torch.manual_seed(0)
q, k, v, do = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16) for _ in range(4))
full = torch.full((B,), T, device="cuda", dtype=torch.int32)
scale = D ** -0.5
def ours():
    o, lse = wa.window_attention_forward(q, k, v, full, W, False, scale)
    wa.window_attention_backward(do, q, k, v, o, lse, full, W, False, scale)
def ours_fwd():
    wa.window_attention_forward(q, k, v, full, W, False, scale)
mask = create_block_mask(lambda b, h, i, j: (i - j <= W) & (j - i <= W), None, None, T, T, device="cuda")
flex = torch.compile(flex_attention, dynamic=False)
qg, kg, vg = (x.detach().requires_grad_() for x in (q, k, v))
def flex_fb():
    out = flex(qg, kg, vg, block_mask=mask, scale=scale)
    torch.autograd.grad(out, (qg, kg, vg), do)
for name, fn in (("ours fwd", ours_fwd), ("ours fwd+bwd", ours), ("flex fwd+bwd", flex_fb)):
    for _ in range(3): fn()
    by = kernel_ms_by_name(fn, reps=20)
    print(f"{name}: {sum(by.values()):.4f} ms of kernels a call", flush=True)
    for key, ms in sorted(by.items(), key=lambda kv: -kv[1]):
        print(f"    {ms:8.4f}  {key[:110]}", flush=True)
