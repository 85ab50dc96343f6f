"""Host time of one seed-pooling forward call, TMA on and off (tiny shapes: the launch is host-bound)."""
import importlib.util, time, torch, sys
spec = importlib.util.spec_from_file_location("sp", "templates/kernels/seed_pooling.py"); sp = importlib.util.module_from_spec(spec); spec.loader.exec_module(sp)
def per_call(fn, n=400):
    for _ in range(20): fn()
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(n): fn()
    host = (time.perf_counter() - t) / n * 1e6
    torch.cuda.synchronize()
    return host
for B, H, T, D, S in [(4, 1, 64, 64, 16), (1024, 4, 64, 64, 8)]:
    seq = torch.randn(B, T, H * D, device="cuda", dtype=torch.bfloat16); kv = seq.view(B, T, H, D).transpose(1, 2)
    seeds = torch.randn(H, S, D, device="cuda", dtype=torch.bfloat16); L = torch.full((B,), T, device="cuda")
    for tma in (False, True, None):
        print(f"B{B} T{T} S{S} tma={tma}: {per_call(lambda: sp._forward(seeds, kv, kv, L, 0.125, tma=tma)):.1f} us a call (host)")
    meta = sp._meta(seeds, kv, kv, 0.125)[0]
    print(f"  _tma_views: {per_call(lambda: sp._tma_views(kv, kv, False, 64, None)):.1f} us")
    print(f"  _tma_view: {per_call(lambda: sp._tma_view(kv, False, 64)):.1f} us")
    print(f"  get_device_capability: {per_call(lambda: torch.cuda.get_device_capability(kv.device)):.1f} us")
    x = kv.as_strided((B * T, H * D), (H * D, 1))
    print(f"  TensorDescriptor(): {per_call(lambda: sp.TensorDescriptor(x, [B * T, H * D], [H * D, 1], [64, 64])):.1f} us")
