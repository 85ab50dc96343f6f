"""templates/kernels/bound_launch.py: Triton's compiled kernel bound once per argument specialization
and launched directly afterwards, skipping the JIT's per-launch binding (launch: the Hopper Gluon
backwards) and the autotuner's too (launch_tuned: the seed-pooling kernels' eager launches). Safe
only if two launches with equal keys would get the same compiled kernel from Triton: the first tests
check our key against Triton's own specialization of every kind of argument the kernels take; the
others drive both functions with stand-in kernels (no GPU here) through binding, direct launches
and re-binding."""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from compile_kernels import kernel_module  # noqa: E402
from test_gdpa_gluon import _has_gluon_hopper  # noqa: E402


def _triton_spec(x):
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.nvidia.compiler import CUDABackend
    return native_specialize_impl(CUDABackend, x, False, True, True)


def _check_key(bl, values):
    """Equal keys imply equal specializations by Triton, over every pair of `values`."""
    pairs = 0
    for a, b in itertools.product(values, repeat=2):
        if bl._spec(a) == bl._spec(b):
            pairs += 1
            assert _triton_spec(a) == _triton_spec(b), (a, b)
    return pairs


def test_key_is_at_least_as_fine_as_tritons_specialization():
    bl = kernel_module("bound_launch")
    from triton.tools.tensor_descriptor import TensorDescriptor
    base = torch.empty(4096, dtype=torch.bfloat16)
    ints = [0, 1, 2, 3, 15, 16, 17, 32, 48, 1000, 1024, -1, -16, 2**31 - 16, 2**31 - 1, 2**31, 2**32, 2**63 - 1,
            2**63, True, False]
    tensors = [base, base[1:], base[8:], base[16:], base.to(torch.float16), base[3:].to(torch.float16),
               torch.empty(64, dtype=torch.float32), torch.empty(64, dtype=torch.int64)[1:],
               torch.empty(64, dtype=torch.int32)]
    descs = [TensorDescriptor(x, [rows, 64], [64, 1], [block, 64])        # the seed-pooling forward's
             for x, rows, block in itertools.product((base.view(64, 64), base.to(torch.float16).view(64, 64)),
                                                     (64, 48), (16, 32, 64))]
    values = ints + tensors + descs + [0.5, 1.0, 3.0, None]
    assert _check_key(bl, values) > len(values)   # some distinct values do share a key (16 and 32, ...)
    # and it tells apart what Triton tells apart in these kernels' arguments
    assert bl._spec(16) != bl._spec(17) and bl._spec(1) != bl._spec(2) and bl._spec(True) != bl._spec(1)
    assert bl._spec(base) != bl._spec(base[1:]) and bl._spec(base) != bl._spec(base.to(torch.float16))
    assert bl._spec(descs[0]) != bl._spec(descs[1])                      # 16- and 32-row boxes


@pytest.mark.skipif(not _has_gluon_hopper(), reason="Triton's Gluon for Hopper is not installed")
def test_key_of_gluon_descriptors_is_at_least_as_fine_as_tritons():
    from test_gdpa_hopper import _hopper
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
    hop = _hopper()._common
    bl = kernel_module("bound_launch")
    base = torch.empty(4096, dtype=torch.bfloat16)
    descs = [TensorDescriptor(x, [rows, 64], [64, 1], [block, 64], hop._shared_layout(block, 64, x.dtype))
             for x, rows, block in itertools.product((base.view(64, 64), base.to(torch.float16).view(64, 64)),
                                                     (64, 48), (32, 64))]
    assert _check_key(bl, descs + [base, 16, None]) >= len(descs)


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
    module = kernel_module("bound_launch")
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


class _Config:
    def __init__(self, kwargs, pre_hook=None):
        self.kwargs, self.pre_hook = kwargs, pre_hook

    def all_kwargs(self):
        return {**self.kwargs, "num_warps": 4}


