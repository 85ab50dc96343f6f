"""Compile every Triton kernel of templates/kernels for an NVIDIA architecture, without a GPU.

    python3 bench/compile_kernels.py [--arch 90] [--resources [--packed] [--only TEXT]]

Each kernel is compiled through Triton's own pipeline down to a cubin (Triton's bundled ptxas),
in bf16 at head dim 64, in the padded and the packed layout, with the first Hopper config of its
autotune list. The interpreter tests check what the kernels compute; this checks what only the
GPU compiler can reject (an op on a 0-d value, a dtype that differs between constexpr branches,
an unsupported tl.dot shape), and prints each kernel's shared memory. Exit status 1 names the
kernel that failed. Run it where TRITON_INTERPRET is unset: triton.jit decides at import.

--resources compiles every config of every autotune list instead (head dims 64 and 128, seed
pooling at 64 and 128 seeds) and prints each one's registers a thread and the stack bytes that
spilled registers take, read from the cubin with Triton's bundled cuobjdump: which configs spill
on the GPU, found without one (bench/results/2026-11-29-cpu-resources.txt).
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import re
import sys
import time
from pathlib import Path

KERNELS = Path(__file__).resolve().parent.parent / "templates" / "kernels"
FLOAT_ARGS = {"scale", "qk_scale", "scale_log2"}          # float scalars; other scalars are i32
FP32_POINTERS = {"LSE", "DELTA", "M_PART", "L_PART", "ACC_PART", "DQ_PART"}
INT_POINTERS = {"LENGTHS", "STARTS", "Q_LEN", "KV_LEN", "Q_STARTS"}
INT_SCALARS = {"B", "H", "T", "S", "LEFT", "RIGHT"}      # sizes and band reach, not tensors


def kernel_module(name: str):
    """templates/kernels/<name>.py loaded by path as a fresh module (kernel files stand alone)."""
    spec = importlib.util.spec_from_file_location(f"kunlunc_compile_{name}", KERNELS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


LAST_DIM_STRIDE = re.compile(r"^(stride_\w*d|s\w*_d)$")          # stride_qd, stride_dkd, sk_d, sdo_d
STRIDE = re.compile(r"^(stride_\w+|s[a-z]*_[a-z])$")                 # stride_qt, sk_b, sq_h, ...


def specialization(params: list[str], constexprs: dict) -> tuple[dict, dict]:
    """What triton.jit specializes at a launch on contiguous tensors with D a multiple of 16, as
    the models launch the kernels: each last-dim stride is 1 (an int equal to 1 becomes a
    constexpr), and every pointer and other stride is divisible by 16 (`tt.divisibility`).
    Without it the compiler cannot vectorize the loads (16-bit scalar loads instead of 128-bit
    ones) and the register counts come out far too high: GDPA's forward at D 128, 128 x 64,
    254 registers a thread unspecialized against 158."""
    ones = {p: 1 for p in params if p not in constexprs and LAST_DIM_STRIDE.match(p)}
    attrs = {}
    for i, p in enumerate(params):
        if p in constexprs or p in ones:
            continue
        if (p.isupper() and p not in INT_SCALARS) or STRIDE.match(p):
            attrs[(i,)] = [["tt.divisibility", 16]]
    return ones, attrs


def parameter_type(p: str, pointer: str = "*bf16") -> str:
    """A kernel parameter's type in a compile signature, by its name: LSE-like fp32 pointers, length
    and start pointers (int64), the head table (int32), other upper-case names tensors of
    `pointer`'s type (sizes and band reach excepted), scales fp32, every other scalar an i32."""
    if p in FP32_POINTERS:
        return "*fp32"
    if p in INT_POINTERS:
        return "*i64"
    if p == "HEADS":
        return "*i32"
    if p.isupper() and p not in INT_SCALARS:
        return pointer
    return "fp32" if p in FLOAT_ARGS else "i32"


