"""The Hopper (Gluon) kernels' launch path (window_attention_hopper.launch, used by both Hopper
backwards): Triton's compiled kernel is bound once per argument specialization and launched directly
afterwards, skipping the JIT's per-launch binding. Safe only if two launches with equal keys would
get the same compiled kernel from Triton: the first test checks our key against Triton's own
specialization of every kind of argument the kernels take; the others drive launch() with a stand-in
kernel (no GPU here) through binding, direct launches and re-binding."""
from __future__ import annotations

import itertools

import pytest
import torch

from test_gdpa_gluon import _has_gluon_hopper
from test_gdpa_hopper import _hopper

pytestmark = pytest.mark.skipif(not _has_gluon_hopper(), reason="Triton's Gluon for Hopper is not installed")


def _window_hopper():
    return _hopper()._common


def _triton_spec(x):
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.nvidia.compiler import CUDABackend
    return native_specialize_impl(CUDABackend, x, False, True, True)


def test_key_is_at_least_as_fine_as_tritons_specialization():
    hop = _window_hopper()
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
    base = torch.empty(4096, dtype=torch.bfloat16)
    ints = [0, 1, 2, 3, 15, 16, 17, 32, 48, 1000, 1024, -1, -16, 2**31 - 16, 2**31 - 1, 2**31, 2**32, 2**63 - 1,
            2**63, True, False]
    tensors = [base, base[1:], base[8:], base[16:], base.to(torch.float16), base[3:].to(torch.float16),
               torch.empty(64, dtype=torch.float32), torch.empty(64, dtype=torch.int64)[1:],
               torch.empty(64, dtype=torch.int32)]
    descs = [TensorDescriptor(x, [rows, 64], [64, 1], [block, 64], hop._shared_layout(block, 64, x.dtype))
             for x, rows, block in itertools.product((base.view(64, 64), base.to(torch.float16).view(64, 64)),
                                                     (64, 48), (32, 64))]
    values = ints + tensors + descs + [0.5, 1.0, 3.0, None]
    pairs = 0
    for a, b in itertools.product(values, repeat=2):
        if hop._spec(a) == hop._spec(b):
            pairs += 1
            assert _triton_spec(a) == _triton_spec(b), (a, b)
    assert pairs > len(values)          # some distinct values do share a key (16 and 32, ...)
    # and it tells apart what Triton tells apart in these kernels' arguments
    assert hop._spec(16) != hop._spec(17) and hop._spec(1) != hop._spec(2) and hop._spec(True) != hop._spec(1)
    assert hop._spec(base) != hop._spec(base[1:]) and hop._spec(base) != hop._spec(base.to(torch.float16))


class _Compiled:
    def __init__(self, log):
        self.log, self.function, self.packed_metadata = log, "fn", "meta"

    def launch_metadata(self, grid, stream, *values):
        return None

    def run(self, gx, gy, gz, stream, function, metadata, launch_metadata, enter, exit_, *values):
        self.log.append(("direct", (gx, gy, gz), stream, values))


class _Param:
    def __init__(self, name, default):
        self.name, self.default = name, default


class _Kernel:
    """A stand-in for a Gluon JIT function: kernel[grid](*args, **constexprs) records and returns a
    compiled kernel, as Triton's returns its CompiledKernel."""
    def __init__(self, names, defaults=None):
        import inspect
        defaults = defaults or {}
        self.params = [_Param(n, defaults.get(n, inspect.Parameter.empty)) for n in names]
        self.log = []

    def __getitem__(self, grid):
        def jit_launch(*args, **constexprs):
            self.log.append(("jit", grid, args, constexprs))
            return _Compiled(self.log)
        return jit_launch


@pytest.fixture
def hop(monkeypatch):
    module = _window_hopper()
    monkeypatch.setattr(module, "_device", lambda: 0)
    monkeypatch.setattr(module, "_stream", lambda device: 1234)
    monkeypatch.setattr(module, "_BOUND", {})
    return module


def test_launch_binds_once_then_launches_directly(hop):
    kernel = _Kernel(["X", "n", "scale", "BLOCK", "num_warps"])
    x = torch.empty(64)
    hop.launch(kernel, (3, 2), (x, 32, 0.5), dict(BLOCK=16, num_warps=4, maxnreg=128))
    hop.launch(kernel, (5, 2), (x, 48, 0.25), dict(BLOCK=16, num_warps=4, maxnreg=128))
    assert [e[0] for e in kernel.log] == ["jit", "direct"]
    # the direct launch: the grid padded to three, the stream, every parameter in signature order
    # (constexprs included, launch options such as maxnreg not: they are not parameters)
    assert kernel.log[1][1:] == ((5, 2, 1), 1234, (x, 48, 0.25, 16, 4))


def test_launch_rebinds_where_triton_would_specialize_again(hop):
    kernel = _Kernel(["X", "n", "BLOCK"])
    x = torch.empty(64)
    calls = [((x, 32), {"BLOCK": 16}),       # bind
             ((x, 48), {"BLOCK": 16}),       # same key: direct
             ((x, 33), {"BLOCK": 16}),       # 33 is not a multiple of 16: bind
             ((x, 1), {"BLOCK": 16}),        # 1 becomes a constexpr in Triton: bind
             ((x[1:], 32), {"BLOCK": 16}),   # a pointer off 16 bytes: bind
             ((x, 32), {"BLOCK": 32}),       # another constexpr: bind
             ((x.half(), 32), {"BLOCK": 16}),  # another dtype: bind
             ((x, 64), {"BLOCK": 32})]       # back to a bound key: direct
    for args, constexprs in calls:
        hop.launch(kernel, (1,), args, constexprs)
    assert [e[0] for e in kernel.log] == ["jit", "direct", "jit", "jit", "jit", "jit", "jit", "direct"]


def test_launch_falls_back_where_it_cannot_bind(hop):
    kernel = _Kernel(["X", "n", "BLOCK"])
    kernel.params = None                     # a Triton whose JIT function has no params list
    for _ in range(2):
        hop.launch(kernel, (1,), (torch.empty(4), 16), {"BLOCK": 16})
    assert [e[0] for e in kernel.log] == ["jit", "jit"]
    missing = _Kernel(["X", "n", "BLOCK", "OTHER"])   # a parameter given neither value nor default
    for _ in range(2):
        hop.launch(missing, (1,), (torch.empty(4), 16), {"BLOCK": 16})
    assert [e[0] for e in missing.log] == ["jit", "jit"]
    defaulted = _Kernel(["X", "n", "BLOCK", "OTHER"], {"OTHER": 7})
    for _ in range(2):
        hop.launch(defaulted, (1,), (torch.empty(4), 16), {"BLOCK": 16})
    assert [e[0] for e in defaulted.log] == ["jit", "direct"] and defaulted.log[1][3][-1] == 7