class _Tuner:
    """A stand-in for triton.autotune's Autotuner over a _Kernel: tuner[grid](*args, **constexprs)
    picks `pick(key values)` (as the autotuner picks by its key), records it and launches fn."""
    def __init__(self, names, keys, pick, pre_hook=None):
        self.fn, self.arg_names, self.keys = _Kernel(names), names, keys
        self.pick, self.pre_hook, self.best_config = pick, pre_hook, None

    def __getitem__(self, grid):
        def tuned_launch(*args, **constexprs):
            named = dict(zip(self.arg_names, args))
            config = _Config(self.pick(tuple(named[k] for k in self.keys if k in named)), self.pre_hook)
            self.best_config = config
            if config.pre_hook:
                config.pre_hook({**named, **constexprs, **config.all_kwargs()})
            return self.fn[grid](*args, **constexprs, **config.kwargs)
        return tuned_launch


def test_launch_tuned_binds_the_chosen_config_then_skips_the_autotuner(hop):
    hooked = []
    tuner = _Tuner(["X", "chunk", "BLOCK_T", "SPLIT"], ["chunk"],
                   pick=lambda key: {"BLOCK_T": 64 if key[0] >= 512 else 32},
                   pre_hook=lambda nargs: hooked.append((nargs["X"].shape[0], nargs["BLOCK_T"])))
    x = torch.empty(64)
    hop.launch_tuned(tuner, (3,), (x, 512), {"SPLIT": False})           # tuned, compiled, bound
    hop.launch_tuned(tuner, (4,), (x, 512), {"SPLIT": False})           # direct: the bound config's BLOCK_T
    assert [e[0] for e in tuner.fn.log] == ["jit", "direct"]
    assert tuner.fn.log[1][1:] == ((4, 1, 1), 1234, (x, 512, 64, False))
    assert hooked == [(64, 64), (64, 64)]                                # the pre-hook before each launch
    # 256 specializes as 512 does (both multiples of 16) but is another autotune key: tuned again
    hop.launch_tuned(tuner, (4,), (x, 256), {"SPLIT": False})
    hop.launch_tuned(tuner, (4,), (x, 256), {"SPLIT": False})
    assert [e[0] for e in tuner.fn.log] == ["jit", "direct", "jit", "direct"]
    assert tuner.fn.log[3][3] == (x, 256, 32, False)
    hop.launch_tuned(tuner, (4,), (x, 512), {"SPLIT": True})            # another constexpr: tuned again
    assert [e[0] for e in tuner.fn.log][-1] == "jit"


