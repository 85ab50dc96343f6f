"""Is the jagged shortfall (jagged ÷ full > 0.6 by GPU time) the programs' order? The same jagged
lengths (uniform in [0, T], the benchmarks' generator) as drawn, sorted longest first, sorted
shortest first; GPU kernel time a call. Seed pooling level 1 at bench_seed_pooling's first shape
(padded, K = V; the eager forward reads by TMA, and by pointer loads with tma=False), and GDPA at
D 128 self-attention B1152 T1024 and B1152 T512 (bench_gdpa's H 4)."""
import importlib.util, sys
sys.path.insert(0, "bench")
import torch
from benchutil import kernel_ms
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec); sys.modules[name] = m; spec.loader.exec_module(m); return m
sp = load("sp", "templates/kernels/seed_pooling.py")
gd = load("gd", "templates/kernels/gdpa.py")
def variants(lengths):
    return {"drawn": lengths, "longest first": lengths.sort(descending=True).values,
            "shortest first": lengths.sort().values}
B, H, T, D, S = 1024, 4, 1024, 64, 64
gen = torch.Generator(device="cuda").manual_seed(0)
bf = dict(device="cuda", dtype=torch.bfloat16)
seq = torch.randn(B, T, H * D, generator=gen, **bf); kv = seq.view(B, T, H, D).transpose(1, 2)
seeds = torch.randn(H, S, D, generator=gen, **bf)
full = torch.full((B,), T, dtype=torch.int64, device="cuda")
jag = torch.randint(0, T + 1, (B,), generator=gen, device="cuda")
g = torch.randn(B, H, S, D, generator=gen, **bf)
def sp_fwd(n, tma):
    return lambda: sp._forward(seeds, kv, kv, n, 0.125, tma=tma)
def sp_fb(n):
    def run():
        o, lse = sp.seed_pooling_forward(seeds, kv, kv, n, 0.125)
        sp.seed_pooling_backward_shared_kv(g, seeds, kv, o, lse, n, 0.125)
    return run
print(f"seed pooling B{B} H{H} T{T} D{D} S{S}, mean jagged length {jag.float().mean():.0f}", flush=True)
for label, mk in (("fwd TMA", lambda n: sp_fwd(n, None)), ("fwd pointer loads", lambda n: sp_fwd(n, False)),
                  ("fwd+bwd", sp_fb)):
    base = kernel_ms(mk(full))
    parts = [f"full {base * 1e3:.1f} us"]
    for name, n in variants(jag).items():
        ms = kernel_ms(mk(n))
        parts.append(f"{name} {ms * 1e3:.1f} us ({ms / base:.2f})")
    print(f"  {label}: " + ", ".join(parts), flush=True)
for Bg, Tg in ((1152, 1024), (1152, 512)):
    Dg, Hg = 128, 4
    q, k, v, do = (torch.randn(Bg, Hg, Tg, Dg, generator=gen, **bf) * (Dg ** -0.25) for _ in range(4))
    fullg = torch.full((Bg,), Tg, dtype=torch.int64, device="cuda")
    jg = torch.randint(0, Tg + 1, (Bg,), generator=gen, device="cuda")
    def g_fwd(n): return lambda: gd.gdpa_forward(q, k, v, n, None, "gelu_tanh", 0.125)
    def g_fb(n):
        def run():
            gd.gdpa_forward(q, k, v, n, None, "gelu_tanh", 0.125)
            gd.gdpa_backward(do, q, k, v, n, None, "gelu_tanh", 0.125)
        return run
    print(f"gdpa self B{Bg} H{Hg} T{Tg} D{Dg}, mean jagged length {jg.float().mean():.0f}", flush=True)
    for label, mk in (("fwd", g_fwd), ("fwd+bwd", g_fb)):
        base = kernel_ms(mk(fullg))
        parts = [f"full {base * 1e3:.1f} us"]
        for name, n in variants(jg).items():
            ms = kernel_ms(mk(n))
            parts.append(f"{name} {ms * 1e3:.1f} us ({ms / base:.2f})")
        print(f"  {label}: " + ", ".join(parts), flush=True)
