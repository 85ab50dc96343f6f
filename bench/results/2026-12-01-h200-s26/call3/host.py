"""Host time a seed-pooling forward call (direct launches, as the models' triton_op in eager mode)
at bench_seed_pooling's first shape, level 1 (TMA) and level 2 (pointer loads), and a cProfile of
level 1's calls: where the host time goes."""
import cProfile, importlib.util, io, pstats, sys, time, torch
sys.path.insert(0, "bench")
from benchutil import direct_launch
spec = importlib.util.spec_from_file_location("sp", "templates/kernels/seed_pooling.py")
sp = importlib.util.module_from_spec(spec); spec.loader.exec_module(sp)
B, H, T, D, S1, S2 = 1024, 4, 1024, 64, 64, 8
seq = torch.randn(B, T, H * D, device="cuda", dtype=torch.bfloat16); kv = seq.view(B, T, H, D).transpose(1, 2)
s1 = torch.randn(H, S1, D, device="cuda", dtype=torch.bfloat16); s2 = torch.randn(H, S2, D, device="cuda", dtype=torch.bfloat16)
full = torch.full((B,), T, device="cuda"); full2 = torch.full((B,), S1, device="cuda")
with direct_launch():
    o1 = sp.seed_pooling_forward(s1, kv, kv, full, 0.125)[0]
    small = kv[:4, :, :64]
    cases = {"level 1 (TMA, 537 MB)": lambda: sp.seed_pooling_forward(s1, kv, kv, full, 0.125),
             "level 2 (pointer loads)": lambda: sp.seed_pooling_forward(s2, o1, o1, full2, 0.125),
             "tiny (pointer loads, host-bound)": lambda: sp.seed_pooling_forward(s2, small, small, full[:4] * 0 + 64, 0.125)}
    for name, fn in cases.items():
        for _ in range(10): fn()
        torch.cuda.synchronize()
        n = 200
        t = time.perf_counter()
        for _ in range(n): fn()
        host = (time.perf_counter() - t) / n * 1e6
        torch.cuda.synchronize()
        wall = (time.perf_counter() - t) / n * 1e6
        print(f"{name}: {host:.1f} us host a call (issue loop), {wall:.1f} us a call to the end", flush=True)
    for name in ("level 1 (TMA, 537 MB)", "tiny (pointer loads, host-bound)"):
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(200): cases[name]()
        prof.disable()
        torch.cuda.synchronize()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
        print(f"--- cProfile, 200 calls: {name}\n" + out.getvalue()[-4000:], flush=True)
