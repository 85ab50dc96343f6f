"""Which Triton baseline did s19's gdpa_gluon_ws D128 ratio use? Same shapes, both timers."""
import sys, json, os
sys.path.insert(0, "bench")
import torch, triton
from benchutil import kernel_ms, direct_launch
from bench_gdpa import gdpa_forward_op
from compile_kernels import kernel_module
from gdpa_gluon_ws import gdpa_forward_ws
from gdpa_hopper_fwd import gdpa_forward_hopper
gdpa = kernel_module("gdpa")
torch.manual_seed(0)
rows = []
for B, T, S in [(1152, 256, 256), (1152, 512, 512), (1152, 1024, 1024), (288, 2048, 2048), (1152, 512, 256), (1152, 1024, 256), (1152, 2048, 256)]:
    H, D = 4, 128
    q = (torch.randn(B, H, T, D, device="cuda") * D ** -0.25).bfloat16()
    k = (torch.randn(B, H, S, D, device="cuda") * D ** -0.25).bfloat16()
    v = torch.randn(B, H, S, D, device="cuda").bfloat16()
    L = torch.full((B,), T, device="cuda", dtype=torch.int64)
    sc = 1.0 / T
    fns = {"op": lambda: gdpa_forward_op(q, k, v, L, None, "gelu_tanh", sc, -1, False),
           "direct": lambda: gdpa.gdpa_forward(q, k, v, L, None, "gelu_tanh", sc),
           "ws64x64x3": lambda: gdpa_forward_ws(q, k, v, sc, 64, 64, 3),
           "ws64x128x2": lambda: gdpa_forward_ws(q, k, v, sc, 64, 128, 2),
           "prod_ws": lambda: gdpa_forward_hopper(q, k, v, L, "gelu_tanh", sc)}
    flops = 4 * B * H * T * S * D
    row = {"B": B, "T": T, "S": S}
    for name, fn in fns.items():
        fn()
        row[name + "_bench"] = flops / triton.testing.do_bench(fn, return_mode="median") / 1e9
        row[name + "_kernel"] = flops / kernel_ms(fn, 10) / 1e9
    try:
        tuned = gdpa._tuned("fwd", "", True)
        row["triton_cfg"] = {str(k2): str(c) for k2, c in tuned.cache.items()}
    except Exception as e:
        row["triton_cfg"] = repr(e)
    rows.append(row)
    print(" ".join(f"{k2}={v2:.0f}" if isinstance(v2, float) else f"{k2}={v2}" for k2, v2 in row.items() if k2 != "triton_cfg"), flush=True)
print(json.dumps(rows[-1]["triton_cfg"])[:3000])
json.dump(rows, open(os.path.join(os.environ.get("OUT", "/tmp"), "cmp_ws.json"), "w"), indent=1)
