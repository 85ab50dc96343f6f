"""Seed pooling on the GPU: the Triton kernels against the two-call SDPA path and the copy ceiling.

    python bench/bench_seed_pooling.py [--json PATH]

For each shape (bf16, K = V = one [B, T, H·D] sequence, as in the model) it times, with
triton.testing.do_bench medians:
- the copy ceiling once: a 1 GiB device-to-device copy, bytes read + written over time;
- level 1 (S1 seeds over the sequence) forward, full and jagged (lengths uniform in [0, T]), and the
  jagged/full ratios by GPU kernel time, padded and packed (the models' layout);
- level 1 forward + backward (dK + dV summed in the kernel; --pair adds the separate pair);
- both levels (S1 seeds, then S2 seeds over those S1), forward and forward + backward, ours against
  the peer: F.scaled_dot_product_attention with the seeds expanded over the batch, called twice.
Bandwidth is the bytes of the sequence read once over the time. Prints a table; writes JSON to
--json (default $OUT/bench_seed_pooling.json when OUT is set). Checks bf16 against an fp32
reference (the ops module's plain-torch reference) once per shape and prints the error.
"""
import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton.testing

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from benchutil import check_status, direct_launch, kernel_ms, write_text  # noqa: E402

DEVICE = "cuda"
SHAPES = [
    dict(B=1024, H=4, T=1024, D=64, S1=64, S2=8),
    dict(B=512, H=8, T=2048, D=64, S1=128, S2=16),
]


def load_kernels():
    path = ROOT / "templates" / "kernels" / "seed_pooling.py"
    spec = importlib.util.spec_from_file_location("_bench_seed_pooling_kernels", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def load_reference():
    sys.path.insert(0, str(ROOT / "tests"))
    from opsload import load_ops  # renders templates/ops.py.j2 (needs jinja2 only)
    return load_ops("kunlunc_bench_seed").seed_pooling_reference


def median_ms(fn, grad_to_none=None) -> float:
    return triton.testing.do_bench(fn, warmup=10, rep=50, grad_to_none=grad_to_none,
                                   return_mode="median")


def copy_ceiling() -> float:
    """Bytes/s of a large device-to-device copy, read + written (the memory-bound ceiling)."""
    src = torch.randn(512 * 2**20, device=DEVICE, dtype=torch.bfloat16)  # 1 GiB
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src))
    return 2 * src.nbytes / (ms * 1e-3)


def rel_err(x, ref) -> float:
    return ((x.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30)).item()


def check_once(sp, reference, kv, seeds, lengths, scale) -> dict:
    """bf16 kernels vs the fp32 reference at the benchmark's own shape (so no extra tuning)."""
    o, lse = sp.seed_pooling_forward(seeds, kv, kv, lengths, scale)
    grad = torch.randn_like(o)
    dseeds, dkv = sp.seed_pooling_backward_shared_kv(grad, seeds, kv, o, lse, lengths, scale)
    s32 = seeds.float().requires_grad_()
    kv32 = kv.float().requires_grad_()
    ref = reference(s32, kv32, kv32, lengths, scale)
    ref.backward(grad.float())
    errors = {"o": rel_err(o, ref), "dseeds": rel_err(dseeds, s32.grad),
              "dkv": rel_err(dkv, kv32.grad)}
    del ref, s32, kv32
    torch.cuda.empty_cache()
    return errors


