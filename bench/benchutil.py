"""What the bench scripts share: eager launches without wrap_triton's dispatch, the one-pass
against two-pass backward comparison, and JSON output that survives a timeout."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import torch

TOLERANCE = 1e-2   # bf16 against an fp32 reference, norm-wise (as the kernels' GPU tests)


def gpu_script_args(doc: str, json_name: str) -> argparse.Namespace | None:
    """--json PATH (default $OUT/json_name when OUT is set) for a GPU-only script; None (after
    saying so) where there is no CUDA GPU."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, json_name) if out else None)
    parser.add_argument("--full", action="store_true",
                        help="also full lengths, padded (default: jagged packed rows, the models' "
                             "layout; each layout autotunes its kernels apart)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return None
    return args


def direct_launch():
    """Eager kernel launches without wrap_triton's higher-order-op dispatch (about 1 ms of host
    time a launch), as the models' triton_ops launch them in eager mode."""
    try:
        from torch._library.triton import set_wrap_triton_enabled
    except ImportError:   # an older torch: wrap_triton launches directly anyway
        return contextlib.nullcontext()
    return set_wrap_triton_enabled(False)


def kernel_ms_by_name(fn, reps: int = 20) -> dict[str, float]:
    """{kernel name: milliseconds per fn() call} of the GPU kernels (and copies) fn() runs, from
    torch.profiler's device time, after one warm call: no host time between launches, which
    do_bench's wall-clock median includes."""
    from torch.profiler import ProfilerActivity, profile
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    return {e.key: e.self_device_time_total / 1e3 / reps for e in prof.key_averages()
            if e.device_type == torch.autograd.DeviceType.CUDA}


def pinned(tuner, config, fn):
    """fn() with a Triton autotuner limited to one config (run without benchmarking), its configs
    and choices restored after: a kernel timed at a config of our choosing through the host code
    that launches it."""
    saved = tuner.configs, dict(tuner.cache)
    if config.pre_hook is None:   # the tuner's own hook (the seed-pooling forward's sizes its TMA boxes)
        config.pre_hook = tuner.configs[0].pre_hook
    tuner.configs, tuner.cache = [config], {}
    try:
        return fn()
    finally:
        tuner.configs, tuner.cache = saved


def kernel_ms(fn, reps: int = 20) -> float:
    """Milliseconds of GPU kernels per fn() call (kernel_ms_by_name, summed)."""
    return sum(kernel_ms_by_name(fn, reps).values())


def gdpa_inputs(B: int, H: int, T: int, S: int, D: int, device: str = "cuda", dtype=torch.bfloat16):
    """(q, k, v, dO) for a GDPA benchmark, q [B, H, T, D], k and v [B, H, S, D]: q and k scaled by
    D^-1/4, so the scores have unit variance whatever D."""
    q = (torch.randn(B, H, T, D, device=device) * D ** -0.25).to(dtype)
    k = (torch.randn(B, H, S, D, device=device) * D ** -0.25).to(dtype)
    return q, k, torch.randn(B, H, S, D, device=device).to(dtype), torch.randn(B, H, T, D, device=device).to(dtype)


def gdpa_reference(q, k, v, grad_out, scale: float):
    """(O, dQ, dK, dV) of O = scale · gelu_tanh(q·kᵀ) · v in float32, full lengths."""
    qf, kf, vf = (x.detach().float().requires_grad_() for x in (q, k, v))
    o = torch.nn.functional.gelu(qf @ kf.mT, approximate="tanh") @ vf * scale
    o.backward(grad_out.float())
    return o.detach(), qf.grad, kf.grad, vf.grad


def kernel_versions(parser: argparse.ArgumentParser, items: list[str], prefix: str) -> tuple[dict, dict]:
    """({label: path}, {label: module}) of an A/B script's `--kernel LABEL=PATH` items, each kernel
    file imported by path as its own module; a missing label or file is a parser error (one line,
    exit status 2)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))   # opsload
    from opsload import import_file
    bad = [item for item in items if not item.partition("=")[0] or not Path(item.partition("=")[2]).is_file()]
    if bad:
        parser.error(f"--kernel {bad[0]!r}: expected LABEL=PATH of an existing kernel file")
    paths = dict(item.partition("=")[::2] for item in items)
    return paths, {label: import_file(_with_siblings(Path(path)), f"{prefix}_{label}")
                   for label, path in paths.items()}


def _with_siblings(path: Path) -> Path:
    """`path` where the kernel files it loads beside itself (bound_launch.py, ...) are found: as it is
    when they lie beside it, else a copy in a fresh directory with the tree's templates/kernels files
    it lacks beside it (an older version saved elsewhere, an edited copy in a temporary directory)."""
    import shutil
    import tempfile
    kernels = Path(__file__).resolve().parent.parent / "templates" / "kernels"
    missing = [p for p in kernels.glob("*.py") if not (path.parent / p.name).exists()]
    if not missing:
        return path
    home = Path(tempfile.mkdtemp(prefix="kunlunc_kernel_version_"))
    for sibling in missing:
        shutil.copy(sibling, home / sibling.name)
    for sibling in path.parent.glob("*.py"):     # its own siblings, where it has them
        if sibling != path and (kernels / sibling.name).exists():
            shutil.copy(sibling, home / sibling.name)
    copy = home / path.name
    shutil.copy(path, copy)
    return copy


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """‖x − ref‖ / ‖ref‖ in float32."""
    return ((x.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30)).item()


def compare_backwards(two_pass, one_pass) -> dict:
    """Times two_pass() and one_pass() (each returning (dq, dk, dv)) and checks one_pass's
    gradients against two_pass's (the kernels' tests and bench_window/bench_gdpa check those
    against fp32; an fp32 run here would autotune both backwards again, minutes of compiling);
    one row of the one-pass experiments' tables."""
    import triton
    errors = {name: rel_err(x, r) for name, x, r in zip(("dq", "dk", "dv"), one_pass(), two_pass())}
    two_ms = triton.testing.do_bench(two_pass, return_mode="median")
    one_ms = triton.testing.do_bench(one_pass, return_mode="median")
    return {"two_pass_ms": two_ms, "fused_ms": one_ms, "speedup": two_ms / one_ms,
            "rel_diff_vs_two_pass": errors, "correct": max(errors.values()) <= TOLERANCE}


