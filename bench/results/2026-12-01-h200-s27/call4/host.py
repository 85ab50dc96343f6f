"""Host time of the window-attention and GDPA Triton kernels' eager calls: every launch through
Triton's autotuner and JIT (old: _launch_tuned off) against bound_launch.launch_tuned (new),
alternating in one process; outputs compared bitwise. A small host-bound shape and a larger one;
the D 64 GDPA backward's dK/dV and dQ are Gluon launches (bound before this change too), its
forward and the window forward are Triton's; the window backward at D 64 runs Triton's dQ."""
import importlib.util, sys, time, torch
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec); sys.modules[name] = m; spec.loader.exec_module(m); return m
wa = load("wa", "templates/kernels/window_attention.py")
gd = load("gd", "templates/kernels/gdpa.py")
torch.manual_seed(0)
def inputs(B, H, T, D, S=None):
    S = S or T
    q = torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    do = torch.randn_like(q)
    return q, k, v, do, torch.full((B,), T, device="cuda", dtype=torch.int32)
cases = {}
for tag, (B, H, T, D, W) in {"small B4 H2 T128 D64": (4, 2, 128, 64, 32), "B64 H4 T2048 D64": (64, 4, 2048, 64, 256)}.items():
    q, k, v, do, n = inputs(B, H, T, D)
    def wf(q=q, k=k, v=v, n=n, W=W): return wa.window_attention_forward(q, k, v, n, W, False, 0.125)
    def wfb(q=q, k=k, v=v, n=n, W=W, do=do):
        o, lse = wa.window_attention_forward(q, k, v, n, W, False, 0.125)
        return (o, *wa.window_attention_backward(do, q, k, v, o, lse, n, W, False, 0.125))
    def gf(q=q, k=k, v=v, n=n): return (gd.gdpa_forward(q, k, v, n, None, "gelu_tanh", 0.125),)
    def gfb(q=q, k=k, v=v, n=n, do=do):
        return (gd.gdpa_forward(q, k, v, n, None, "gelu_tanh", 0.125),
                *gd.gdpa_backward(do, q, k, v, n, None, "gelu_tanh", 0.125))
    cases.update({f"window fwd {tag}": wf, f"window fwd+bwd {tag}": wfb, f"gdpa fwd {tag}": gf, f"gdpa fwd+bwd {tag}": gfb})
real = {"wa": wa._launch_tuned, "gd": gd._launch_tuned}
outs = {}
for mode in ("old", "new", "old", "new"):
    wa._launch_tuned = (lambda: None) if mode == "old" else real["wa"]
    gd._launch_tuned = (lambda: None) if mode == "old" else real["gd"]
    for name, fn in cases.items():
        for _ in range(5): fn()
        torch.cuda.synchronize()
        n = 100
        t = time.perf_counter()
        for _ in range(n): fn()
        host = (time.perf_counter() - t) / n * 1e6
        torch.cuda.synchronize()
        wall = (time.perf_counter() - t) / n * 1e6
        print(f"{mode} {name}: {host:.1f} us host a call (issue loop), {wall:.1f} us a call to the end", flush=True)
        out = fn()
        outs.setdefault(name, {})[mode] = [x.clone() for x in (out if isinstance(out, tuple) else (out,))]
for name, by in outs.items():
    same = all(torch.equal(a, b) for a, b in zip(by["old"], by["new"]))
    print(f"{name}: outputs old == new bitwise: {same}", flush=True)
