"""Direct kernel launches for eager calls: Triton's compiled kernel bound once, then its launcher called.

A launch through kernel[grid](...) does Triton's per-launch work in Python on every call: the JIT's
binder specializes every argument (about 40 here: pointers, strides, TMA descriptors) and finds the
compiled kernel, and an autotuned kernel's Autotuner first builds its key from the arguments' values
and dtypes. That is tens of microseconds a launch, more than a small kernel runs:

- a Gluon window dK/dV launch 62.5 µs of host time, of which the binder 24.8 and the compiled
  kernel's own launcher 21.9 (bench/launch_overhead.py --pieces on an H200 machine); bound, 41.4 µs;
- a seed-pooling forward 104 µs of host time a call with pointer loads, 139 µs with TMA
  descriptors, where its second level runs 10-17 µs of GPU work (bench/results/2026-12-01-h200-s26,
  call 3: cProfile has the Autotuner's own run() and the JIT's run() as the largest parts).

`launch` and `launch_tuned` go through Triton's path once per argument specialization (`_spec`:
what Triton's binder specializes on, so equal keys get the same compiled kernel) and device, and
afterwards call the compiled kernel's launcher themselves, with what Triton's launch passes it
(grid, stream, launch hooks, every parameter in signature order). For eager calls on CUDA tensors
only: traced calls (torch.compile, wrap_triton) and the interpreter keep Triton's path.

A kernel that takes host TMA descriptors (triton.tools.tensor_descriptor.TensorDescriptor: the
seed-pooling forward's K and V) pays more: Triton 3.6's launcher turns each into a CUtensorMap at
every launch (cuTensorMapEncodeTiled) inside a Python loop over every argument. `_Descriptors` does
that expansion itself, once per descriptor (its base address, shape, strides and box: the map is a
function of these alone), and calls the launcher underneath; where the installed Triton's launcher
is not of that shape it is left to do the work.

This file depends on torch and triton only; it is copied as-is into generated packages.
"""
import inspect

import torch
import triton

__all__ = ["launch", "launch_tuned"]

# (kernel, device, argument specializations, [autotune key values,] constexprs) -> bound launch or None
_BOUND: dict = {}
_KEY_POSITIONS: dict = {}   # autotuner -> positions of its key's arguments among the positional ones
_UNBOUND = object()         # no binding yet (None in _BOUND: one that cannot be made)


def _spec(x):
    """What Triton's launch specializes a kernel argument on (its JIT binder's rule in Triton 3.6 to
    3.9; tests/test_bound_launch.py checks it against triton's own): an int's being 1, its
    divisibility by 16 and its width; a tensor's dtype and 16-byte alignment; a TMA descriptor's
    dtype and block (and a Gluon one's layout, a host one's padding); floats are fp32; bools, None
    and anything else by value. (Ints, most of the arguments, as one small int: the key is built on
    every launch.)"""
    kind = type(x)
    if kind is int:
        return (x == 1) | ((x & 15) == 0) << 1 | (-2**31 <= x < 2**31) << 2 | (x < 2**63) << 3
    if kind is float:
        return float
    if isinstance(x, torch.Tensor):
        return (x.dtype, x.data_ptr() & 15 == 0)
    if hasattr(x, "block_shape") and hasattr(x, "base"):      # a TMA descriptor (Gluon's or the host's)
        return (kind, x.base.dtype, *x.block_shape, getattr(x, "layout", None), getattr(x, "padding", None),
                getattr(x, "round_f32_to_tf32", None))
    return (kind, x)


def _device() -> int:
    return torch.cuda.current_device()


def _stream(device: int) -> int:
    return torch._C._cuda_getCurrentRawStream(device)   # what Triton's own launch asks for