def test_launch_tuned_calls_a_grid_function_with_the_bound_config(hop):
    """The window and GDPA kernels' grids depend on the tuned block (lambda meta: rows / BLOCK_M):
    a direct launch calls the grid with the arguments by name, the constexprs and the bound
    config's values, as the autotuner does."""
    tuner = _Tuner(["X", "T", "BLOCK_M", "PACKED"], ["T"], pick=lambda key: {"BLOCK_M": 64 if key[0] > 100 else 16})
    x = torch.empty(64)
    seen = []

    def grid(meta):
        seen.append((meta["T"], meta["BLOCK_M"], meta["PACKED"], meta["num_warps"]))
        return (meta["T"] // meta["BLOCK_M"] * 3,)
    hop.launch_tuned(tuner, grid, (x, 256), {"PACKED": False})    # bound (Triton's path calls grid itself)
    hop.launch_tuned(tuner, grid, (x, 512), {"PACKED": False})    # another key value: tuned and bound
    hop.launch_tuned(tuner, grid, (x, 256), {"PACKED": False})    # direct
    hop.launch_tuned(tuner, grid, (x, 32), {"PACKED": False})     # tuned: a 16-row block
    hop.launch_tuned(tuner, grid, (x, 48), {"PACKED": False})     # another key again
    assert [e[0] for e in tuner.fn.log] == ["jit", "jit", "direct", "jit", "jit"]
    assert tuner.fn.log[2][1] == (12, 1, 1) and seen == [(256, 64, False, 4)]


def test_launch_tuned_binds_again_when_a_config_is_pinned(hop):
    """benchutil.pinned swaps the tuner's config list for one config (and restores it): a launch
    bound under the old list must not run the old config, and after the restore the autotuner's own
    choice runs again (bench/seed_pooling_configs.py and autotune_picks.py time pinned configs
    through these launches)."""
    import benchutil

    class _ListTuner(_Tuner):
        """Picks from its config list as Triton's does: a list of one (pinned) runs that one."""
        def __getitem__(self, grid):
            if len(self.configs) != 1:
                return super().__getitem__(grid)

            def run(*args, **constexprs):
                self.best_config = self.configs[0]
                return self.fn[grid](*args, **constexprs, **self.configs[0].kwargs)
            return run
    tuner = _ListTuner(["X", "chunk", "BLOCK_T"], ["chunk"], pick=lambda key: {"BLOCK_T": 64})
    tuner.configs, tuner.cache = [_Config({"BLOCK_T": 64}), _Config({"BLOCK_T": 32})], {}
    x = torch.empty(64)
    hop.launch_tuned(tuner, (1,), (x, 256), {})                          # bound: BLOCK_T 64
    hop.launch_tuned(tuner, (1,), (x, 256), {})                          # direct, 64
    benchutil.pinned(tuner, _Config({"BLOCK_T": 16}),
                     lambda: [hop.launch_tuned(tuner, (1,), (x, 256), {}) for _ in range(2)])
    hop.launch_tuned(tuner, (1,), (x, 256), {})                          # restored: bound again, 64
    hop.launch_tuned(tuner, (1,), (x, 256), {})
    log = tuner.fn.log
    assert [e[0] for e in log] == ["jit", "direct", "jit", "direct", "jit", "direct"]
    blocks = [e[3]["BLOCK_T"] if e[0] == "jit" else e[3][-1] for e in log]
    assert blocks[:2] == [64, 64] and blocks[2:4] == [16, 16] and blocks[4:] == [64, 64]


def test_launch_tuned_falls_back_where_it_cannot_bind(hop):
    tuner = _Tuner(["X", "chunk", "BLOCK_T"], ["chunk"], pick=lambda key: {"BLOCK_T": 32})
    tuner.fn.params = None
    for _ in range(3):
        hop.launch_tuned(tuner, (1,), (torch.empty(4), 256), {})
    assert [e[0] for e in tuner.fn.log] == ["jit", "jit", "jit"]


def test_host_python_script_times_the_bound_path():
    """bench/host_python.py runs the seed-pooling op's host code on the CPU up to a do-nothing
    launcher: both calls bound (a launch not bound would raise: the stand-in has no compiled
    kernel), a figure a line."""
    import os
    import re
    import subprocess
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "host_python.py"), "--calls", "20"],
                       capture_output=True, text=True, env=env, timeout=300, cwd=ROOT / "bench")
    assert p.returncode == 0, p.stderr[-2000:]
    lines = re.findall(r"^(forward|backward): ([\d.]+) us of Python a call before the launcher$", p.stdout, re.M)
    assert [name for name, _ in lines] == ["forward", "backward"] and all(float(us) > 0 for _, us in lines)


