"""GDPA kernels against the naive PyTorch path and SDPA flash, at the shapes of perf-baselines.md.

Run from anywhere on a CUDA host (needs only torch and triton):

    python bench/bench_gdpa.py [--json PATH] [--rep MS] [--heads H --head-dim D]

H=4, D=128 (the baselines'; --heads 8 --head-dim 64 is most of the presets' PFFN heads), gelu_tanh,
bf16, random data. Times are medians of triton.testing.do_bench. TFLOP/s
counts useful FLOPs: 4·B·H·T·S·D forward, 3.5x that for forward+backward; the jagged rows count
valid pairs only. Jagged (lengths uniform in [0, T]) is timed in both layouts: padded [B, H, T, D]
and packed rows [N, H, D], the generated models' default, each against its own full-length time. "naive" is matmul(gelu_tanh(matmul(q, kᵀ)), v) · scale in eager PyTorch;
"flash" is softmax attention through SDPA's FlashAttention backend on the same shapes (the issue's
peer); the cuDNN backend and SDPA's own choice (no backend forced) are timed beside it, since
perf-baselines.md's "SDPA flash" figures sit far above what the FlashAttention backend gives. Ratios are
TFLOP/s ratios of one run (compare those, not absolute figures, across runs). Also checks the
kernels once against an fp32 reference and prints the error. JSON goes to --json (default
$OUT/bench_gdpa.json when OUT is set).
"""
import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
import triton
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import check_status, gdpa_inputs, kernel_ms, write_text  # noqa: E402

KERNELS = Path(__file__).resolve().parent.parent / "templates" / "kernels" / "gdpa.py"
H, D, ACT = 4, 128, "gelu_tanh"
SHAPES = [  # (kind, B, T, S)
    ("self", 1152, 256, 256), ("self", 1152, 512, 512), ("self", 1152, 1024, 1024),
    ("self", 288, 2048, 2048),
    ("cross", 1152, 512, 256), ("cross", 1152, 1024, 256), ("cross", 1152, 2048, 256),
]
FWD_BWD = 3.5  # attention forward + backward = 3.5 x forward (perf-baselines.md)


def set_heads(heads: int, head_dim: int) -> None:
    """Every shape's head count and head dim (module-wide, as the functions below read them)."""
    global H, D
    H, D = heads, head_dim


def load_kernels():
    spec = importlib.util.spec_from_file_location("gdpa_kernels", KERNELS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gdpa = load_kernels()
DEVICE = "cuda"


# The kernels run through torch.library.triton_op, as the generated ops module runs them: in
# eager mode triton_op launches them directly, whereas a bare wrap_triton call goes through a
# higher-order-op dispatch that costs about 1 ms of host time per launch.
@torch.library.triton_op("kunlunc_bench::gdpa_forward", mutates_args=())
def gdpa_forward_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_lengths: torch.Tensor,
                    kv_lengths: Optional[torch.Tensor], activations: str, scale: float,
                    window: int, causal: bool, q_starts: Optional[torch.Tensor] = None,
                    max_len: int = -1) -> torch.Tensor:
    return gdpa.gdpa_forward(q, k, v, q_lengths, kv_lengths, activations, scale, window, causal,
                             q_starts, None if q_starts is None else max_len)


@torch.library.triton_op("kunlunc_bench::gdpa_backward", mutates_args=())
def gdpa_backward_op(grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     q_lengths: torch.Tensor, kv_lengths: Optional[torch.Tensor], activations: str,
                     scale: float, window: int, causal: bool, q_starts: Optional[torch.Tensor] = None,
                     max_len: int = -1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return gdpa.gdpa_backward(grad_out, q, k, v, q_lengths, kv_lengths, activations, scale,
                              window, causal, q_starts, None if q_starts is None else max_len)


def median_ms(fn, rep: int, grad_to_none=None) -> float:
    return triton.testing.do_bench(fn, warmup=25, rep=rep, grad_to_none=grad_to_none,
                                   return_mode="median")


def naive(q, k, v, scale):
    return torch.matmul(F.gelu(torch.matmul(q, k.mT), approximate="tanh"), v) * scale


def sdpa_peer(backend):
    """Softmax attention through SDPA on `backend` (None: SDPA picks the backend itself)."""
    def attend(q, k, v):
        if backend is None:
            return F.scaled_dot_product_attention(q, k, v)
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v)
    return attend


flash = sdpa_peer(SDPBackend.FLASH_ATTENTION)   # the peer
# Other SDPA peers, timed beside the FlashAttention backend: which one perf-baselines.md measured
# is not recorded there.
SDPA_PEERS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "sdpa_default": None}


