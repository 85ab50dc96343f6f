"""Host time of seed-pooling calls at bench_seed_pooling's first shape, bound launches with the host
TMA descriptors expanded by Triton at every launch (old: _Descriptors.of off) against expanded once
each (new), alternating in one process; outputs compared bitwise."""
import importlib.util, sys, time, torch
sys.path.insert(0, "bench")
spec = importlib.util.spec_from_file_location("sp", "templates/kernels/seed_pooling.py")
sp = importlib.util.module_from_spec(spec); sys.modules["sp"] = sp; spec.loader.exec_module(sp)
bl = sp._bound_launch()
B, H, T, D, S1, S2 = 1024, 4, 1024, 64, 64, 8
seq = torch.randn(B, T, H * D, device="cuda", dtype=torch.bfloat16); kv = seq.view(B, T, H, D).transpose(1, 2)
s1 = torch.randn(H, S1, D, device="cuda", dtype=torch.bfloat16); s2 = torch.randn(H, S2, D, device="cuda", dtype=torch.bfloat16)
full = torch.full((B,), T, device="cuda"); full2 = torch.full((B,), S1, device="cuda")
g1 = torch.randn(B, H, S1, D, device="cuda", dtype=torch.bfloat16)
o1, lse1 = sp.seed_pooling_forward(s1, kv, kv, full, 0.125)
cases = {"level 1 fwd (TMA, 537 MB)": lambda: sp.seed_pooling_forward(s1, kv, kv, full, 0.125),
         "level 2 fwd (pointer loads)": lambda: sp.seed_pooling_forward(s2, o1, o1, full2, 0.125),
         "level 1 bwd": lambda: sp.seed_pooling_backward_shared_kv(g1, s1, kv, o1, lse1, full, 0.125)}
of = bl._Descriptors.of
outs = {}
for mode in ("old", "new", "old", "new"):
    bl._Descriptors.of = staticmethod(lambda c: None) if mode == "old" else of
    bl._BOUND.clear()
    for name, fn in cases.items():
        for _ in range(10): fn()
        torch.cuda.synchronize()
        engaged = [(b[1] if len(b) == 2 else b)[2] is not None for b in bl._BOUND.values() if b]
        n = 300
        t = time.perf_counter()
        for _ in range(n): fn()
        host = (time.perf_counter() - t) / n * 1e6
        torch.cuda.synchronize()
        wall = (time.perf_counter() - t) / n * 1e6
        print(f"{mode} {name}: {host:.1f} us host a call (issue loop), {wall:.1f} us a call to the end; "
              f"bound kernels expanding descriptors themselves: {sum(engaged)} of {len(engaged)}", flush=True)
        out = fn()
        outs.setdefault(name, {})[mode] = [x.clone() for x in out]
bl._Descriptors.of = of
for name, by in outs.items():
    same = all(torch.equal(a, b) for a, b in zip(by["old"], by["new"]))
    print(f"{name}: outputs old == new bitwise: {same}", flush=True)
