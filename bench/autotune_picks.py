"""Which config each kernel runs, eager against torch.compile, at kunlun_60g's click tower.

    python3 bench/autotune_picks.py [--json PATH] [--cases seed_pooling gdpa window] [--old-seed-list]

Why. In the twentieth session the seed-pooling backward with the old config list took 771 µs a
call eagerly and 502 µs under torch.compile at the same shape (packed, jagged), with the same
configs on offer, as if Triton's autotuner (eager) and inductor's (which times a user kernel's
autotune configs in its own launcher) chose differently. They do not: run on the H200 in the
twenty-first session (BENCHMARKS.md, seed pooling), both chose the same config from the old list
(792 against 782 µs). The 502 µs had been a compile cache shared between two trees, which served
the new list's compiled graph to the old tree (the reason for the kernel files' _FILE_DIGEST and
bench/gpu_run.sh's cache per tree; here each variant has its own cache). The script stays as the
check that the benchmarks, which run eagerly, time the config the compiled models run. It prints,
for each case's forward + backward:

- the GPU kernel time of each kernel, eager and compiled (torch.profiler, after two warm calls);
- each eager autotuner's choice and the time it measured for every config (Autotuner.configs_timings);
- inductor's choice for each user kernel (its CachingAutotuner's launcher), and the timings it
  logged while choosing (torch._inductor.runtime.triton_heuristics at DEBUG);
- where the two choices differ: the eager kernel time with inductor's choice pinned.

--old-seed-list rebuilds the seed-pooling backward's autotuner with the nineteenth session's list
(2-stage triples, register budget 160) first, to reproduce the case above.
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "generated"))
from benchutil import kernel_ms_by_name, pinned, write_json  # noqa: E402

OLD_SEED_BWD = [(32, 8, 2), (16, 8, 2), (32, 4, 2), (64, 4, 2), (64, 8, 2)]   # before 4973d30
B, H, D, T, M, WINDOW, SEEDS = 256, 8, 64, 2048, 512, 256, 128                    # the click tower


class _Records(logging.Handler):
    """Keeps the messages of inductor's autotuning log."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def live(cls) -> list:
    """The objects of class `cls` the garbage collector tracks now. isinstance on a weak proxy
    whose referent is gone raises ReferenceError (inductor keeps such proxies): skipped."""
    out = []
    for obj in gc.get_objects():
        try:
            if isinstance(obj, cls):
                out.append(obj)
        except ReferenceError:
            continue
    return out


def autotuners():
    """Triton's eager autotuners alive now, by id."""
    from triton.runtime.autotuner import Autotuner
    return {id(a): a for a in live(Autotuner)}


def kernel_name(fn) -> str:
    while hasattr(fn, "fn"):
        fn = fn.fn
    return getattr(fn, "__name__", str(fn))


def eager_picks(tuners, seen: dict) -> list[dict]:
    """The choices made since `seen` ({autotuner id: keys it had then})."""
    out = []
    for ident, a in tuners.items():
        for key, config in a.cache.items():
            if key in seen.get(ident, ()):
                continue
            timings = getattr(a, "configs_timings", None) or {}
            out.append({"kernel": kernel_name(a.fn), "key": str(key)[:120], "config": str(config),
                        "timings_ms": {str(c): (t[0] if isinstance(t, (list, tuple)) else t)
                                       for c, t in timings.items()}})
    return out


def inductor_picks() -> list[dict]:
    from torch._inductor.runtime.triton_heuristics import CachingAutotuner
    out = []
    for obj in live(CachingAutotuner):
        if obj.launchers:
            out.append({"kernel": kernel_name(obj.fn), "config": str(obj.launchers[0].config),
                        "config_obj": obj.launchers[0].config})
    return out


def same_config(a, b) -> bool:
    return (a.kwargs == b.kwargs and a.num_warps == b.num_warps and a.num_stages == b.num_stages)