def time_or_none(fn, rep, grad_to_none=None):
    """median_ms, or None where the backend refuses these inputs (not built, unsupported shape)."""
    try:
        return median_ms(fn, rep, grad_to_none)
    except RuntimeError as err:
        print(f"    peer skipped: {str(err).splitlines()[0][:120]}", flush=True)
        return None


def fwd_bwd(forward, grad_out, *inputs):
    def step():
        forward(*inputs).backward(grad_out)
    return step


def inputs(B, T, S, dtype=torch.bfloat16, grad=False):
    """q, k, v, grad_out at this module's H and D (benchutil.gdpa_inputs); q, k, v requiring grad
    if `grad`."""
    q, k, v, grad_out = gdpa_inputs(B, H, T, S, D, DEVICE, dtype)
    return [x.requires_grad_(grad) for x in (q, k, v)] + [grad_out]


def kernel_steps(q, k, v, grad_out, q_lengths, kv_lengths, scale, q_starts=None, max_len=-1):
    """(forward, forward + backward) through the Triton kernels, as autograd would run them;
    q_starts given: q and grad_out are packed rows [N, H, D] (see packed_rows)."""
    def forward():
        return gdpa_forward_op(q, k, v, q_lengths, kv_lengths, ACT, scale, -1, False, q_starts, max_len)

    def forward_backward():
        forward()
        return gdpa_backward_op(grad_out, q, k, v, q_lengths, kv_lengths, ACT, scale, -1, False,
                                q_starts, max_len)
    return forward, forward_backward


def packed_rows(lengths: torch.Tensor, dtype=torch.bfloat16):
    """(q, grad_out, starts) for the packed layout the generated models use: the examples' query
    rows back to back, [N, H, D] with N = sum(lengths), and each example's first row."""
    starts = torch.cumsum(lengths, 0) - lengths
    n = int(lengths.sum())
    q = (torch.randn(n, H, D, device=DEVICE) * D ** -0.25).to(dtype)
    return q, torch.randn(n, H, D, device=DEVICE).to(dtype), starts


def jagged_kernel_ratios(kernel: dict) -> dict:
    """Jagged over full-length GPU kernel time (no host time), padded and packed, forward and
    forward+backward: the jagged target (≤ 0.6) measured on the kernels alone."""
    return {f"{prefix}jagged_kernel_vs_full_{mode}": kernel[f"{prefix}jagged_{mode}"] / kernel[f"{full}_{mode}"]
            for prefix, full in (("", "gdpa"), ("packed_", "packed")) for mode in ("fwd", "fwd_bwd")}


def bench_shape(kind, B, T, S, rep) -> dict:
    scale = 1.0 / T
    flops = 4 * B * H * T * S * D
    q, k, v, grad_out = inputs(B, T, S)
    full = torch.full((B,), T, dtype=torch.int64, device=DEVICE)
    kv_full = full if kind == "self" else None  # self: kv_lengths = lengths; cross: the PFFN
    ms, kernel = {}, {}   # kernel: torch.profiler's GPU kernel time per call, ours only

    def timed(name, fwd, both):
        ms[f"{name}_fwd"], ms[f"{name}_fwd_bwd"] = median_ms(fwd, rep), median_ms(both, rep)
        kernel[f"{name}_fwd"], kernel[f"{name}_fwd_bwd"] = kernel_ms(fwd), kernel_ms(both)

    timed("gdpa", *kernel_steps(q, k, v, grad_out, full, kv_full, scale))

    jagged = torch.randint(0, T + 1, (B,), device=DEVICE)
    valid_pairs = int((jagged * (jagged if kind == "self" else S)).sum())
    timed("jagged", *kernel_steps(q, k, v, grad_out, jagged, jagged if kind == "self" else None, scale))
    # The packed layout (the generated models' default): the query rows alone, full and jagged.
    for name, lengths in (("packed", full), ("packed_jagged", jagged)):
        q_rows, grad_rows, starts = packed_rows(lengths)
        timed(name, *kernel_steps(q_rows, k, v, grad_rows, lengths, lengths if kind == "self" else None,
                                  scale, starts, T))

    with torch.no_grad():
        ms["naive_fwd"] = median_ms(lambda: naive(q, k, v, scale), rep)
        ms["flash_fwd"] = median_ms(lambda: flash(q, k, v), rep)
        for name, backend in SDPA_PEERS.items():
            ms[f"{name}_fwd"] = time_or_none(lambda: sdpa_peer(backend)(q, k, v), rep)
    for x in (q, k, v):
        x.requires_grad_(True)
    ms["naive_fwd_bwd"] = median_ms(fwd_bwd(lambda *a: naive(*a, scale), grad_out, q, k, v), rep,
                                    grad_to_none=[q, k, v])
    ms["flash_fwd_bwd"] = median_ms(fwd_bwd(flash, grad_out, q, k, v), rep, grad_to_none=[q, k, v])
    for name, backend in SDPA_PEERS.items():
        ms[f"{name}_fwd_bwd"] = time_or_none(fwd_bwd(sdpa_peer(backend), grad_out, q, k, v), rep,
                                             grad_to_none=[q, k, v])

    def tflops(name):
        work = 4 * H * D * valid_pairs if "jagged" in name else flops
        if ms[name] is None:
            return None
        return work * (FWD_BWD if name.endswith("fwd_bwd") else 1) / (ms[name] * 1e-3) / 1e12

    row = {"kind": kind, "B": B, "T": T, "S": S, "H": H, "D": D, "ms": ms, "kernel_ms": kernel,
           "tflops": {name: tflops(name) for name in ms},
           "valid_fraction": valid_pairs / (B * T * S)}
    tf = row["tflops"]
    row["ratios"] = {
        "fwd_vs_naive": tf["gdpa_fwd"] / tf["naive_fwd"],
        "fwd_vs_flash": tf["gdpa_fwd"] / tf["flash_fwd"],
        "fwd_bwd_vs_naive": tf["gdpa_fwd_bwd"] / tf["naive_fwd_bwd"],
        "fwd_bwd_vs_flash": tf["gdpa_fwd_bwd"] / tf["flash_fwd_bwd"],
        "jagged_time_vs_full_fwd": ms["jagged_fwd"] / ms["gdpa_fwd"],
        "jagged_time_vs_full_fwd_bwd": ms["jagged_fwd_bwd"] / ms["gdpa_fwd_bwd"],
        "packed_jagged_time_vs_full_fwd": ms["packed_jagged_fwd"] / ms["packed_fwd"],
        "packed_jagged_time_vs_full_fwd_bwd": ms["packed_jagged_fwd_bwd"] / ms["packed_fwd_bwd"],
        **jagged_kernel_ratios(kernel),
    }
    for name in SDPA_PEERS:
        for mode in ("fwd", "fwd_bwd"):
            peer = tf[f"{name}_{mode}"]
            row["ratios"][f"{mode}_vs_{name}"] = None if peer is None else tf[f"gdpa_{mode}"] / peer
    row["configs"] = {name: str(gdpa._tuned(name, "", True).best_config)  # bf16 D <= 128 lists
                      for name in ("fwd", "dkdv", "dq")}
    return row


