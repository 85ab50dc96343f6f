"""GPU benchmark of the Triton sliding-window attention kernels against their peers.

    python bench/bench_window.py [--json PATH] [--shapes 0,1,2]

At the shapes of /work/shared/perf-baselines.md (bf16; each causal and bidirectional), times with
`triton.testing.do_bench` (median, ms):
  ours           templates/kernels/window_attention.py, forward and forward+backward, full lengths
  ours jagged    the same with lengths uniform in [0, T] (useful FLOPs counted on those lengths)
  ours packed jagged   the same jagged batch as packed rows [N, H, D] (the models' packed layout)
  ours model     forward on transposed views of [B, T, H*D] (the layout the model passes)
  flex           torch.compile(flex_attention) with a create_block_mask band (full lengths)
  sdpa mask      F.scaled_dot_product_attention with a dense boolean band mask (forward)
  flash causal   full causal SDPA through the FlashAttention backend (its own causal pairs)
Every row also carries the profiler's GPU kernel time per call ("kernel ms"), without the host
time that a do_bench median includes where the launches cannot keep the GPU busy, and our rows
their speed-up over Flex by kernel time ("x flex k"): where it exceeds "x flex", the eager call
is host-bound. The jagged ratios are printed both ways under each shape.
TFLOP/s count useful FLOPs: 4·B·H·D·(in-window pairs), x3.5 for forward+backward. Prints a table
with the speed-ups over Flex and over full causal flash, and writes everything as JSON to --json
(default $OUT/bench_window.json when OUT is set). Imports the kernel file by path: needs only
torch and triton.
"""
import argparse
import datetime
import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from benchutil import check_status, kernel_ms_by_name, write_text  # noqa: E402

SHAPES = [  # (B, H, T, D, window)
    (64, 4, 2048, 64, 256),
    (32, 8, 4096, 64, 512),
    (128, 4, 1024, 128, 128),
]