def make_case(name: str, pkg, device: str, gen: torch.Generator):
    """(a forward + backward closure taking the op, its kwargs) for one case, packed jagged rows."""
    ops = pkg.ops
    lengths = torch.randint(0, T + 1, (B,), generator=gen).to(device)
    starts = torch.cumsum(lengths, 0) - lengths
    n = int(lengths.sum())
    bf16 = dict(device=device, dtype=torch.bfloat16)
    if name == "seed_pooling":
        x = torch.randn(n, H * D, **bf16).requires_grad_()
        seeds = torch.randn(H, SEEDS, D, **bf16).requires_grad_()

        def call(op):
            kv = x.view(n, H, D)
            return op(seeds, kv, kv, lengths, D ** -0.5, backend="triton", starts=starts, max_len=T)
        return call, ops.seed_pooling
    if name == "gdpa":
        q = (torch.randn(n, H * D, **bf16) * D ** -0.25).requires_grad_()
        kv = (torch.randn(B, M, 2 * H * D, **bf16) * D ** -0.25).requires_grad_()

        def call(op):
            k, v = kv.view(B, M, 2, H, D).permute(2, 0, 3, 1, 4).unbind(0)
            return op(q.view(n, H, D), k, v, lengths, "gelu_tanh", 1.0 / M, backend="triton",
                      starts=starts, max_len=T)
        return call, ops.gdpa
    if name == "window":
        qkv = torch.randn(n, 3 * H * D, **bf16).requires_grad_()

        def call(op):
            q, k, v = qkv.view(n, 3, H, D).unbind(1)
            return op(q, k, v, lengths, WINDOW, False, "softmax", D ** -0.5, backend="triton",
                      starts=starts, max_len=T)
        return call, ops.window_attention
    raise ValueError(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, "autotune_picks.json") if out else None)
    parser.add_argument("--cases", nargs="*", default=["seed_pooling", "gdpa", "window"])
    parser.add_argument("--old-seed-list", action="store_true")
    parser.add_argument("--package", default="kunlun_60g")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("needs a GPU", file=sys.stderr)
        return 1
    import importlib
    pkg = importlib.import_module(args.package)
    pkg.ops = importlib.import_module(f"{args.package}.ops")
    if args.old_seed_list:
        sp = importlib.import_module(f"{args.package}.kernels.seed_pooling")
        sp._BWD_TRIPLES = OLD_SEED_BWD
        sp._bwd_tuned = sp._tuned(sp._bwd_kernel, sp._bwd_candidates, sp._KEY + ["SUM_KV"], budget=160,
                                  tiles=sp._bwd_tiles)
    records = _Records()
    log = logging.getLogger("torch._inductor.runtime.triton_heuristics")
    log.setLevel(logging.DEBUG)
    log.addHandler(records)
    start, rows = time.time(), []
    gen = torch.Generator().manual_seed(0)
    for name in args.cases:
        call, op = make_case(name, pkg, "cuda", gen)

        def step(fn):
            return lambda: fn().float().sum().backward()

        seen = {k: set(a.cache) for k, a in autotuners().items()}
        eager = step(lambda: call(op))
        eager(), eager()
        row = {"case": name, "eager_ms": kernel_ms_by_name(eager, 10)}
        tuners = autotuners()
        row["eager_picks"] = eager_picks(tuners, seen)
        del records.lines[:]
        compiled_op = torch.compile(op, fullgraph=True)
        compiled = step(lambda: call(compiled_op))
        compiled(), compiled()
        row["compiled_ms"] = kernel_ms_by_name(compiled, 10)
        picks = inductor_picks()
        row["inductor_picks"] = [{k: v for k, v in p.items() if k != "config_obj"} for p in picks]
        row["inductor_log"] = [line for line in records.lines if "config" in line.lower()][-60:]
        row["eager_with_inductor_pick_ms"] = {}
        for p in picks:
            for a in tuners.values():
                if kernel_name(a.fn) != p["kernel"] or not a.cache:
                    continue
                if any(same_config(c, p["config_obj"]) for c in a.cache.values()):
                    continue
                match = [c for c in a.configs if same_config(c, p["config_obj"])]
                if match:
                    row["eager_with_inductor_pick_ms"][f"{p['kernel']} {p['config']}"] = kernel_ms_by_name(
                        lambda: pinned(a, match[0], eager), 10)
        rows.append(row)
        write_json(args.json, rows)
        print(f"== {name}")
        for label in ("eager_ms", "compiled_ms"):
            print(f"  {label}: " + ", ".join(f"{k[:40]} {v * 1e3:.1f} us" for k, v in row[label].items()
                                             if "kernel" in k.lower()))
        for p in row["eager_picks"]:
            print(f"  eager pick {p['kernel']}: {p['config']}")
        for p in row["inductor_picks"]:
            print(f"  inductor pick {p['kernel']}: {p['config']}")
        for k, v in row["eager_with_inductor_pick_ms"].items():
            print(f"  eager with inductor's pick, {k}: " + ", ".join(
                f"{n[:40]} {t * 1e3:.1f} us" for n, t in v.items() if "kernel" in n.lower()))
        torch._dynamo.reset()
    write_json(args.json, rows, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
