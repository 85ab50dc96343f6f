"""TMA seed-pooling forward variants against the production kernel file at odd shapes (GPU)."""
import importlib.util, sys, torch
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m
base = load("spbase", "templates/kernels/seed_pooling.py")
variants = {a.split("=")[0]: load(a.split("=")[0], a.split("=")[1]) for a in sys.argv[1:]}
torch.manual_seed(0)
bad = 0
for B, H, T, D, S, dt in [(3, 4, 300, 64, 64, torch.bfloat16), (2, 4, 1000, 64, 64, torch.bfloat16), (5, 2, 37, 64, 16, torch.float16),
                          (64, 4, 1, 64, 64, torch.bfloat16), (4, 3, 777, 64, 128, torch.float32), (8, 4, 513, 48, 64, torch.bfloat16),
                          (300, 4, 256, 64, 64, torch.bfloat16)]:
    seq = torch.randn(B, T, H * D, device="cuda", dtype=dt)
    kv = seq.view(B, T, H, D).transpose(1, 2)
    seeds = torch.randn(H, S, D, device="cuda", dtype=dt)
    lengths = torch.randint(0, T + 1, (B,), device="cuda"); lengths[0] = T; lengths[-1] = 0 if B > 1 else T
    if B > 2: lengths[1] = 1
    off = torch.zeros(B + 1, dtype=torch.int64, device="cuda"); off[1:] = lengths.cumsum(0)
    valid = torch.arange(T, device="cuda")[None, :] < lengths[:, None]
    rows = seq[valid].view(-1, H, D)
    for layout in ("padded", "packed"):
        kw = dict(starts=off[:-1], max_len=T) if layout == "packed" else {}
        x = kv if layout == "padded" else rows
        o0, l0 = base.seed_pooling_forward(seeds, x, x, lengths, D ** -0.5, **kw)
        for name, m in variants.items():
            o1, l1 = m.seed_pooling_forward(seeds, x, x, lengths, D ** -0.5, **kw)
            e = ((o1.float() - o0.float()).norm() / o0.float().norm().clamp_min(1e-30)).item()
            le = (torch.nan_to_num(l1 - l0, 0.0).abs().max()).item()
            same_inf = torch.equal(torch.isinf(l1), torch.isinf(l0))
            ok = e < (1e-5 if dt == torch.float32 else 1e-2) and le < 1e-2 and same_inf and not o1.isnan().any()
            bad += not ok
            print(f"{name:8} B{B} H{H} T{T} D{D} S{S} {str(dt)[6:]:8} {layout:6} rel {e:.2e} lse {le:.1e} {'ok' if ok else 'FAIL'}")
sys.exit(1 if bad else 0)