def pack(seq: torch.Tensor, lengths: torch.Tensor, H: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(K = V as packed rows [N, H, D], each example's first row): the models' jagged layout, no
    padding between examples, so nothing past a length is read or written."""
    valid = torch.arange(seq.shape[1], device=seq.device)[None, :] < lengths[:, None]
    rows = seq[valid]                                            # [N, H·D], examples back to back
    return rows.view(rows.shape[0], H, -1), torch.cumsum(lengths, 0) - lengths


def ours_two_levels(sp, kv, seeds1, seeds2, lengths, scale1, scale2, grad2=None):
    """Level 1 over the sequence, level 2 over level 1's S1 outputs; backward if grad2 given."""
    B, S1 = kv.shape[0], seeds1.shape[1]
    full1 = torch.full((B,), S1, dtype=torch.int64, device=kv.device)  # a model would hoist it
    h1, lse1 = sp.seed_pooling_forward(seeds1, kv, kv, lengths, scale1)
    h2, lse2 = sp.seed_pooling_forward(seeds2, h1, h1, full1, scale2)
    if grad2 is None:
        return h2
    ds2, dh1 = sp.seed_pooling_backward_shared_kv(grad2, seeds2, h1, h2, lse2, full1, scale2)
    ds1, dkv = sp.seed_pooling_backward_shared_kv(dh1, seeds1, kv, h1, lse1, lengths, scale1)
    return ds1, ds2, dkv


def sdpa_two_levels(seq, seeds1, seeds2, H, scale1, scale2):
    """The peer: seeds as queries, expanded over the batch, through SDPA, twice."""
    B, T = seq.shape[:2]
    kv = seq.view(B, T, H, -1).transpose(1, 2)
    h1 = F.scaled_dot_product_attention(seeds1.expand(B, -1, -1, -1), kv, kv, scale=scale1)
    return F.scaled_dot_product_attention(seeds2.expand(B, -1, -1, -1), h1, h1, scale=scale2)


def bench_shape(sp, reference, shape: dict, copy_bw: float, pair: bool) -> dict:
    B, H, T, D, S1, S2 = (shape[k] for k in ("B", "H", "T", "D", "S1", "S2"))
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    bf16 = dict(device=DEVICE, dtype=torch.bfloat16)
    seq = torch.randn(B, T, H * D, generator=gen, **bf16)
    kv = seq.view(B, T, H, D).transpose(1, 2)  # K = V, the model's layout
    seeds1 = torch.randn(H, S1, D, generator=gen, **bf16)
    seeds2 = torch.randn(H, S2, D, generator=gen, **bf16)
    full = torch.full((B,), T, dtype=torch.int64, device=DEVICE)
    jagged = torch.randint(0, T + 1, (B,), generator=gen, device=DEVICE)
    scale = D ** -0.5
    check = check_once(sp, reference, kv, seeds1, jagged, scale)
    print(f"  check vs fp32 reference: {check}", flush=True)

    o1, lse1 = sp.seed_pooling_forward(seeds1, kv, kv, full, scale)
    g1 = torch.randn_like(o1)
    g2 = torch.randn(B, H, S2, D, generator=gen, **bf16)
    full2 = torch.full((B,), S1, dtype=torch.int64, device=DEVICE)
    def fwd(lengths, rows=kv, **packed):
        """Level 1 forward over K = V rows (padded [B, H, T, D], or packed with starts and max_len)."""
        return lambda: sp.seed_pooling_forward(seeds1, rows, rows, lengths, scale, **packed)

    def fwd_bwd(lengths, shared=True, rows=kv, **packed):
        def run():
            o, lse = sp.seed_pooling_forward(seeds1, rows, rows, lengths, scale, **packed)
            if shared:
                return sp.seed_pooling_backward_shared_kv(g1, seeds1, rows, o, lse, lengths, scale, **packed)
            return sp.seed_pooling_backward(g1, seeds1, rows, rows, o, lse, lengths, scale, **packed)
        return run

    leaves = [seq.detach().requires_grad_(), seeds1.detach().requires_grad_(),
              seeds2.detach().requires_grad_()]

    def sdpa_fwd_bwd():
        sdpa_two_levels(*leaves, H, scale, scale).backward(g2)

    timings = {
        "l1_fwd": fwd(full),
        "l1_fwd_jagged": fwd(jagged),
        "l1_fwd_bwd": fwd_bwd(full),
        "l1_fwd_bwd_jagged": fwd_bwd(jagged),
        "l2_fwd": lambda: sp.seed_pooling_forward(seeds2, o1, o1, full2, scale),
        "both_fwd": lambda: ours_two_levels(sp, kv, seeds1, seeds2, full, scale, scale),
        "both_fwd_bwd": lambda: ours_two_levels(sp, kv, seeds1, seeds2, full, scale, scale, g2),
        "sdpa_both_fwd": lambda: sdpa_two_levels(seq, seeds1, seeds2, H, scale, scale),
        "sdpa_both_fwd_bwd": (sdpa_fwd_bwd, leaves),
    }
    if pair:  # dk, dv returned separately (another backward variant to tune)
        timings["l1_fwd_bwd_pair"] = fwd_bwd(full, shared=False)
    t = {}
    for name, fn in timings.items():
        fn, grads = fn if isinstance(fn, tuple) else (fn, None)
        t[name] = median_ms(fn, grads)
        print(f"  {name:<20} {t[name] * 1e3:9.1f} us", flush=True)
    # GPU kernel time alone (torch.profiler): where a timing exceeds it, the host is the bound
    gpu = {name: kernel_ms(timings[name]) for name in ("l1_fwd", "l2_fwd", "both_fwd")}
    print("  GPU kernels: " + ", ".join(f"{k} {v * 1e3:.1f} us" for k, v in gpu.items()), flush=True)
    # Jagged against full by GPU kernel time (wall time carries the host's noise: a jagged forward
    # once took 1.01x full by wall time, 0.64x in the next run), in the padded layout, whose
    # backward writes zeros to every row past a length, and packed (the models' layout), which
    # touches no row past one.
    jag = {}
    for layout in ("padded", "packed"):
        for label, lens in (("full", full), ("jagged", jagged)):
            if layout == "packed":
                rows, starts = pack(seq, lens, H)
                where = dict(rows=rows, starts=starts, max_len=T)
            else:
                where = {}
            jag[f"{layout}_fwd_{label}"] = kernel_ms(fwd(lens, **where))
            jag[f"{layout}_fwd_bwd_{label}"] = kernel_ms(fwd_bwd(lens, **where))
    jagged_gpu = {f"{layout}_{what}": jag[f"{layout}_{what}_jagged"] / jag[f"{layout}_{what}_full"]
                  for layout in ("padded", "packed") for what in ("fwd", "fwd_bwd")}
    print("  jagged ÷ full by GPU kernel time: " + ", ".join(f"{k} {v:.2f}" for k, v in jagged_gpu.items()),
          flush=True)
    seq_bytes = seq.nbytes
    valid_bytes = int(jagged.sum()) * H * D * seq.element_size()
    bw = seq_bytes / (t["l1_fwd"] * 1e-3)
    return {
        "shape": shape, "times_ms": t, "gpu_kernel_ms": {**gpu, **jag}, "check_rel_err": check,
        "jagged_over_full_gpu": jagged_gpu,
        "l1_read_TBps": bw / 1e12,
        "l1_read_frac_of_copy": bw / copy_bw,
        "l1_jagged_read_TBps": valid_bytes / (t["l1_fwd_jagged"] * 1e-3) / 1e12,
        "jagged_over_full_fwd": t["l1_fwd_jagged"] / t["l1_fwd"],
        "jagged_over_full_fwd_bwd": t["l1_fwd_bwd_jagged"] / t["l1_fwd_bwd"],
        "speedup_vs_sdpa_fwd": t["sdpa_both_fwd"] / t["both_fwd"],
        "speedup_vs_sdpa_fwd_bwd": t["sdpa_both_fwd_bwd"] / t["both_fwd_bwd"],
        "sdpa_read_TBps": seq_bytes / (t["sdpa_both_fwd"] * 1e-3) / 1e12,
        "l1_fwd_TFLOPs": 4 * B * H * T * S1 * D / (t["l1_fwd"] * 1e-3) / 1e12,
    }


def print_table(copy_bw: float, results: list) -> None:
    print(f"\ncopy ceiling (read + written): {copy_bw / 1e12:.2f} TB/s")
    for r in results:
        s, t = r["shape"], r["times_ms"]
        print(f"\nB{s['B']} H{s['H']} T{s['T']} D{s['D']}, {s['S1']} then {s['S2']} seeds, bf16, K = V"
              f"   check vs fp32: " + ", ".join(f"{k} {v:.1e}" for k, v in r["check_rel_err"].items()))
        rows = [
            ("level 1 fwd", t["l1_fwd"], f"{r['l1_read_TBps']:.2f} TB/s = "
             f"{100 * r['l1_read_frac_of_copy']:.0f}% of copy, {r['l1_fwd_TFLOPs']:.0f} TFLOP/s"),
            ("level 1 fwd, jagged", t["l1_fwd_jagged"], f"{r['jagged_over_full_fwd']:.2f}x full, "
             f"{r['l1_jagged_read_TBps']:.2f} TB/s on valid keys"),
            ("level 1 fwd+bwd (dkv)", t["l1_fwd_bwd"], ""),
            ("level 1 fwd+bwd, jagged", t["l1_fwd_bwd_jagged"], f"{r['jagged_over_full_fwd_bwd']:.2f}x full; "
             "by GPU time " + ", ".join(f"{k} {v:.2f}" for k, v in r["jagged_over_full_gpu"].items())),
            ("level 2 fwd alone", t["l2_fwd"], f"GPU kernels {r['gpu_kernel_ms']['l2_fwd'] * 1e3:.1f} us"),
            ("both levels fwd", t["both_fwd"], f"{r['speedup_vs_sdpa_fwd']:.2f}x SDPA; GPU kernels "
             f"{r['gpu_kernel_ms']['both_fwd'] * 1e3:.1f} us"),
            ("SDPA both levels fwd", t["sdpa_both_fwd"], f"{r['sdpa_read_TBps']:.2f} TB/s"),
            ("both levels fwd+bwd", t["both_fwd_bwd"], f"{r['speedup_vs_sdpa_fwd_bwd']:.2f}x SDPA"),
            ("SDPA both levels fwd+bwd", t["sdpa_both_fwd_bwd"], ""),
        ]
        if "l1_fwd_bwd_pair" in t:
            rows.insert(3, ("level 1 fwd+bwd (dk, dv)", t["l1_fwd_bwd_pair"], ""))
        for name, ms, note in rows:
            print(f"  {name:<28} {ms * 1e3:9.1f} us   {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, "bench_seed_pooling.json") if out else None)
    parser.add_argument("--pair", action="store_true", help="also time the (dk, dv) backward")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_seed_pooling: needs a CUDA GPU")
    start = time.time()
    sp, reference = load_kernels(), load_reference()
    copy_bw = copy_ceiling()
    print(f"copy ceiling {copy_bw / 1e12:.2f} TB/s", flush=True)
    results = []
    # Launch the kernels directly, as the model's triton_op does in eager mode: through
    # wrap_triton's dispatch every call costs ~1 ms of host time, more than the kernels here
    # (2026-11-29 run: 1.0-1.1 ms per level-1 forward at both shapes, whose data differ 2x).
    with direct_launch():
        for shape in SHAPES:
            print(f"shape {shape}", flush=True)
            results.append(bench_shape(sp, reference, shape, copy_bw, args.pair))
    print_table(copy_bw, results)
    report = {
        "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
        "triton": triton.__version__, "date": time.strftime("%Y-%m-%d"),
        "copy_TBps": copy_bw / 1e12, "results": results, "wall_s": time.time() - start,
    }
    print(f"\nwall time {report['wall_s']:.0f} s")
    if args.json:
        write_text(args.json, json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return check_status("bench_seed_pooling", {f"B{r['shape']['B']} T{r['shape']['T']} {name}": err
                                               for r in results for name, err in r["check_rel_err"].items()})


if __name__ == "__main__":
    sys.exit(main())
