"""The first compiled training step of a generated package on a cold cache, with the autotuner watched.

Why: in the seventh session kunlun_6g compiled per block (packed, compute stream, batch 1024) failed
its first step on a fresh H200 in backward: "a LongTensor [1024] ... is at version 106; expected
version 0". Inductor autotunes a kernel with several configs on its first call. When the memory
headroom (peak allocated less allocated) is smaller than a buffer the kernel writes in place, it
copies the buffer to the CPU and writes it back with `copy_` after each timing run
(`CachingAutotuner.copy_args_to_cpu_if_needed`, on in backward and inference graphs). `copy_`
bumps the tensor's version, and autograd had saved that tensor. With the caches warm (no
autotuning) or that copy-back off, the same step passes.

The cause, found with this script in the eleventh session (bench/results/2026-11-30-h200-s11/
call4): the buffer was a window kernel's LENGTHS. torch believed the kernels wrote their lengths
and starts (its IR analysis counts every pointer handed to a helper whose result feeds a store
address as written), so the compiled backward cloned them and copied the clones back into the
caller's tensors; the autotuner's timing of that copy bumped the saved tensor's version. The
kernels now load lengths and starts themselves (tests/test_kernel_mutation.py), and the watched
cold step passes (call5). The script stays as the check for a recurrence.

This script runs two training steps on fresh inductor and Triton caches, prints every such
copy-back (kernel, argument, shape, dtype, the generated file and line that launched it) and copies
those generated files to --out. `--no-swap` turns the copy-back off, to check that it is the cause.
The candidate fixes: `--inductor-option triton.autotune_pointwise=False` (one config per pointwise
kernel: nothing to autotune, nothing to copy back) and `--functorch-option donated_buffer=False`
(AOT autograd no longer hands saved tensors to the backward graph as buffers to write in place,
which is how a backward kernel comes to have an in-out int64 argument at all).

  python3 bench/first_step_check.py kunlun_6g --batch-size 1024 --out $OUT/first_step
  python3 bench/first_step_check.py kunlun_6g --batch-size 1024 --no-swap
"""
from __future__ import annotations

import argparse
import functools
import importlib
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"an option takes KEY=VALUE, got {text!r}")
    parsed = {"True": True, "False": False}.get(value, value)
    return key, int(value) if value.lstrip("-").isdigit() else parsed


def set_functorch_options(texts: list[str]) -> dict[str, object]:
    """Set torch._functorch.config.KEY = VALUE for each text; an unknown key is an error."""
    import torch._functorch.config as functorch_config
    options = dict(_option(text) for text in texts)
    for key, value in options.items():
        if not hasattr(functorch_config, key):
            raise SystemExit(f"torch._functorch.config has no option {key!r}")
        setattr(functorch_config, key, value)
    return options


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("package", help="a package under generated/, e.g. kunlun_6g")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--layout", choices=("packed", "padded"), default="packed")
    ap.add_argument("--stream", choices=("fp32", "compute"), default="compute")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--no-swap", action="store_true", help="never copy mutated buffers to the CPU while autotuning")
    ap.add_argument("--inductor-option", action="append", default=[], metavar="KEY=VALUE",
                    help="an inductor option for every torch.compile (True/False/ints are parsed)")
    ap.add_argument("--functorch-option", action="append", default=[], metavar="KEY=VALUE",
                    help="set torch._functorch.config.KEY (AOT autograd), e.g. donated_buffer=False")
    ap.add_argument("--out", type=Path, help="copy the generated files that launched a copy-back here")
    args = ap.parse_args(argv)

    cache = tempfile.mkdtemp(prefix="first-step-")          # cold caches: this process autotunes
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"{cache}/inductor"
    os.environ["TRITON_CACHE_DIR"] = f"{cache}/triton"
    import torch
    from torch._inductor.runtime import triton_heuristics

    original = triton_heuristics.CachingAutotuner.copy_args_to_cpu_if_needed
    sources: set[str] = set()

    @functools.wraps(original)
    def watched(self, *a, **kw):
        if args.no_swap:
            return {}
        copies = original(self, *a, **kw)
        if copies:
            launcher = next((f for f in reversed(traceback.extract_stack()) if f.filename.startswith(cache)), None)
            where = f"{launcher.filename}:{launcher.lineno}" if launcher else "?"
            for name, (arg, _) in copies.items():
                print(f"copy-back {self.inductor_meta.get('kernel_name')} {name} {tuple(arg.shape)} {arg.dtype} "
                      f"version {arg._version} from {where}", flush=True)
            if launcher:
                sources.add(launcher.filename)
        return copies

    triton_heuristics.CachingAutotuner.copy_args_to_cpu_if_needed = watched
    options = dict(_option(text) for text in args.inductor_option)
    if options:
        compile_ = torch.compile
        torch.compile = functools.partial(compile_, options=options)
        print(f"inductor options: {options}", flush=True)
    for key, value in set_functorch_options(args.functorch_option).items():
        print(f"functorch option: {key}={value!r}", flush=True)
    sys.path.insert(0, str(ROOT / "generated"))
    bench = importlib.import_module(f"{args.package}.bench")
    _, _, step = bench.training("cuda", args.batch_size, "auto", True, "blocks", args.layout, args.stream)
    failures = 0
    for i in range(args.steps):
        try:
            step()
            torch.cuda.synchronize()
            print(f"step {i}: ok", flush=True)
        except Exception as e:                                # noqa: BLE001 (report it, go on)
            failures += 1
            print(f"step {i}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
    if args.out and sources:
        args.out.mkdir(parents=True, exist_ok=True)
        for src in sorted(sources):
            shutil.copy(src, args.out / Path(src).name)
        print(f"{len(sources)} generated file(s) copied to {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
