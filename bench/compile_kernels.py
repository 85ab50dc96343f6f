"""Compile every Triton kernel of templates/kernels for an NVIDIA architecture, without a GPU.

    python3 bench/compile_kernels.py [--arch 90]

Each kernel is compiled through Triton's own pipeline down to a cubin (Triton's bundled ptxas),
in bf16 at head dim 64, in the padded and the packed layout, with the first Hopper config of its
autotune list. The interpreter tests check what the kernels compute; this checks what only the
GPU compiler can reject (an op on a 0-d value, a dtype that differs between constexpr branches,
an unsupported tl.dot shape), and prints each kernel's shared memory. Exit status 1 names the
kernel that failed. Run it where TRITON_INTERPRET is unset: triton.jit decides at import.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import sys
import time
from pathlib import Path

KERNELS = Path(__file__).resolve().parent.parent / "templates" / "kernels"
FLOAT_ARGS = {"scale", "qk_scale", "scale_log2"}          # float scalars; other scalars are i32
FP32_POINTERS = {"LSE", "DELTA", "M_PART", "L_PART", "ACC_PART", "DQ_PART"}
INT_POINTERS = {"LENGTHS", "STARTS", "Q_LEN", "KV_LEN", "Q_STARTS"}
INT_SCALARS = {"B", "H", "T", "S", "LEFT", "RIGHT"}      # sizes and band reach, not tensors


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"kunlunc_compile_{name}", KERNELS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def compile_kernel(jit_fn, constexprs: dict, num_warps: int, num_stages: int, arch: int):
    """triton.compile of jit_fn for cuda:arch, tensors in bf16 (pointers by name, see above)."""
    import triton
    from triton.backends.compiler import GPUTarget
    params = list(inspect.signature(jit_fn.fn).parameters)
    signature = {}
    for p in params:
        if p in constexprs:
            signature[p] = "constexpr"
        elif p in FP32_POINTERS:
            signature[p] = "*fp32"
        elif p in INT_POINTERS:
            signature[p] = "*i64"
        elif p == "HEADS":
            signature[p] = "*i32"
        elif p.isupper() and p not in INT_SCALARS:
            signature[p] = "*bf16"
        else:
            signature[p] = "fp32" if p in FLOAT_ARGS else "i32"
    src = triton.compiler.ASTSource(fn=jit_fn, signature=signature,
                                    constexprs={(params.index(k),): v for k, v in constexprs.items()})
    return triton.compile(src, target=GPUTarget("cuda", arch, 32),
                          options={"num_warps": num_warps, "num_stages": num_stages})


def jobs():
    """(label, jit function, constexprs, num_warps, num_stages) for every kernel and layout."""
    wa, gdpa, sp = _module("window_attention"), _module("gdpa"), _module("seed_pooling")
    for packed in (False, True):
        layout = "packed" if packed else "padded"
        head = dict(HEAD_D=64, BLOCK_D=64, PRECISION="tf32", PACKED=packed)
        for name, kernel, shapes in (("fwd", wa._fwd_kernel, wa._FWD_SHAPES),
                                     ("dq", wa._bwd_dq_kernel, wa._DQ_SHAPES),
                                     ("dkdv", wa._bwd_dkdv_kernel, wa._DKDV_SHAPES)):
            m, n, warps, stages = shapes[1]                       # the first Hopper config
            yield f"window_attention.{name} {layout}", kernel, {**head, "BLOCK_M": m, "BLOCK_N": n}, warps, stages
        yield (f"window_attention.delta {layout}", wa._bwd_delta_kernel,
               dict(HEAD_D=64, BLOCK_D=64, BLOCK_M=64, PACKED=packed), 4, 1)

        shared = dict(HEAD_DIM=64, BLOCK_D=64, ACT=gdpa.ACTIVATION_IDS["gelu_tanh"], HAS_KV_LEN=False,
                      MODE=gdpa.NO_WINDOW.value, HEAD_TABLE=False, FAST=True, DOT_PREC="tf32",
                      PACKED_Q=packed)
        for name, kernel in (("fwd", gdpa._gdpa_fwd_kernel), ("dkdv", gdpa._gdpa_bwd_dkdv_kernel),
                             ("dq", gdpa._gdpa_bwd_dq_kernel)):
            m, n, warps, stages = gdpa._HOPPER_CONFIGS[name][0]
            yield f"gdpa.{name} {layout}", kernel, {**shared, "BLOCK_M": m, "BLOCK_N": n}, warps, stages

        block_s, block_d, n_sblk = sp._seed_blocks(128, 64)
        common = dict(NUM_SEEDS=128, HEAD_D=64, KV_SHARED=True, IEEE=False, BLOCK_S=block_s,
                      BLOCK_D=block_d, PACKED=packed)
        block_t, warps, stages = sp._FWD_TRIPLES[0]
        for split in (False, True):
            yield (f"seed_pooling.fwd{' split' if split else ''} {layout}", sp._fwd_kernel,
                   {**common, "SPLIT": split, "BLOCK_T": block_t}, warps, stages)
        block_t, warps, stages = sp._BWD_TRIPLES[0]
        yield (f"seed_pooling.bwd {layout}", sp._bwd_kernel,
               {**common, "SUM_KV": True, "N_SBLK": n_sblk, "BLOCK_T": block_t}, warps, stages)
    yield ("seed_pooling.combine", sp._combine_kernel,
           dict(NUM_SEEDS=128, HEAD_D=64, BLOCK_S=block_s, BLOCK_D=block_d), 4, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", type=int, default=90, help="compute capability x 10 (90: Hopper)")
    args = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("error: TRITON_INTERPRET is set: kernels would be interpreted, not compiled", file=sys.stderr)
        return 1
    for label, kernel, constexprs, warps, stages in jobs():
        t0 = time.perf_counter()
        try:
            compiled = compile_kernel(kernel, constexprs, warps, stages, args.arch)
        except Exception as exc:            # any compiler error: name the kernel, status 1
            cause = exc
            while cause.__cause__ is not None:  # the innermost error says what is wrong
                cause = cause.__cause__
            print(f"error: {label} does not compile for sm_{args.arch}: {type(cause).__name__}: "
                  f"{str(cause)[-2000:]}", file=sys.stderr)
            return 1
        shared = getattr(compiled.metadata, "shared", None)
        print(f"{label:<36} sm_{args.arch}  {time.perf_counter() - t0:5.1f} s  shared {shared} B  "
              f"{len(compiled.asm['cubin'])} B cubin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
