"""Seed-pooling backward in kunlun_60g's package: eager vs torch.compile, the autotuner's picks."""
import sys, os
sys.path.insert(0, "bench"); sys.path.insert(0, "generated")
import torch
from benchutil import kernel_ms_by_name
import kunlun_60g.ops as ops
from kunlun_60g.kernels import seed_pooling as sp
torch.manual_seed(0)
for B, H, T, D, S in [(256, 8, 2048, 64, 128), (256, 4, 1024, 128, 64)]:
    lengths = torch.randint(0, T + 1, (B,), device="cuda")
    starts = torch.cumsum(lengths, 0) - lengths
    N = int(lengths.sum())
    x = torch.randn(N, H * D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    seeds = torch.randn(H, S, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    def step(fn):
        def run():
            kv = x.view(N, H, D)
            o = fn(seeds, kv, kv, lengths, D ** -0.5, backend="triton", starts=starts, max_len=T)
            o.float().sum().backward()
        return run
    for name, fn in (("eager", ops.seed_pooling), ("compiled", torch.compile(ops.seed_pooling, fullgraph=True))):
        run = step(fn)
        run(); run()
        t = kernel_ms_by_name(run, 10)
        print(B, H, T, D, S, name, {k[:40]: round(v * 1e3, 1) for k, v in t.items() if "kernel" in k}, flush=True)
    for key, tuner in [("bwd", sp._bwd_tuned), ("fwd", sp._fwd_tuned)]:
        print("  ", key, tuner.cache_info(), flush=True)
for get in (sp._bwd_tuned,):
    pass
# the autotuners made so far and their picks
import gc
for obj in gc.get_objects():
    if type(obj).__name__ == "Autotuner" and getattr(obj, "cache", None):
        print(getattr(obj.fn, "__name__", obj.fn), {str(k)[:60]: str(v) for k, v in obj.cache.items()})