def load_kernels():
    path = ROOT / "templates" / "kernels" / "window_attention.py"
    spec = importlib.util.spec_from_file_location("bench_window_attention_kernels", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # torch.compile resolves the kernels' globals through it
    spec.loader.exec_module(module)
    return module


wa = load_kernels()


def pairs_in_window(T: int, window: int, causal: bool) -> int:
    """Number of (i, j) in [0, T)² with |i - j| <= window (causal: i - window <= j <= i)."""
    if T <= 0:
        return 0
    w = min(window, T - 1)
    behind = w * (2 * T - w - 1)
    return T + (behind // 2 if causal else behind)


def band_mask(T: int, window: int, causal: bool, device) -> torch.Tensor:
    pos = torch.arange(T, device=device)
    rel = pos[None, :] - pos[:, None]  # j - i
    return (rel >= -window) & (rel <= (0 if causal else window))


def dense_reference(q, k, v, lengths, window, causal, scale):
    """fp32 masked softmax attention, differentiable (for the one correctness check)."""
    T = q.shape[2]
    valid = torch.arange(T, device=q.device)[None, :] < lengths[:, None]
    allowed = band_mask(T, window, causal, q.device) & valid[:, None, :] & valid[:, :, None]
    scores = (q @ k.mT) * scale
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    weights = torch.softmax(scores, -1).nan_to_num(0.0)
    return (weights @ v) * valid[:, None, :, None]


def check_correctness(device):
    """bf16 kernels vs the fp32 reference on a small problem; returns the relative errors."""
    B, H, T, D, window = 3, 4, 700, 64, 100
    gen = torch.Generator(device=device).manual_seed(1)
    q, k, v, do = (torch.randn(B, H, T, D, device=device, generator=gen, dtype=torch.bfloat16)
                   for _ in range(4))
    lengths = torch.tensor([T, 400, 1], device=device)
    errors = {}
    for causal in (False, True):
        o, lse = wa.window_attention_forward(q, k, v, lengths, window, causal, D ** -0.5)
        grads = wa.window_attention_backward(do, q, k, v, o, lse, lengths, window, causal,
                                             D ** -0.5)
        q32, k32, v32 = (x.float().requires_grad_() for x in (q, k, v))
        ref = dense_reference(q32, k32, v32, lengths, window, causal, D ** -0.5)
        ref_grads = torch.autograd.grad(ref, (q32, k32, v32), do.float())
        for name, x, r in zip(("o", "dq", "dk", "dv"), (o, *grads), (ref, *ref_grads)):
            err = ((x.float() - r).norm() / r.norm().clamp_min(1e-30)).item()
            errors[f"{'causal' if causal else 'bidir'} {name}"] = err
    return errors


def tflops(flops: float, ms: float) -> float:
    return flops / (ms * 1e-3) / 1e12


def jagged_batch(B, H, T, D, device, dtype=torch.bfloat16):
    """(q, k, v, dO [B, H, T, D], lengths uniform in [0, T]): the benchmark's inputs at a shape,
    the same on every call (seed 0)."""
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v, do = (torch.randn(B, H, T, D, device=device, dtype=dtype, generator=gen) for _ in range(4))
    return q, k, v, do, torch.randint(0, T + 1, (B,), device=device, generator=gen)


def pack_jagged(tensors, lengths):
    """[B, H, T, D] tensors -> ([N, H, D] rows back to back, ...), lengths, starts, T: the packed
    layout of the same jagged batch (no padding rows at all)."""
    T = tensors[0].shape[2]
    valid = torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]     # [B, T]
    rows = tuple(x.transpose(1, 2)[valid].contiguous() for x in tensors)          # [N, H, D]
    return (*rows, lengths, torch.cumsum(lengths, 0) - lengths, T)


def ours_packed(q, k, v, do, lengths, starts, T, window, causal, scale, backward=False):
    """The kernels on packed rows ("ours packed jagged"): what the models run on a packed batch."""
    def run():
        o, lse = wa.window_attention_forward(q, k, v, lengths, window, causal, scale, starts=starts, max_len=T)
        if backward:
            wa.window_attention_backward(do, q, k, v, o, lse, lengths, window, causal, scale,
                                         starts=starts, max_len=T)
    return run


def jagged_ratios(results: dict) -> dict[str, tuple[float, float]]:
    """Jagged time over the padded full-length time, by do_bench and by kernel time, for the
    jagged target (≤ 0.6): {"padded fwd": (do_bench, kernel), ...} for both layouts and stages."""
    out = {}
    for layout, prefix in (("padded", "ours jagged"), ("packed", "ours packed jagged")):
        for stage in ("fwd", "fwd+bwd"):
            jag, full = results[f"{prefix} {stage}"], results[f"ours {stage}"]
            out[f"{layout} {stage}"] = (jag["ms"] / full["ms"], jag["kernel_ms"] / full["kernel_ms"])
    return out


def bench_shape(B, H, T, D, window, causal, flex_attention, create_block_mask, device):
    """Times every variant at one shape; returns {name: {"ms", "tflops", "flops"}}."""
    scale = 1 / math.sqrt(D)
    q, k, v, do, jagged = jagged_batch(B, H, T, D, device)
    full = torch.full((B,), T, device=device, dtype=torch.int64)
    fwd_flops = 4 * B * H * D * pairs_in_window(T, window, causal)
    jag_flops = 4 * H * D * sum(pairs_in_window(int(n), window, causal) for n in jagged.tolist())
    flash_flops = 4 * B * H * D * pairs_in_window(T, T, True)
    right = 0 if causal else window
    results = {}

    def record(name, fn, flops):
        ms = do_bench(fn, return_mode="median")
        # the kernels' own time too (do_bench's includes host time), in all and by kernel
        by_name = kernel_ms_by_name(fn)
        results[name] = {"ms": ms, "tflops": tflops(flops, ms), "flops": flops,
                         "kernel_ms": sum(by_name.values()), "kernels_ms": by_name}

    def ours(lengths, q=q, k=k, v=v, backward=False):
        def run():
            o, lse = wa.window_attention_forward(q, k, v, lengths, window, causal, scale)
            if backward:
                wa.window_attention_backward(do, q, k, v, o, lse, lengths, window, causal, scale)
        return run

    record("ours fwd", ours(full), fwd_flops)
    record("ours fwd+bwd", ours(full, backward=True), 3.5 * fwd_flops)
    record("ours jagged fwd", ours(jagged), jag_flops)
    record("ours jagged fwd+bwd", ours(jagged, backward=True), 3.5 * jag_flops)
    packed = pack_jagged((q, k, v, do), jagged)
    record("ours packed jagged fwd", ours_packed(*packed, window, causal, scale), jag_flops)
    record("ours packed jagged fwd+bwd", ours_packed(*packed, window, causal, scale, backward=True),
           3.5 * jag_flops)
    qm, km, vm = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (q, k, v))
    record("ours model-layout fwd", ours(full, qm, km, vm), fwd_flops)

    qg, kg, vg = (x.detach().requires_grad_() for x in (q, k, v))

    def in_band(b, h, q_idx, kv_idx):
        return (q_idx - kv_idx <= window) & (kv_idx - q_idx <= right)

    block_mask = create_block_mask(in_band, None, None, T, T, device=device)
    record("flex fwd", lambda: flex_attention(q, k, v, block_mask=block_mask, scale=scale),
           fwd_flops)

    def flex_fwd_bwd():
        out = flex_attention(qg, kg, vg, block_mask=block_mask, scale=scale)
        torch.autograd.grad(out, (qg, kg, vg), do)

    record("flex fwd+bwd", flex_fwd_bwd, 3.5 * fwd_flops)

    dense = band_mask(T, window, causal, device)
    record("sdpa mask fwd",
           lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=dense, scale=scale),
           fwd_flops)

    from torch.nn.attention import SDPBackend, sdpa_kernel

    def flash(backward):
        def run():
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                if backward:
                    out = F.scaled_dot_product_attention(qg, kg, vg, is_causal=True, scale=scale)
                    torch.autograd.grad(out, (qg, kg, vg), do)
                else:
                    F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
        return run

    record("flash causal fwd", flash(False), flash_flops)
    record("flash causal fwd+bwd", flash(True), 3.5 * flash_flops)
    return results