# ----------------------------------------------------------------------------- correctness

def reference(q, k, v, q_lengths, kv_lengths, scale, window):
    """fp32 dense-mask GDPA with autograd (padding zeroed, disallowed pairs dropped)."""
    T, S = q.shape[2], k.shape[2]
    q_valid = torch.arange(T, device=DEVICE) < q_lengths[:, None]
    kv_valid = torch.arange(S, device=DEVICE) < kv_lengths[:, None]
    allowed = q_valid[:, None, :, None] & kv_valid[:, None, None, :]
    if window >= 0:
        behind = torch.arange(T, device=DEVICE)[:, None] - torch.arange(S, device=DEVICE)
        allowed = allowed & (behind.abs() <= window)
    hidden = torch.where(allowed, F.gelu(q @ k.mT, approximate="tanh"), 0) * scale
    return (hidden @ v).masked_fill(~q_valid[:, None, :, None], 0)


def check_correctness(T: int = 300, dtype=torch.bfloat16) -> dict:
    """bf16 kernels vs an fp32 reference on one jagged self-attention and one PFFN shape."""
    errors = {}
    for name, (S, window) in {"self_window": (T, 40), "pffn": (96, -1)}.items():
        q, k, v, grad_out = inputs(8, T, S, dtype)
        lengths = torch.randint(0, T + 1, (8,), device=DEVICE)
        kv_lengths = lengths if S == T else torch.full((8,), S, device=DEVICE)
        out = gdpa_forward_op(q, k, v, lengths, kv_lengths, ACT, 1 / T, window, False)
        grads = gdpa_backward_op(grad_out, q, k, v, lengths, kv_lengths, ACT, 1 / T, window, False)
        q32, k32, v32 = (x.float().requires_grad_() for x in (q, k, v))
        ref = reference(q32, k32, v32, lengths, kv_lengths, 1 / T, window)
        ref.backward(grad_out.float())
        for label, got, want in zip(("out", "dq", "dk", "dv"), (out, *grads),
                                    (ref, q32.grad, k32.grad, v32.grad)):
            errors[f"{name}.{label}"] = ((got.float() - want).norm() / want.norm()).item()
    return errors


# ----------------------------------------------------------------------------- report

