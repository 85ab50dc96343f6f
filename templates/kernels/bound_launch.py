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

This file depends on torch and triton only; it is copied as-is into generated packages.
"""
import inspect

import torch
import triton

__all__ = ["launch", "launch_tuned"]

# (kernel, device, argument specializations, [autotune key values,] constexprs) -> bound launch or None
_BOUND: dict = {}
_KEY_POSITIONS: dict = {}   # autotuner -> positions of its key's arguments among the positional ones


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


def _bind(kernel, compiled, constexprs: dict, n_args: int):
    """(compiled, the values of the parameters after the first n_args in signature order), or None
    where this Triton's compiled kernel lacks what a direct launch needs."""
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
    return compiled, tuple(tail)


def _run(bound, device: int, grid: tuple, args: tuple) -> None:
    """One launch of a bound kernel: its launcher called as Triton's launch path calls it."""
    compiled, tail = bound
    gx, gy, gz = (*grid, 1, 1)[:3]
    stream = _stream(device)
    values = (*args, *tail)
    hooks = triton.knobs.runtime
    compiled.run(gx, gy, gz, stream, compiled.function, compiled.packed_metadata,
                 compiled.launch_metadata(grid, stream, *values), hooks.launch_enter_hook,
                 hooks.launch_exit_hook, *values)


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
    config's pre-hook runs before each of them, as the autotuner runs it before each launch."""
    device = _device()
    try:
        key = _tuned_key(tuner, device, args, constexprs)
        bound = _BOUND[key]
    except KeyError:
        compiled = tuner[grid](*args, **constexprs)
        config = tuner.best_config
        direct = _bind(tuner.fn, compiled, {**constexprs, **config.kwargs}, len(args))
        _BOUND[key] = (config, direct) if direct is not None else None
        return
    except TypeError:            # unhashable: the autotuner's path every time
        tuner[grid](*args, **constexprs)
        return
    if bound is None:
        tuner[grid](*args, **constexprs)
        return
    config, direct = bound
    if config.pre_hook is not None:
        config.pre_hook({**dict(zip(tuner.arg_names, args)), **constexprs, **config.all_kwargs()})
    _run(direct, device, grid, args)