class _Descriptors:
    """A compiled kernel's launcher with its host TMA descriptors expanded here, each descriptor's
    expansion (Triton's own function: the CUtensorMap, then the shape and strides the kernel takes
    beside it) made once and kept. Triton 3.6's CudaLauncher calls `launch`, a closure that expands
    every descriptor argument at every call (triton/backends/nvidia/driver.py,
    wrap_handle_tensordesc); `of` finds the C launcher, the descriptors' positions and metadata in
    it, or returns None where the closure is not of that shape (another Triton: it keeps its path)."""

    _BASE = 13          # the launcher's arguments before the kernel's (Triton 3.6's _BASE_ARGS_FORMAT)
    # Descriptors kept a kernel; past it the cache starts again. An eager training step passes each
    # kernel the descriptors of every layer's tensors (the caching allocator tends to hand the same
    # addresses back the next step), so the bound is generous: an entry is under 1 KB.
    _MAX = 1024

    def __init__(self, run, launcher, positions, metas, expand):
        self.launcher, self.expand = launcher, expand
        self.options = (run.launch_cooperative_grid, run.launch_pdl)   # fixed when Triton made the launcher
        self.slots = tuple(zip(positions, metas))
        self.maps: dict = {}

    @classmethod
    def of(cls, compiled):
        run = getattr(compiled, "run", None)
        inner = getattr(run, "launch", None)
        code = getattr(inner, "__code__", None)
        if code is None or code.co_name != "inner" or not inner.__closure__:
            return None
        cells = dict(zip(code.co_freevars, (c.cell_contents for c in inner.__closure__)))
        launcher, positions = cells.get("launcher"), cells.get("tensordesc_indices")
        metas, expand = cells.get("tensordesc_meta"), inner.__globals__.get("make_tensordesc_arg")
        if (launcher is None or not positions or metas is None or expand is None
                or inner.__globals__.get("_BASE_ARGS_FORMAT_LEN") != cls._BASE
                or len(metas) != len(positions)
                or inspect.signature(expand).parameters.keys() != {"arg", "metadata"}
                or getattr(run, "global_scratch_size", 1) or getattr(run, "profile_scratch_size", 1)
                or not all(hasattr(run, a) for a in ("launch_cooperative_grid", "launch_pdl"))):
            return None
        return cls(run, launcher, sorted(positions), metas, expand)

    def _expanded(self, desc, meta) -> list:
        key = (desc.base.data_ptr(), *desc.shape, *desc.strides, *desc.block_shape, getattr(desc, "padding", None))
        try:
            return self.maps[key]
        except KeyError:
            if len(self.maps) >= self._MAX:
                self.maps.clear()
            expanded = self.maps[key] = self.expand(desc, meta)
            return expanded

    def arguments(self, values: tuple) -> list:
        """The kernel's arguments as the C launcher takes them: each descriptor expanded in place."""
        out, last = [], 0
        for position, meta in self.slots:
            out += values[last:position]
            out += self._expanded(values[position], meta)
            last = position + 1
        out += values[last:]
        return out

    def __call__(self, gx, gy, gz, stream, function, packed, launch_metadata, enter, exit_, values):
        """What CudaLauncher.__call__ does for a kernel without scratch memory, and its launch after."""
        self.launcher(gx, gy, gz, stream, function, *self.options, None, None,
                      packed, launch_metadata, enter, exit_, *self.arguments(values))


def _bind(kernel, compiled, constexprs: dict, n_args: int):
    """(compiled, the values of the parameters after the first n_args in signature order, its
    _Descriptors or None), or None where this Triton's compiled kernel lacks what a direct launch
    needs."""
    if hasattr(compiled, "result"):
        compiled = compiled.result()
    if not all(hasattr(compiled, a) for a in ("run", "function", "packed_metadata", "launch_metadata")):
        return None
    params = getattr(kernel, "params", None)
    if params is None or len(params) < n_args:
        return None
    tail = []
    for param in params[n_args:]:
        if param.name in constexprs:
            tail.append(constexprs[param.name])
        elif param.default is not inspect.Parameter.empty:
            tail.append(param.default)
        else:
            return None
    return compiled, tuple(tail), _Descriptors.of(compiled)


