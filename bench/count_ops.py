"""How many ops one training step of a generated model dispatches: forward, backward, optimizer.

    python3 bench/count_ops.py PACKAGE [--batch-size 1] [--autocast bf16|fp16|none]
                               [--layout packed|padded] [--stream fp32|compute] [--top 15] [--json]

Eager PyTorch pays host time per dispatched op; on the H200 the eager kunlun_60g step was
host-bound at batch 64 and below (about 320 ms per step whatever the batch, 2026-11-29). This
counts the ops exactly, on the CPU, with a TorchDispatchMode: each aten op and each custom op
(the attention ops count once each; what runs inside them is not seen). Run it from the repo root
with generated/ on PYTHONPATH.

The step is the one the package's bench runs on CUDA (bench.training: forward under autocast,
binary cross-entropy, backward, fused AdamW), rebuilt here phase by phase so that each phase is
counted apart; bench.training on the CPU would run fp32 without autocast and a foreach AdamW.
CPU autocast stands in for CUDA autocast, so the casts are counted. The attention ops run their
torch references (the CPU has no Triton kernels), which dispatch as the Triton ops do: one custom
op each. On a packed batch, though, the references take padded tensors, so each attention op is
wrapped in a scatter to padded and back (ops.to_padded, ops.to_packed) that the Triton ops, which
read packed rows, do not need: kunlun_60g at batch 1 counts 12,500 ops packed against 11,399
padded, and a CUDA step on packed rows dispatches fewer than the packed count.
"""
from __future__ import annotations

import argparse
import collections
import importlib
import json
import sys

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}
# the GEMM-class aten ops a step dispatches (matmul and linear decompose into these)
MATMUL_OPS = frozenset({"aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm"})


def matmuls(counts: collections.Counter) -> int:
    return sum(v for k, v in counts.items() if k in MATMUL_OPS)


class OpCounter(TorchDispatchMode):
    """Counts the ops dispatched while it is active, by name (`aten.mm`, `ns.gdpa`)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func.overloadpacket
        self.counts[f"{packet._qualified_op_name.split('::')[0]}.{packet.__name__}"] += 1
        return func(*args, **(kwargs or {}))


def count_step(package: str, batch_size: int, autocast: str, layout: str = "packed",
               stream: str = "fp32") -> dict[str, collections.Counter]:
    """{phase: Counter} for one training step after a warm-up step (optimizer state exists), on a
    packed or padded batch, with the towers' residual stream in fp32 or the compute dtype."""
    pkg = importlib.import_module(package)
    data = importlib.import_module(f"{package}.data")
    torch.manual_seed(0)
    model = pkg.Model(backend="torch", stream=stream)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)   # as the bench on CUDA
    batch = data.example_batch(batch_size, "cpu", seed=0, at_avg_len=True, packed=layout == "packed")
    dtype = AUTOCAST[autocast]
    phases = {"forward": OpCounter(), "backward": OpCounter(), "optimizer": OpCounter()}

    def step(count: bool) -> None:
        mode = (lambda name: phases[name]) if count else (lambda name: OpCounter())
        with mode("forward"):
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                out = model._forward(batch)    # Model.forward: the same under CUDA autocast
            loss = F.binary_cross_entropy_with_logits(out.float(), batch["labels"])
        opt.zero_grad(set_to_none=True)
        with mode("backward"):
            loss.backward()
        with mode("optimizer"):
            opt.step()
    step(count=False)
    step(count=True)
    return {name: counter.counts for name, counter in phases.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("package")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--autocast", choices=tuple(AUTOCAST), default="bf16")
    p.add_argument("--layout", choices=("packed", "padded"), default="packed",
                   help="the batch's event sequences (the bench's default: packed)")
    p.add_argument("--stream", choices=("fp32", "compute"), default="fp32",
                   help="the towers' residual stream (Model(stream=...))")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--json", action="store_true", help="print {phase: {op: count}}")
    args = p.parse_args(argv)
    counts = count_step(args.package, args.batch_size, args.autocast, args.layout, args.stream)
    if args.json:
        print(json.dumps({phase: dict(c.most_common()) for phase, c in counts.items()}, indent=1))
        return 0
    total = sum(sum(c.values()) for c in counts.values())
    print(f"{args.package}, batch {args.batch_size}, {args.layout}, autocast {args.autocast}, {args.stream} stream: "
          f"{total} ops per training step, {sum(matmuls(c) for c in counts.values())} of them GEMMs "
          f"({', '.join(sorted(MATMUL_OPS))})")
    for phase, c in counts.items():
        print(f"  {phase:<10}{sum(c.values()):>7} ({matmuls(c)} GEMMs)   "
              + ", ".join(f"{k} {v}" for k, v in c.most_common(args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
