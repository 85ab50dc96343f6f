"""What torch.compile believes each Triton kernel writes.

A kernel launched through `torch.library.wrap_triton` is traced as a call that mutates some of its
tensor arguments; torch finds which by reading the kernel's Triton IR
(`identify_accessed_tensors`): it follows each store's address back to the kernel's parameters.
Where an address depends on a value returned by a helper function, it counts *every* argument of
that helper as written. A helper that takes LENGTHS and returns a row offset therefore makes torch
believe the kernel writes LENGTHS: the compiled graph then clones the lengths before the kernel and
copies the clone back into the caller's tensor after it. On the H200 that copy-back, run inside a
compiled backward, bumped the version of a lengths tensor autograd had saved, and the first
training step failed ("LongTensor [1024] is at version 106; expected version 0",
bench/results/2026-11-30-h200-s11/call4).

These tests run every kernel of the three templates through their public functions (interpreted
on the CPU), keep each launch's arguments and which tensors it changed, and ask
torch's own analysis (on the kernel compiled for sm_90, which needs no GPU) which tensors it
writes: exactly those, never a length, start or table the kernel only reads.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import triton

from packing import pack_rows, reversed_starts

KERNELS = Path(__file__).resolve().parent.parent / "templates" / "kernels"
PROBE = Path(__file__).resolve().parent / "mutation_probe.py"
# The interpreter runs each launch once. On a GPU the autotuner's timing runs repeat launches that
# write what is already there (nothing "changes"), and each of those hundreds of launches would be
# analysed: too slow and wrong there (an H200 run took over 150 s). The analysis itself needs no
# GPU: the probe compiles for sm_90 on any machine.
pytestmark = pytest.mark.skipif(not triton.knobs.runtime.interpret,
                                reason="records launches in Triton's interpreter (CPU)")


def _load(name: str):
    """templates/kernels/<name>.py, imported once (interpreted on the CPU)."""
    module_name = f"_kunlunc_mutation_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, KERNELS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def _bits(t: torch.Tensor) -> torch.Tensor:
    """t's bytes (NaN-safe equality)."""
    return t.detach().contiguous().view(-1).view(torch.uint8).clone()


@contextlib.contextmanager
def _recorded_launches():
    """Every kernel launch in the block as (kernel name, {argument: value}, the tensor arguments
    whose contents the launch changed)."""
    from triton.runtime.interpreter import InterpretedFunction as kernel_class
    launches: list[tuple[str, dict, set[str]]] = []
    original = kernel_class.run

    def run(self, *args, **kwargs):
        code = self.fn.__code__
        names = code.co_varnames[:code.co_argcount]
        bound = dict(zip(names, args))
        bound.update((k, v) for k, v in kwargs.items() if k in names)
        tensors = {k: v for k, v in bound.items() if isinstance(v, torch.Tensor) and v.numel()}
        before = {k: _bits(v) for k, v in tensors.items()}
        result = original(self, *args, **kwargs)
        changed = {k for k, v in tensors.items() if not torch.equal(before[k], _bits(v))}
        launches.append((self.fn.__name__, bound, changed))
        return result

    kernel_class.run = run
    try:
        yield launches
    finally:
        kernel_class.run = original


