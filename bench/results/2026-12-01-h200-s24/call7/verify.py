"""The seed-pooling forward's eager TMA path against its pointer-load path on the GPU (bf16)."""
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("sp", "templates/kernels/seed_pooling.py"); sp = importlib.util.module_from_spec(spec); spec.loader.exec_module(sp)
bad = 0
for B, H, T, D, S in [(512, 4, 1024, 64, 64), (300, 4, 1100, 64, 128), (64, 2, 2049, 128, 16)]:
    g = torch.Generator(device="cuda").manual_seed(0)
    seq = torch.randn(B, T, H * D, generator=g, device="cuda", dtype=torch.bfloat16)
    kv = seq.view(B, T, H, D).transpose(1, 2)
    seeds = torch.randn(H, S, D, generator=g, device="cuda", dtype=torch.bfloat16)
    lengths = torch.randint(0, T + 1, (B,), generator=g, device="cuda"); lengths[0] = T; lengths[1] = 0; lengths[2] = 1
    starts = torch.cumsum(lengths, 0) - lengths
    valid = torch.arange(T, device="cuda")[None, :] < lengths[:, None]
    rows = seq[valid].view(-1, H, D)
    for name, x, kw in (("padded", kv, {}), ("packed", rows, dict(starts=starts, max_len=T))):
        auto = sp._tma_views(x, x, bool(kw), sp._seed_blocks(S, D)[1], None)[0]
        o1, l1 = sp._forward(seeds, x, x, lengths, D ** -0.5, **kw)
        o0, l0 = sp._forward(seeds, x, x, lengths, D ** -0.5, tma=False, **kw)
        e = ((o1.float() - o0.float()).norm() / o0.float().norm()).item()
        ok = e < 1e-2 and torch.equal(l1.isinf(), l0.isinf()) and not o1.isnan().any()
        bad += not ok
        print(f"B{B} H{H} T{T} D{D} S{S} {name}: auto TMA {isinstance(auto, sp.TensorDescriptor)}, rel diff {e:.1e} {'ok' if ok else 'FAIL'}", flush=True)
sys.exit(1 if bad else 0)