def compile_gluon_sm90(jit_fn, descs: list, constexprs: dict, options: dict, pointer: str = "*bf16"):
    """A Gluon kernel compiled for sm_90 by the installed Triton, without a GPU: its leading
    parameters are the host TMA descriptors `descs` (over CPU tensors, they give the signature a
    launch would), constexprs by name, the others typed by parameter_type; pointers 16-byte
    aligned, as torch allocates them, and every int an i32 (unspecialized)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    from triton.runtime.jit import mangle_type
    params = list(inspect.signature(jit_fn.fn).parameters)
    signature = {p: mangle_type(d) for p, d in zip(params, descs)}
    signature.update({p: "constexpr" if p in constexprs else parameter_type(p, pointer) for p in params[len(descs):]})
    attrs = {(i,): [["tt.divisibility", 16]] for i, p in enumerate(params)
             if i >= len(descs) and signature[p].startswith("*")}
    source = GluonASTSource(jit_fn, signature, constexprs={(params.index(k),): v for k, v in constexprs.items()},
                            attrs=attrs)
    return triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options)


def descriptor_type(block: list[int]) -> str:
    """The signature type of a bf16 host TMA descriptor with this box, as a launch mangles it."""
    import torch
    from triton.runtime.jit import mangle_type
    from triton.tools.tensor_descriptor import TensorDescriptor
    x = torch.empty(block, dtype=torch.bfloat16)
    return mangle_type(TensorDescriptor.from_tensor(x, block))


def compile_kernel(jit_fn, constexprs: dict, num_warps: int, num_stages: int, arch: int):
    """triton.compile of jit_fn for cuda:arch, tensors in bf16 (pointers by name, see above),
    specialized as a launch on contiguous tensors would be (see specialization). With TMA=True
    among the constexprs, the *_DESC parameters are TMA descriptors of one [rows, BLOCK_D] box
    (BLOCK_T or BLOCK_N key rows: the key tile); without it they are pointers, as the launch
    passes them."""
    import triton
    from triton.backends.compiler import GPUTarget
    params = list(inspect.signature(jit_fn.fn).parameters)
    descs = [p for p in params if constexprs.get("TMA") and p.endswith("_DESC")]
    ones, attrs = specialization(params, constexprs)
    attrs = {i: v for i, v in attrs.items() if params[i[0]] not in descs}   # (no pointer alignment)
    constexprs = {**constexprs, **ones}
    signature = {p: "constexpr" if p in constexprs else parameter_type(p) for p in params}
    for p in descs:
        signature[p] = descriptor_type([constexprs.get("BLOCK_T", constexprs.get("BLOCK_N")), constexprs["BLOCK_D"]])
    src = triton.compiler.ASTSource(fn=jit_fn, signature=signature,
                                    constexprs={(params.index(k),): v for k, v in constexprs.items()},
                                    attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32),
                          options={"num_warps": num_warps, "num_stages": num_stages})


def jobs():
    """(label, jit function, constexprs, num_warps, num_stages) for every kernel and layout."""
    wa, gdpa, sp = kernel_module("window_attention"), kernel_module("gdpa"), kernel_module("seed_pooling")
    for packed in (False, True):
        layout = "packed" if packed else "padded"
        head = dict(HEAD_D=64, BLOCK_D=64, PRECISION="tf32", PACKED=packed)
        for name, kernel, shapes in (("fwd", wa._fwd_kernel, wa._FWD_SHAPES),
                                     ("dq", wa._bwd_dq_kernel, wa._DQ_SHAPES),
                                     ("dkdv", wa._bwd_dkdv_kernel, wa._DKDV_SHAPES)):
            m, n, warps, stages = shapes[1]                       # the first Hopper config
            yield f"window_attention.{name} {layout}", kernel, {**head, "BLOCK_M": m, "BLOCK_N": n}, warps, stages

        shared = dict(HEAD_DIM=64, BLOCK_D=64, ACT=gdpa.ACTIVATION_IDS["gelu_tanh"], HAS_KV_LEN=False,
                      MODE=gdpa.NO_WINDOW.value, HEAD_TABLE=False, FAST=True, DOT_PREC="tf32",
                      PACKED_Q=packed)
        for name, kernel in (("fwd", gdpa._gdpa_fwd_kernel), ("dkdv", gdpa._gdpa_bwd_dkdv_kernel),
                             ("dq", gdpa._gdpa_bwd_dq_kernel)):
            m, n, warps, stages = gdpa._HOPPER_CONFIGS[name][0]
            yield f"gdpa.{name} {layout}", kernel, {**shared, "BLOCK_M": m, "BLOCK_N": n}, warps, stages

        block_s, block_d, _ = sp._seed_blocks(128, 64)
        common = dict(NUM_SEEDS=128, HEAD_D=64, KV_SHARED=True, IEEE=False, BLOCK_S=block_s,
                      BLOCK_D=block_d, PACKED=packed)
        block_t, warps, stages = sp._FWD_TRIPLES[0]
        for split in (False, True):
            for tma in (False, True):
                yield (f"seed_pooling.fwd{' split' if split else ''}{' tma' if tma else ''} {layout}",
                       sp._fwd_kernel, {**common, "SPLIT": split, "TMA": tma, "BLOCK_T": block_t}, warps, stages)
        block_t, warps, stages, bwd_s = sp._bwd_configs(128, block_s, block_d)[0]
        yield (f"seed_pooling.bwd {layout}", sp._bwd_kernel,
               {**common, "SUM_KV": True, "BLOCK_S": bwd_s, "N_SBLK": -(-128 // bwd_s), "BLOCK_T": block_t},
               warps, stages)
    yield ("seed_pooling.combine", sp._combine_kernel,
           dict(NUM_SEEDS=128, HEAD_D=64, BLOCK_S=block_s, BLOCK_D=block_d), 4, 1)


def config_jobs(head_dims=(64, 128), packed: bool = False):
    """(label, jit function, constexprs, num_warps, num_stages) for every Hopper config of every
    kernel's autotune list, bf16, padded or packed, at each head dim (seed pooling at 64 and 128
    seeds, the presets' counts): what --resources compiles. The seed-pooling lists are shown before
    its register-budget filter (seed_pooling._fits), which may drop some at launch."""
    wa, gdpa, sp = kernel_module("window_attention"), kernel_module("gdpa"), kernel_module("seed_pooling")
    for d in head_dims:
        block_d = max(16, 1 << (d - 1).bit_length())
        head = dict(HEAD_D=d, BLOCK_D=block_d, PRECISION="tf32", PACKED=packed)
        for name, kernel, shapes in (("fwd", wa._fwd_kernel, wa._FWD_SHAPES),
                                     ("dq", wa._bwd_dq_kernel, wa._DQ_SHAPES),
                                     ("dkdv", wa._bwd_dkdv_kernel, wa._DKDV_SHAPES)):
            for m, n, warps, stages in shapes[1:]:                  # shapes[0]: the interpreter's
                yield (f"window_attention.{name} D{d} {m}x{n} w{warps} s{stages}", kernel,
                       {**head, "BLOCK_M": m, "BLOCK_N": n}, warps, stages)
        width = "" if block_d * 2 <= 256 else "_wide" if block_d * 2 <= 512 else "_widest"
        shared = dict(HEAD_DIM=d, BLOCK_D=block_d, ACT=gdpa.ACTIVATION_IDS["gelu_tanh"], HAS_KV_LEN=False,
                      MODE=gdpa.NO_WINDOW.value, HEAD_TABLE=False, FAST=True, DOT_PREC="tf32", PACKED_Q=packed)
        for name, kernel in (("fwd", gdpa._gdpa_fwd_kernel), ("dkdv", gdpa._gdpa_bwd_dkdv_kernel),
                             ("dq", gdpa._gdpa_bwd_dq_kernel)):
            for m, n, warps, stages in gdpa._HOPPER_CONFIGS[name + width]:
                yield (f"gdpa.{name} D{d} {m}x{n} w{warps} s{stages}", kernel,
                       {**shared, "BLOCK_M": m, "BLOCK_N": n}, warps, stages)
        for seeds in (64, 128):
            block_s, block_d_s, _ = sp._seed_blocks(seeds, d)
            common = dict(NUM_SEEDS=seeds, HEAD_D=d, KV_SHARED=True, IEEE=False, BLOCK_S=block_s,
                          BLOCK_D=block_d_s, PACKED=packed)
            for block_t, warps, stages in sp._FWD_TRIPLES:   # pointer loads, as the compiled models run it
                yield (f"seed_pooling.fwd D{d} S{seeds} T{block_t} w{warps} s{stages}", sp._fwd_kernel,
                       {**common, "SPLIT": False, "TMA": False, "BLOCK_T": block_t}, warps, stages)
            for block_t, warps, stages, bwd_s in sp._bwd_configs(seeds, block_s, block_d_s):
                yield (f"seed_pooling.bwd D{d} S{seeds} T{block_t} w{warps} s{stages} BS{bwd_s}", sp._bwd_kernel,
                       {**common, "SUM_KV": True, "BLOCK_S": bwd_s, "N_SBLK": -(-seeds // bwd_s), "BLOCK_T": block_t},
                       warps, stages)


_USAGE = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")


def cuobjdump(cubin: bytes, flag: str) -> str:
    """The output of the cuobjdump Triton bundles, run with `flag` on a cubin."""
    import subprocess
    import tempfile

    import triton
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([str(tool), flag, f.name], capture_output=True, text=True, check=True).stdout


def resource_usage(cubin: bytes) -> dict[str, int]:
    """{"reg", "stack", "shared", "local"} of a cubin's kernel, from the cuobjdump Triton bundles
    (registers per thread; stack and local bytes per thread: spilled registers live there; shared:
    the static part only, Triton's tiles take dynamic shared memory, in the kernel's metadata)."""
    out = cuobjdump(cubin, "--dump-resource-usage")
    found = _USAGE.search(out)
    if not found:
        raise RuntimeError(f"no resource usage in cuobjdump's output: {out[-300:]}")
    return dict(zip(("reg", "stack", "shared", "local"), map(int, found.groups())))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", type=int, default=90, help="compute capability x 10 (90: Hopper)")
    p.add_argument("--resources", action="store_true",
                   help="every autotune config of every kernel (bf16, head dims 64 and 128; padded "
                        "unless --packed): registers, and the stack bytes that spilled registers take")
    p.add_argument("--only", default="", metavar="TEXT", help="with --resources: the configs whose label has TEXT")
    p.add_argument("--packed", action="store_true", help="with --resources: the packed-layout kernels")
    args = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("error: TRITON_INTERPRET is set: kernels would be interpreted, not compiled", file=sys.stderr)
        return 1
    if args.resources:
        print(f"{'kernel and config':<52}{'regs':>6}{'stack B':>9}{'shared B':>10}")
        for label, kernel, constexprs, warps, stages in config_jobs(packed=args.packed):
            if args.only not in label:
                continue
            compiled = compile_kernel(kernel, constexprs, warps, stages, args.arch)
            use = resource_usage(compiled.asm["cubin"])
            flag = "  spills" if use["stack"] or use["local"] else ""
            print(f"{label:<52}{use['reg']:>6}{use['stack']:>9}{compiled.metadata.shared:>10}{flag}", flush=True)
        return 0
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