def print_table(rows) -> None:
    head = (f"{'shape (B,T,S)':<24}{'gdpa':>7}{'naive':>7}{'flash':>7}{'/naive':>8}{'/flash':>8}"
            f" |{'gdpa':>7}{'naive':>7}{'flash':>7}{'/naive':>8}{'/flash':>8}"
            f" |{'jag fwd':>8}{'jag f+b':>8}{'t/full':>7} |{'packed':>7}{'t/full':>7}")
    print("TFLOP/s (useful FLOPs); forward | forward+backward | jagged (valid pairs only; t/full:"
          " forward+backward time against full lengths) | packed rows: forward TFLOP/s, jagged t/full")
    print(head)
    for r in rows:
        tf, ra = r["tflops"], r["ratios"]
        print(f"{r['kind']:<6}{r['B']:>5},{r['T']:>5},{r['S']:>5}   "
              f"{tf['gdpa_fwd']:>7.0f}{tf['naive_fwd']:>7.0f}{tf['flash_fwd']:>7.0f}"
              f"{ra['fwd_vs_naive']:>7.2f}x{ra['fwd_vs_flash']:>7.2f}x |"
              f"{tf['gdpa_fwd_bwd']:>7.0f}{tf['naive_fwd_bwd']:>7.0f}{tf['flash_fwd_bwd']:>7.0f}"
              f"{ra['fwd_bwd_vs_naive']:>7.2f}x{ra['fwd_bwd_vs_flash']:>7.2f}x |"
              f"{tf['jagged_fwd']:>8.0f}{tf['jagged_fwd_bwd']:>8.0f}"
              f"{ra['jagged_time_vs_full_fwd_bwd']:>7.2f} |"
              f"{tf['packed_fwd']:>7.0f}{ra['packed_jagged_time_vs_full_fwd_bwd']:>7.2f}")
    print("jagged ÷ full by GPU kernel time (profiler; no host time), forward / forward+backward:")
    for r in rows:
        ra = r["ratios"]
        print(f"{r['kind']:<6}{r['B']:>5},{r['T']:>5},{r['S']:>5}   padded "
              f"{ra['jagged_kernel_vs_full_fwd']:.2f} / {ra['jagged_kernel_vs_full_fwd_bwd']:.2f}, packed "
              f"{ra['packed_jagged_kernel_vs_full_fwd']:.2f} / {ra['packed_jagged_kernel_vs_full_fwd_bwd']:.2f}")
    print("SDPA peers, TFLOP/s forward / forward+backward (GDPA's ratio to each): flash backend,"
          " cuDNN backend, SDPA's own choice")

    def cell(r, peer):
        tf, ra = r["tflops"], r["ratios"]
        if tf[f"{peer}_fwd"] is None or tf[f"{peer}_fwd_bwd"] is None:
            return f"{'n/a':>26}"
        return (f"{tf[f'{peer}_fwd']:>5.0f} /{tf[f'{peer}_fwd_bwd']:>4.0f}"
                f" ({ra[f'fwd_vs_{peer}']:.2f}x /{ra[f'fwd_bwd_vs_{peer}']:.2f}x)")
    for r in rows:
        print(f"{r['kind']:<6}{r['B']:>5},{r['T']:>5},{r['S']:>5}   "
              + " | ".join(cell(r, peer) for peer in ("flash", *SDPA_PEERS)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out_dir = os.environ.get("OUT")
    default_json = os.path.join(out_dir, "bench_gdpa.json") if out_dir else None
    parser.add_argument("--json", default=default_json, help="where to write the numbers")
    parser.add_argument("--rep", type=int, default=100, help="do_bench repetition time, ms")
    parser.add_argument("--heads", type=int, default=H,
                        help=f"heads (default {H}, as the baselines; the presets' PFFNs run 4-8)")
    parser.add_argument("--head-dim", type=int, default=D, choices=(16, 32, 64, 128),
                        help=f"head dim (default {D}, as the baselines; most preset PFFN heads are 64)")
    args = parser.parse_args()
    set_heads(args.heads, args.head_dim)
    if not torch.cuda.is_available():
        print("needs a CUDA device", file=sys.stderr)
        return 1
    start = time.time()
    errors = check_correctness()
    print("bf16 kernels vs fp32 reference, relative error:",
          ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    rows = []
    for shape in SHAPES:
        rows.append(bench_shape(*shape, rep=args.rep))
        print(f"  {shape}: {time.time() - start:.0f} s, configs {rows[-1]['configs']}", flush=True)
        torch.cuda.empty_cache()
    print_table(rows)
    result = {
        "device": torch.cuda.get_device_name(), "torch": torch.__version__,
        "triton": triton.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv), "activation": ACT, "dtype": "bfloat16",
        "correctness_rel_err": errors, "rows": rows, "seconds": time.time() - start,
    }
    if args.json:
        write_text(args.json, json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    print(f"total {time.time() - start:.0f} s")
    return check_status("bench_gdpa", errors)


if __name__ == "__main__":
    sys.exit(main())