def describe_comparison(name: str, result: dict) -> str:
    """One layout's comparison as a line fragment."""
    errors = ", ".join(f"{n} {e:.1e}" for n, e in result["rel_diff_vs_two_pass"].items())
    return (f"{name} two-pass {result['two_pass_ms']:.3f} ms, fused {result['fused_ms']:.3f} ms "
            f"({result['speedup']:.2f}x), differences {errors}{'' if result['correct'] else ' WRONG'}")


def over_tolerance(errors: dict, bound: float = TOLERANCE) -> dict:
    """The entries of a correctness check ({name: relative error}) above bound, or NaN."""
    return {name: err for name, err in errors.items() if not err <= bound}


def check_status(script: str, errors: dict) -> int:
    """A bench's exit status from its bf16 correctness check: 1, after saying which entries are
    over TOLERANCE (or NaN), so that a wrong kernel cannot pass for a fast one; else 0. Called
    last, after the bench has written its numbers."""
    wrong = over_tolerance(errors)
    if wrong:
        print(f"{script}: bf16 check over {TOLERANCE:g}: {wrong}", file=sys.stderr)
        return 1
    return 0


def write_text(path: str, text: str) -> None:
    """text at path, its folder made first (a bench's --json may point into a fresh $OUT)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def write_json(path: str | None, rows: list, start: float | None = None, **extra) -> None:
    """rows as JSON at path (nothing without a path). start None: partial, written after each
    shape so that a timeout or a hang in a later one keeps what was measured; else the final
    file, with the device, versions, date and seconds since start."""
    if not path:
        return
    if start is None:
        write_text(path, json.dumps({"rows": rows, "partial": True}, indent=1))
        return
    import triton
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "triton": triton.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              **extra, "rows": rows, "seconds": time.time() - start}
    write_text(path, json.dumps(result, indent=1))
    print(f"wrote {path}")