def chosen_configs():
    """Best config per autotuning key, for the record."""
    out = {}
    for name, table in (("fwd", wa._FWD), ("dq", wa._DQ), ("dkdv", wa._DKDV)):
        for tuner in table.values():
            for key, config in tuner.cache.items():
                out[f"{name} {key}"] = str(config)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_json = os.path.join(os.environ["OUT"], "bench_window.json") if os.environ.get("OUT") \
        else None
    parser.add_argument("--json", default=default_json, help="write all numbers here")
    parser.add_argument("--shapes", default="0,1,2", help="indices into SHAPES")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("bench_window.py needs a CUDA device")
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False

    from torch import _dynamo
    for limit in ("cache_size_limit", "recompile_limit"):  # Flex recompiles per shape and band
        if hasattr(_dynamo.config, limit):
            setattr(_dynamo.config, limit, 64)
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    flex = torch.compile(flex_attention, dynamic=False)

    errors = check_correctness(device)
    print("correctness, bf16 kernels vs fp32 reference (relative error, norm-wise):")
    print("  " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))

    rows = []
    header = (f"{'shape':<26}{'band':<7}{'variant':<24}{'ms':>9}{'TFLOP/s':>9}"
              f"{'x flex':>8}{'x flash':>9}{'kernel ms':>10}{'x flex k':>9}")
    print(header)
    print("-" * len(header))
    for index in (int(i) for i in args.shapes.split(",")):
        B, H, T, D, window = SHAPES[index]
        for causal in (True, False):
            results = bench_shape(B, H, T, D, window, causal, flex, create_block_mask, device)
            shape = f"B{B} H{H} T{T} D{D} W{window}"
            band = "causal" if causal else "bidir"
            for name, r in results.items():
                stage = "fwd+bwd" if name.endswith("fwd+bwd") else "fwd"
                # Speed-ups are time ratios (same useful work, except flash's own causal pairs).
                r["x_flex"] = results[f"flex {stage}"]["ms"] / r["ms"]
                r["x_flash_causal"] = results[f"flash causal {stage}"]["ms"] / r["ms"]
                kernel = f"{r['kernel_ms']:>10.3f}"
                if name.startswith("ours") and "jagged" not in name:   # same work as Flex's rows
                    r["x_flex_kernels"] = results[f"flex {stage}"]["kernel_ms"] / r["kernel_ms"]
                    kernel += f"{r['x_flex_kernels']:>9.2f}"
                print(f"{shape:<26}{band:<7}{name:<24}{r['ms']:>9.3f}{r['tflops']:>9.1f}"
                      f"{r['x_flex']:>8.2f}{r['x_flash_causal']:>9.2f}{kernel}")
                rows.append({"B": B, "H": H, "T": T, "D": D, "window": window, "causal": causal,
                             "variant": name, **r})
            for name in ("ours fwd+bwd", "flex fwd+bwd"):
                print(f"  {name} by kernel (ms a call): " + ", ".join(
                    f"{k[:40]} {v:.3f}" for k, v in sorted(results[name]["kernels_ms"].items(), key=lambda kv: -kv[1])))
            print("  jagged ÷ full, do_bench / kernel time: " + ", ".join(
                f"{k} {v[0]:.2f} / {v[1]:.2f}" for k, v in jagged_ratios(results).items()))
            print()
    configs = chosen_configs()
    for key, config in configs.items():
        print(f"autotuned {key}: {config}")

    if args.json:
        report = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": torch.cuda.get_device_name(),
            "torch": torch.__version__, "triton": triton.__version__,
            "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
            "timing": "triton.testing.do_bench median (ms); TFLOP/s on useful FLOPs; kernel_ms: "
                      "torch.profiler's GPU kernel time per call (kernels_ms: by kernel); x_flex_kernels: Flex's "
                      "kernel time over ours (full lengths)",
            "correctness_rel_err": errors, "rows": rows, "autotuned": configs,
        }
        write_text(args.json, json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    return check_status("bench_window", errors)


if __name__ == "__main__":
    sys.exit(main())