def written_by(kernel_file: str, launches, tmp_path) -> list[list[str]]:
    """Per launch, the arguments torch believes the kernel writes. torch's analysis needs the
    kernels compiled (JITFunctions, Triton's own library too), so it runs in a process without
    the interpreter: tests/mutation_probe.py, given the launches with their tensors' shapes."""
    def plain(value):
        if isinstance(value, torch.Tensor):  # same shape, strides and dtype; no data
            return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype)
        return value
    path = tmp_path / "launches.pt"
    torch.save([(name, {k: plain(v) for k, v in args.items()}) for name, args in launches], path)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    command = [sys.executable, str(PROBE), str(KERNELS / f"{kernel_file}.py"), str(path)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def check(kernel_file: str, call, inputs: dict[str, torch.Tensor], tmp_path) -> set[str]:
    """Runs call(kernels module) with its launches recorded and asserts, per launch, that torch
    believes written exactly the tensor arguments the launch changed: none of the caller's
    inputs, no lengths or table it only reads, and no output missed (a write torch does not
    know of would let a compiled graph reorder or reuse that buffer wrongly). Returns the names
    of the kernels launched."""
    # torch.empty filled with NaN (deterministic mode's fill of uninitialized memory): a fresh
    # output could otherwise be a freed block already holding the values the launch writes
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with _recorded_launches() as launches:
            call(_load(kernel_file))
    finally:
        torch.use_deterministic_algorithms(deterministic)
    assert launches, "no kernel was launched"
    owners = {_storage(t): name for name, t in inputs.items() if t is not None and t.numel()}
    believed = written_by(kernel_file, [(name, args) for name, args, _ in launches], tmp_path)
    wrong, missed = {}, {}
    for (kernel, args, changed), writes in zip(launches, believed):
        assert writes, f"{kernel}: torch sees no write at all (did its analysis fail?)"
        for w in writes:
            value = args.get(w)
            if isinstance(value, torch.Tensor) and value.numel() and w not in changed:
                wrong.setdefault(kernel, {})[w] = owners.get(_storage(value), "not written")
        written = {_storage(args[w]) for w in writes if isinstance(args.get(w), torch.Tensor)}
        unknown = {c for c in changed if _storage(args[c]) not in written}  # (aliases are known)
        if unknown:
            missed.setdefault(kernel, set()).update(unknown)
    assert not wrong, ("torch.compile would treat these as written (kernel: {argument: the "
                       f"caller's tensor it is, or 'not written'}}): {wrong}")
    assert not missed, f"torch.compile would miss these writes: {missed}"
    return {kernel for kernel, _, _ in launches}


def _lengths(B: int, T: int) -> torch.Tensor:
    """Full, empty, length-1 and half-length examples, then full ones."""
    return torch.tensor([T, 0, 1, T // 2][:B] + [T] * max(0, B - 4), dtype=torch.int64)


def _randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=g)


def _layout(tensors, lengths: torch.Tensor, packed: bool):
    """The [B, H, T, D] tensors as given, or packed to [N, H, D] rows, with the starts (or None)."""
    if not packed:
        return list(tensors), None
    starts, rows = reversed_starts(lengths)
    return [pack_rows(x, lengths, starts, rows) for x in tensors], starts


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_window_attention_writes_only_its_outputs(packed, causal, tmp_path):
    B, H, T, D = 3, 2, 37, 16
    g = torch.Generator().manual_seed(0)
    lengths = _lengths(B, T)
    (q, k, v, do), starts = _layout((_randn(g, B, H, T, D) for _ in range(4)),
                                    lengths, packed)
    layout = dict(starts=starts, max_len=T if packed else None)
    wa = _load("window_attention")
    o, lse = wa.window_attention_forward(q, k, v, lengths, 8, causal, 0.25, **layout)

    def run(kernels):
        kernels.window_attention_forward(q, k, v, lengths, 8, causal, 0.25, **layout)
        kernels.window_attention_backward(do, q, k, v, o, lse, lengths, 8, causal, 0.25, **layout)

    launched = check("window_attention", run,
                     dict(q=q, k=k, v=v, grad_out=do, o=o, lse=lse, lengths=lengths, starts=starts),
                     tmp_path)
    assert {"_fwd_kernel", "_bwd_dkdv_kernel", "_bwd_dq_kernel"} <= launched


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("kind", ["self_window", "short_kv"])
def test_gdpa_writes_only_its_outputs(kind, packed, tmp_path):
    B, H, T, D = 3, 2, 37, 16
    S = T if kind == "self_window" else 5
    g = torch.Generator().manual_seed(0)
    q_lengths = _lengths(B, T)
    kv_lengths = None if kind == "self_window" else torch.tensor([5, 3, 1])
    (q, do), q_starts = _layout((_randn(g, B, H, T, D) for _ in range(2)),
                                q_lengths, packed)
    k, v = (_randn(g, B, H, S, D) for _ in range(2))
    acts = "gelu_tanh,silu"  # two head groups: two launches of each kernel
    window, causal = (4, True) if kind == "self_window" else (-1, False)
    layout = dict(q_starts=q_starts, max_len=T if packed else None)

    def run(kernels):
        kernels.gdpa_forward(q, k, v, q_lengths, kv_lengths, acts, 0.5, window, causal, **layout)
        kernels.gdpa_backward(do, q, k, v, q_lengths, kv_lengths, acts, 0.5, window, causal,
                              **layout)

    launched = check("gdpa", run, dict(q=q, k=k, v=v, grad_out=do, q_lengths=q_lengths,
                                       kv_lengths=kv_lengths, q_starts=q_starts), tmp_path)
    assert len(launched) == 3, launched  # forward, dK/dV, dQ


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("shared", [False, True])
def test_seed_pooling_writes_only_its_outputs(shared, packed, tmp_path):
    B, H, T, D, n_seeds = 3, 2, 300, 16, 5
    g = torch.Generator().manual_seed(0)
    lengths = _lengths(B, T)
    seeds = _randn(g, H, n_seeds, D)
    (k, v), starts = _layout((_randn(g, B, H, T, D) for _ in range(2)), lengths,
                             packed)
    v = k if shared else v
    layout = dict(starts=starts, max_len=T if packed else None)
    sp = _load("seed_pooling")
    o, lse = sp.seed_pooling_forward(seeds, k, v, lengths, 0.25, **layout)
    do = _randn(g, *o.shape)

    def run(kernels):
        kernels._forward(seeds, k, v, lengths, 0.25, chunk=256, **layout)  # T in 2 chunks: combine
        if shared:
            kernels.seed_pooling_backward_shared_kv(do, seeds, k, o, lse, lengths, 0.25, **layout)
        else:
            kernels.seed_pooling_backward(do, seeds, k, v, o, lse, lengths, 0.25, **layout)

    launched = check("seed_pooling", run, dict(seeds=seeds, k=k, v=v, grad_out=do, o=o, lse=lse,
                                               lengths=lengths, starts=starts), tmp_path)
    assert len(launched) >= 3, launched  # forward, combine, backward
