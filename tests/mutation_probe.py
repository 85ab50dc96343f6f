"""Which arguments torch.compile believes a Triton kernel writes (tests/test_kernel_mutation.py).

    python3 tests/mutation_probe.py KERNEL_FILE LAUNCHES.pt

LAUNCHES.pt holds [(kernel name, {argument: value})]; prints one JSON line: per launch, the names
torch's own analysis reports as written. It compiles the kernels to Triton IR for
sm_90, which needs Triton's NVIDIA backend but no GPU; it must run without TRITON_INTERPRET (the
analysis reads compiled JITFunctions, and Triton's own library functions are decorated once, at
import). An analysis that fails is an error here, not torch's silent "every input is mutated".
"""
from __future__ import annotations

import importlib.util
import json
import logging
import sys

import torch
import triton
from torch._higher_order_ops import triton_kernel_wrap


class Hopper:
    """The one thing torch's IR generation asks of Triton's driver: the target to compile for."""

    def get_current_target(self):
        from triton.backends.compiler import GPUTarget
        return GPUTarget("cuda", 90, 32)


class _Raise(logging.Handler):
    """torch logs a failed analysis as a warning and assumes every input mutated: fail instead."""

    def emit(self, record):
        if "Encountered an exception in identify_" in record.getMessage():
            raise RuntimeError(f"torch's analysis failed: {record.getMessage()}")


def _written(kernel, args: dict) -> list[str]:
    """torch's answer: identify_accessed_tensors (torch 2.13) or identify_mutated_tensors (the
    H200's torch 2.11, the same analysis before reads were added)."""
    if hasattr(triton_kernel_wrap, "identify_accessed_tensors"):
        accesses = triton_kernel_wrap.identify_accessed_tensors(kernel, args, {})
        return [dep.name for dep in accesses.read_writes.writes]
    return list(triton_kernel_wrap.identify_mutated_tensors(kernel, args, {}))


def main(kernel_file: str, launches_file: str) -> None:
    if triton.knobs.runtime.interpret:
        raise SystemExit("run without TRITON_INTERPRET: the analysis needs compiled kernels")
    spec = importlib.util.spec_from_file_location("_kunlunc_mutation_probe", kernel_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    launches = torch.load(launches_file, weights_only=False)
    triton_kernel_wrap.log.addHandler(_Raise(level=logging.WARNING))
    triton.runtime.driver.set_active(Hopper())
    writes = []
    for name, args in launches:
        kernel = getattr(module, name)
        writes.append(_written(kernel, args))
    print(json.dumps(writes))


if __name__ == "__main__":
    main(*sys.argv[1:])