def _run(bound, device: int, grid: tuple, args: tuple) -> None:
    """One launch of a bound kernel: its launcher called as Triton's launch path calls it."""
    compiled, tail, descriptors = bound
    gx, gy, gz = (*grid, 1, 1)[:3]
    stream = _stream(device)
    values = (*args, *tail)
    hooks = triton.knobs.runtime
    metadata = compiled.launch_metadata(grid, stream, *values)
    if descriptors is None:
        compiled.run(gx, gy, gz, stream, compiled.function, compiled.packed_metadata, metadata,
                     hooks.launch_enter_hook, hooks.launch_exit_hook, *values)
    else:
        descriptors(gx, gy, gz, stream, compiled.function, compiled.packed_metadata, metadata,
                    hooks.launch_enter_hook, hooks.launch_exit_hook, values)


def _key(kernel, device: int, args: tuple, constexprs: dict) -> tuple:
    """launch's key in _BOUND: the kernel, device, every argument's specialization, the constexprs."""
    return kernel, device, tuple(map(_spec, args)), tuple(constexprs.items())


def _tuned_key(tuner, device: int, args: tuple, constexprs: dict) -> tuple:
    """launch_tuned's key in _BOUND: _key's, and the values of the autotuner's key."""
    return tuner, device, tuple(map(_spec, args)), _key_values(tuner, args), tuple(constexprs.items())


def launch(kernel, grid: tuple, args: tuple, constexprs: dict) -> None:
    """kernel[grid](*args, **constexprs), with Triton's compiled kernel bound once per argument
    specialization (_spec) and device: later launches call its launcher directly, as Triton's own
    launch path does after binding (same stream, hooks and scratch allocation)."""
    device = _device()
    key = _key(kernel, device, args, constexprs)
    try:
        bound = _BOUND[key]
    except KeyError:
        compiled = kernel[grid](*args, **constexprs)
        _BOUND[key] = _bind(kernel, compiled, constexprs, len(args))
        return
    except TypeError:            # an unhashable constexpr or layout: Triton's path every time
        kernel[grid](*args, **constexprs)
        return
    if bound is None:
        kernel[grid](*args, **constexprs)
        return
    _run(bound, device, grid, args)


def _key_values(tuner, args: tuple) -> tuple:
    """The values of the autotuner's key among the positional args (its key's constexprs are in
    the launch's constexprs, which the bound key holds whole)."""
    positions = _KEY_POSITIONS.get(tuner)
    if positions is None:
        names = list(tuner.arg_names)
        positions = _KEY_POSITIONS[tuner] = tuple(names.index(k) for k in tuner.keys if k in names)
    return tuple(args[i] for i in positions if i < len(args))


def launch_tuned(tuner, grid: tuple, args: tuple, constexprs: dict) -> None:
    """tuner[grid](*args, **constexprs) for a triton.autotune'd kernel, bound as `launch` binds once
    the autotuner has chosen a config for this key (its key's values are part of the bound key, as
    every argument's specialization is): later launches skip both the autotuner and the JIT. The
    config's pre-hook runs before each of them, as the autotuner runs it before each launch, and a
    callable grid is called as the autotuner calls it (with the arguments by name, the constexprs
    and the config's values)."""
    device = _device()
    key = _tuned_key(tuner, device, args, constexprs)
    try:
        bound = _BOUND.get(key, _UNBOUND)
    except TypeError:            # unhashable: the autotuner's path every time
        tuner[grid](*args, **constexprs)
        return
    if bound is None:            # this Triton's compiled kernel cannot be launched directly
        tuner[grid](*args, **constexprs)
        return
    # A binding holds the tuner's config list of its time: a list put in its place since (as
    # benchutil.pinned pins one config) binds again, so a launch runs what the autotuner gives now.
    if bound is _UNBOUND or bound[2] is not getattr(tuner, "configs", None):
        compiled = tuner[grid](*args, **constexprs)
        config = tuner.best_config
        direct = _bind(tuner.fn, compiled, {**constexprs, **config.kwargs}, len(args))
        _BOUND[key] = (config, direct, getattr(tuner, "configs", None)) if direct is not None else None
        return
    config, direct, _ = bound
    if config.pre_hook is not None or callable(grid):
        named = {**dict(zip(tuner.arg_names, args)), **constexprs, **config.all_kwargs()}
        if config.pre_hook is not None:
            config.pre_hook(named)
        if callable(grid):
            grid = grid(named)
    _run(direct, device, grid, args)