@pytest.mark.skipif(not _has_gluon_hopper(), reason="Triton's Gluon for Hopper is not installed")
def test_a_generated_package_loads_one_bound_launch_module():
    """In a generated package the seed-pooling kernels and the Hopper window backward launch through
    one bound_launch module (the package's own kernels.bound_launch: one cache of bound kernels),
    whichever asks first."""
    import os
    import subprocess
    snippet = """
import importlib, sys
sys.path.insert(0, sys.argv[1])
sp = importlib.import_module("kunlun_tiny.kernels.seed_pooling")
wa = importlib.import_module("kunlun_tiny.kernels.window_attention")
if sys.argv[2] == "seed_pooling":
    first = sp._bound_launch()
    hop = wa._hopper_module()
else:
    hop = wa._hopper_module()
    first = sp._bound_launch()
print(first is sys.modules["kunlun_tiny.kernels.bound_launch"], hop.launch is first.launch)
"""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    for order in ("seed_pooling", "window_attention"):
        p = subprocess.run([sys.executable, "-c", snippet, str(ROOT / "generated"), order], capture_output=True,
                           text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        assert p.stdout.split() == ["True", "True"], (order, p.stdout)


# ----------------------------------------------------------------------------- host TMA descriptors

_LAUNCHER_36 = '''
_BASE_ARGS_FORMAT_LEN = 13
expanded = []

def make_tensordesc_arg(arg, metadata):
    expanded.append(arg)
    return [("map", arg.base.data_ptr(), tuple(arg.block_shape), metadata), *arg.shape, *arg.strides]

def wrap(launcher, positions, metas):
    tensordesc_indices = set(positions)
    tensordesc_meta = metas

    def inner(*args):
        final_args = list(args[:_BASE_ARGS_FORMAT_LEN])
        tensordesc_idx = 0
        for i, arg in enumerate(args[_BASE_ARGS_FORMAT_LEN:]):
            if i in tensordesc_indices:
                final_args.extend(make_tensordesc_arg(arg, tensordesc_meta[tensordesc_idx]))
                tensordesc_idx += 1
            else:
                final_args.append(arg)
        return launcher(*final_args)
    return inner
'''


class _Launcher36:
    """A stand-in shaped as Triton 3.6's CudaLauncher for a kernel with host TMA descriptors: its
    `launch` expands every descriptor at every call (make_tensordesc_arg), then calls the C launcher
    (here: records its arguments)."""
    def __init__(self, positions, metas, scratch=0):
        self.ns = {}
        exec(_LAUNCHER_36, self.ns)
        self.calls = []
        self.launch = self.ns["wrap"](lambda *a: self.calls.append(a), positions, metas)
        self.global_scratch_size, self.profile_scratch_size = scratch, 0
        self.launch_cooperative_grid, self.launch_pdl = False, True

    def __call__(self, gx, gy, gz, stream, function, *args):
        self.launch(gx, gy, gz, stream, function, self.launch_cooperative_grid, self.launch_pdl, None, None, *args)


def _descs():
    from triton.tools.tensor_descriptor import TensorDescriptor
    k = torch.empty(256, 64, dtype=torch.float16)
    v = torch.empty(256, 64, dtype=torch.float16)
    return k, v, TensorDescriptor(k, [256, 64], [64, 1], [32, 64]), TensorDescriptor(v, [256, 64], [64, 1], [32, 64])


def test_descriptors_expanded_once_each_and_launched_as_triton_launches(hop):
    """Where the launcher is Triton 3.6's shape, a bound launch expands each descriptor once (per
    base address, shape, strides and box) and hands the C launcher what Triton's path would."""
    k, v, kd, vd = _descs()
    run = _Launcher36(positions=[1, 3], metas=["meta K", "meta V"])
    compiled = _Compiled([])
    compiled.run = run
    descriptors = hop._Descriptors.of(compiled)
    assert descriptors is not None and descriptors.slots == ((1, "meta K"), (3, "meta V"))
    values = (k, kd, 7, vd, 0.5, 64)
    # Triton's path, then ours, for the same launch: the same arguments reach the C launcher
    run(2, 3, 1, 99, "fn", "packed", None, None, None, *values)
    descriptors(2, 3, 1, 99, "fn", "packed", None, None, None, values)
    assert run.calls[0] == run.calls[1]
    assert run.calls[1][:13] == (2, 3, 1, 99, "fn", False, True, None, None, "packed", None, None, None)
    assert run.calls[1][13:] == (k, ("map", k.data_ptr(), (32, 64), "meta K"), 256, 64, 64, 1, 7,
                                 ("map", v.data_ptr(), (32, 64), "meta V"), 256, 64, 64, 1, 0.5, 64)
    expansions = len(run.ns["expanded"])                    # 2 by Triton's path, 2 by ours
    _, _, kd2, vd2 = _descs()                                # new descriptors, new tensors: new maps
    for _ in range(3):
        descriptors(1, 1, 1, 99, "fn", "packed", None, None, None, (k, kd, 7, vd, 0.5, 64))
    assert len(run.ns["expanded"]) == expansions == 4
    kd.block_shape = [64, 64]                                # another box: another map
    descriptors(1, 1, 1, 99, "fn", "packed", None, None, None, (k, kd, 7, vd2, 0.5, 64))
    assert len(run.ns["expanded"]) == 6 and run.calls[-1][14] == ("map", k.data_ptr(), (64, 64), "meta K")
    for i in range(hop._Descriptors._MAX + 5):               # bounded: the cache starts again when full
        kd.block_shape = [16, 64]
        kd.strides = [64 + 8 * i, 1]
        descriptors(1, 1, 1, 99, "fn", "packed", None, None, None, (k, kd, 7, vd, 0.5, 64))
    assert len(descriptors.maps) <= hop._Descriptors._MAX


def test_descriptors_left_to_triton_where_its_launcher_differs(hop):
    compiled = _Compiled([])
    assert hop._Descriptors.of(compiled) is None                         # no descriptor expansion at all
    compiled.run = _Launcher36(positions=[1], metas=["m"], scratch=128)  # scratch memory: Triton's path
    assert hop._Descriptors.of(compiled) is None
    compiled.run = _Launcher36(positions=[1], metas=["m"])
    compiled.run.ns["_BASE_ARGS_FORMAT_LEN"] = 14                        # another launcher layout
    assert hop._Descriptors.of(compiled) is None


def test_descriptors_agree_with_the_installed_tritons_launcher(hop):
    """The installed Triton's own descriptor wrapper: either recognised, and then our expansion gives
    the C launcher what Triton's gives it (descriptors without compile metadata: no CUDA needed), or
    not recognised (another Triton), and its launcher keeps the work."""
    from triton.backends.nvidia import driver
    k, v, kd, vd = _descs()
    calls = []
    signature = {0: "*fp16", 1: "tensordesc<fp16[32, 64]>", 2: "i32"}
    try:
        inner = driver.wrap_handle_tensordesc(lambda *a: calls.append(a), signature, None)
    except Exception as exc:                                             # noqa: BLE001
        pytest.skip(f"this Triton's wrap_handle_tensordesc differs: {exc}")
    run = _Launcher36(positions=[1], metas=[None])
    run.launch = inner
    compiled = _Compiled([])
    compiled.run = run
    descriptors = hop._Descriptors.of(compiled)
    import triton
    if descriptors is None:
        assert triton.__version__ != "3.6.0"
        return
    run(1, 1, 1, 5, "fn", "packed", None, None, None, k, kd, 3)
    descriptors(1, 1, 1, 5, "fn", "packed", None, None, None, (k, kd, 3))
    assert len(calls) == 2 and calls[0] == calls[1]


# ----------------------------------------------------------------------------- who launches through it

class _Recorder:
    """Stands in for a kernel (kernel[grid](...)), torch.library.wrap_triton and launch_tuned at once,
    recording which path a launch took."""
    def __init__(self):
        self.log = []

    def __getitem__(self, grid):
        return lambda *args, **constexprs: self.log.append(("triton", grid, args, constexprs))

    def launch_tuned(self, kernel, grid, args, constexprs):
        self.log.append(("bound", grid, args, constexprs))

    def wrap_triton(self, kernel):
        self.log.append(("wrapped",))
        return kernel


class _CudaLike:
    """An argument that says it is on CUDA (no GPU here); not a torch.Tensor, so the eager check
    looks past it."""
    is_cuda = True
    dtype = torch.float16


def test_window_kernels_launch_eagerly_through_launch_tuned(monkeypatch):
    wa = kernel_module("window_attention")
    rec = _Recorder()
    monkeypatch.setattr(wa, "_interpreting", lambda: False)
    monkeypatch.setattr(wa, "_launch_tuned", lambda: rec.launch_tuned)
    monkeypatch.setattr(torch.library, "wrap_triton", rec.wrap_triton)
    grid = lambda meta: (1,)                                     # noqa: E731
    wa._launch(rec, grid, _CudaLike(), 7, BLOCK_D=64)            # eager on CUDA: bound
    assert rec.log[-1] == ("bound", grid, (rec.log[-1][2][0], 7), {"BLOCK_D": 64})
    wa._launch(rec, grid, torch.empty(2), 7, BLOCK_D=64)         # a CPU tensor: Triton's launch
    assert rec.log[-1][0] == "triton"
    monkeypatch.setattr(wa, "_launch_tuned", lambda: None)       # no Gluon, so no bound_launch: Triton's
    wa._launch(rec, grid, _CudaLike(), 7, BLOCK_D=64)
    assert rec.log[-1][0] == "triton"
    monkeypatch.setattr(wa, "_launch_tuned", lambda: rec.launch_tuned)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    wa._launch(rec, grid, _CudaLike(), 7, BLOCK_D=64)            # traced: wrap_triton, then its launch
    assert [e[0] for e in rec.log[-2:]] == ["wrapped", "triton"]


def test_gdpa_kernels_launch_eagerly_through_launch_tuned(monkeypatch):
    gd = kernel_module("gdpa")
    rec = _Recorder()
    monkeypatch.setattr(gd, "_INTERPRET", False)
    monkeypatch.setattr(gd, "_plain_eager", lambda x: True)
    monkeypatch.setattr(gd, "_launch_tuned", lambda: rec.launch_tuned)
    monkeypatch.setattr(torch.library, "wrap_triton", rec.wrap_triton)
    grid = gd._grid(128, 8, "BLOCK_M")
    gd._launch("fwd", 64, _CudaLike(), grid, (1, 2), {"ACT": "gelu"})
    kind, got_grid, args, constexprs = rec.log[-1]
    assert kind == "bound" and got_grid is grid and args == (1, 2) and constexprs == {"ACT": "gelu"}
    assert got_grid({"BLOCK_M": 64}) == (16,)
    monkeypatch.setattr(gd, "_launch_tuned", lambda: None)
    monkeypatch.setattr(gd, "_tuned", lambda name, width, autotune: rec)
    gd._launch("fwd", 64, _CudaLike(), grid, (1, 2), {"ACT": "gelu"})
    assert rec.log[-1][0] == "triton"
    monkeypatch.setattr(gd, "_plain_eager", lambda x: False)    # traced: wrap_triton
    gd._launch("fwd", 64, _CudaLike(), grid, (1, 2), {"ACT": "gelu"})
    assert [e[0] for e in rec.log[-2:]] == ["wrapped", "triton"]


def test_a_bound_launch_of_a_descriptor_kernel_expands_them_itself(hop):
    """launch binds a kernel whose launcher is Triton 3.6's shape with _Descriptors: its later
    launches reach the C launcher with each descriptor expanded (once) and the kernel's other
    parameters in order, without Triton's per-call expansion."""
    k, v, kd, vd = _descs()
    run = _Launcher36(positions=[1], metas=["meta K"])

    class _Kernel36(_Kernel):
        """Its compiled kernel's launcher is the 3.6-shaped stand-in."""
        def __getitem__(self, grid):
            def jit_launch(*args, **constexprs):
                self.log.append(("jit", grid, args, constexprs))
                compiled = _Compiled(self.log)
                compiled.run = run
                return compiled
            return jit_launch
    kernel = _Kernel36(["X", "K_DESC", "n", "BLOCK"])
    for _ in range(3):
        hop.launch(kernel, (4, 2), (k, kd, 32), {"BLOCK": 16})
    assert [e[0] for e in kernel.log] == ["jit"] and len(run.calls) == 2
    assert run.calls[0] == run.calls[1]
    assert run.calls[0][:5] == (4, 2, 1, 1234, "fn")
    assert run.calls[0][13:] == (k, ("map", k.data_ptr(), (32, 64), "meta K"), 256, 64, 64, 1, 32, 16)
    assert len(run.ns["expanded"]) == 1
