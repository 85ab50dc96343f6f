"""Launch rules for the Triton kernels under torch.library.wrap_triton (a lint over their source).

torch's wrap_triton (torch 2.11-2.13) rebuilds an autotuner on *every eager call* when the kernel
is an autotuner with `prune_configs_by` or `@triton.heuristics`, or when a launch passes
num_warps/num_stages/num_ctas: the rebuilt autotuner has an empty cache, so every call re-benchmarks
every config. On the H200 that made seed pooling 490 ms per call instead of ~0.2 ms (2026-11-29).
These rules keep any kernel from doing it again; CPU tests cannot see the cost (one config there).
"""
import re
from pathlib import Path

import pytest
import triton

# the kernel files (bound_launch.py, their launcher, defines no kernel)
KERNELS = sorted(p for p in (Path(__file__).resolve().parent.parent / "templates" / "kernels").glob("*.py")
                 if "@triton.jit" in p.read_text() or "@gluon.jit" in p.read_text())


def _gluon_only(code: str) -> bool:
    """A file of Gluon kernels only (window_attention_hopper.py, gdpa_hopper.py)."""
    return "@gluon.jit" in code and "@triton.jit" not in code


@pytest.mark.parametrize("path", [p for p in KERNELS if p.name != "__init__.py"], ids=lambda p: p.name)
def test_no_per_call_autotuner_rebuild(path):
    code = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())  # drop comments
    if _gluon_only(code):   # launched directly, never through wrap_triton: its launch options are its own
        assert "wrap_triton" not in code, f"{path.name}: Gluon kernels cannot be traced by wrap_triton"
        return
    assert not re.search(r"prune_configs_by\s*=", code), "filter configs before triton.autotune instead"
    assert not re.search(r"@triton\.heuristics", code), "@triton.heuristics under wrap_triton rebuilds per call"
    launch_options = [m.group(0) for m in re.finditer(r"\bnum_(?:warps|stages|ctas)\s*=", code)]
    in_configs = len(re.findall(r"triton\.Config\(", code))
    assert len(launch_options) <= 2 * in_configs, (
        f"{path.name}: num_warps/num_stages passed at a launch; put them in a triton.Config")


_COUNT_CONFIGS = """
import importlib.util, json, sys
def load(name):
    spec = importlib.util.spec_from_file_location("_k_" + name, sys.argv[1] + "/" + name + ".py")
    m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m; spec.loader.exec_module(m)
    return m
g, w, s = load("gdpa"), load("window_attention"), load("seed_pooling")
tuners = {"gdpa": g._tuned("fwd", "", g.AUTOTUNE), "window": w._FWD[False],
          "seed": s._fwd_tuned(16, 16, 64, True, False), "seed_bwd": s._bwd_tuned(64, 64, 128, True, False)}
key = sys.argv[2]
print(json.dumps({name: (len(t.configs) if key == "configs" else t.cache_results) for name, t in tuners.items()}))
"""


@pytest.mark.parametrize("knob, many", [(None, True), ("0", False)])
def test_kunlunc_autotune_knob(knob, many):
    """KUNLUNC_AUTOTUNE=0 leaves one config per kernel (no tuning); unset, several (the GPU configs:
    the interpreter is off in this subprocess, nothing is launched)."""
    import json
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "KUNLUNC_AUTOTUNE")}
    if knob is not None:
        env["KUNLUNC_AUTOTUNE"] = knob
    out = subprocess.run([sys.executable, "-c", _COUNT_CONFIGS, str(KERNELS[0].parent), "configs"], env=env,
                         capture_output=True, text=True, check=True).stdout
    counts = json.loads(out)
    assert all((n > 1) == many and n >= 1 for n in counts.values()), counts


def test_autotune_timings_are_cached_on_disk():
    """Every kernel's autotuner keeps its timings in Triton's cache (cache_results), so a new
    process does not time every config again (on a Triton that has the option; the interpreter
    is off in this subprocess, as on a GPU)."""
    import inspect
    import json
    import os
    import subprocess
    import sys
    if "cache_results" not in inspect.signature(triton.autotune).parameters:
        pytest.skip("Triton < 3.3 has no autotune cache_results")
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TRITON_CACHE_AUTOTUNING")}
    out = subprocess.run([sys.executable, "-c", _COUNT_CONFIGS, str(KERNELS[0].parent), "cache"], env=env,
                         capture_output=True, text=True, check=True).stdout
    cached = json.loads(out)
    assert cached == {"gdpa": True, "window": True, "seed": True, "seed_bwd": True}, cached


def _kernels_and_float_params(code: str):
    """(kernel name, body, its float scalar parameters) of each @triton.jit kernel (a function
    named *_kernel); float scalars are the parameters named after a scale."""
    kernel = r"@triton\.jit(?:\(.*?\))?\s*\ndef (\w+_kernel)\((.*?)\):\n(.*?)(?=\n@|\n\S|\Z)"
    for m in re.finditer(kernel, code, re.S):
        params = [p.split(":")[0].strip() for p in m.group(2).split(",")]
        yield m.group(1), m.group(3), [p for p in params if re.fullmatch(r"\w*scale\w*", p)]


@pytest.mark.parametrize("path", [p for p in KERNELS if p.name != "__init__.py"], ids=lambda p: p.name)
def test_float_scalars_are_cast_to_fp32(path):
    """torch.compile (inductor) passes a Python float to a user kernel as fp64, where an eager
    launch passes fp32: fp64 then spreads into the accumulators and tl.dot rejects them (the
    window kernel failed to compile so on the H200, 2026-11-29). Each kernel casts them first.
    A file of Gluon kernels only is exempt: Gluon kernels are launched
    eagerly (a float arrives as fp32), never through wrap_triton, which this checks instead."""
    code = path.read_text()
    if _gluon_only(code):
        assert "wrap_triton" not in code, f"{path.name}: Gluon kernels cannot be traced by wrap_triton"
        return
    kernels = list(_kernels_and_float_params(code))
    assert kernels, f"no @triton.jit kernels found in {path.name}"
    for name, body, floats in kernels:
        for p in floats:
            assert re.search(rf"\b{p}\b[^\n]*=[^\n]*tl\.cast\({p}, tl\.float32\)", body), (
                f"{path.name}:{name}: cast float parameter {p!r} with tl.cast({p}, tl.float32) first")
