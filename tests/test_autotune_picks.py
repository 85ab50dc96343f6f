"""bench/autotune_picks.py's CPU-side parts: its cases build valid op calls, and a pinned autotuner
runs the one config given and is restored after (the GPU part compares Triton's eager choices with
inductor's; BENCHMARKS.md, seed pooling, twentieth session)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch
import triton

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import autotune_picks  # noqa: E402


@pytest.fixture
def tiny_golden(monkeypatch):
    """generated/kunlun_tiny imported, and dropped from sys.modules after (other tests build and
    import packages of that name elsewhere)."""
    monkeypatch.syspath_prepend(str(ROOT / "generated"))
    before = {k for k in sys.modules if k.split(".")[0] == "kunlun_tiny"}
    pkg = importlib.import_module("kunlun_tiny")
    pkg.ops = importlib.import_module("kunlun_tiny.ops")
    yield pkg
    for name in [k for k in sys.modules if k.split(".")[0] == "kunlun_tiny" and k not in before]:
        del sys.modules[name]


@pytest.mark.parametrize("case", ["seed_pooling", "gdpa", "window"])
def test_cases_make_valid_calls(case, tiny_golden, monkeypatch):
    monkeypatch.setattr(autotune_picks, "B", 3)
    monkeypatch.setattr(autotune_picks, "T", 24)
    monkeypatch.setattr(autotune_picks, "M", 8)
    call, op = autotune_picks.make_case(case, tiny_golden, "cpu", torch.Generator().manual_seed(0))
    out = call(lambda *a, **k: op(*a, **{**k, "backend": "torch"}))   # the GPU run uses "triton"
    H, D = autotune_picks.H, autotune_picks.D
    assert out.shape[-2:] == ((autotune_picks.SEEDS, D) if case == "seed_pooling" else (H, D))
    out.float().sum().backward()
    assert torch.isfinite(out.float()).all()


def test_pinned_runs_one_config_and_restores():
    a, b = triton.Config({"BLOCK": 16}, num_warps=4, num_stages=2), triton.Config({"BLOCK": 32}, num_warps=8)

    class Tuner:
        configs, cache = [a, b], {("key",): a}

    tuner = Tuner()
    seen = autotune_picks.pinned(tuner, b, lambda: (list(tuner.configs), dict(tuner.cache)))
    assert seen == ([b], {})
    assert tuner.configs == [a, b] and tuner.cache == {("key",): a}
    assert autotune_picks.same_config(b, triton.Config({"BLOCK": 32}, num_warps=8))
    assert not autotune_picks.same_config(a, triton.Config({"BLOCK": 16}, num_warps=4, num_stages=3))


def test_seed_pooling_configs_pins_a_config():
    """bench/seed_pooling_configs.py pins a config on the autotuner the kernels' own host code
    launches through (benchutil.pinned; interpreted here): the config given is the one that
    autotuner offers during the call, the result is the tuned launch's, and its configs and
    choices are restored after."""
    import seed_pooling_configs as spc
    from benchutil import pinned
    sp = spc.sp
    gen = torch.Generator().manual_seed(0)
    B, H, T, D, S = 2, 2, 70, 16, 16
    kv = torch.randn(B, T, H * D, generator=gen).view(B, T, H, D).transpose(1, 2)
    seeds, lengths = torch.randn(H, S, D, generator=gen), torch.tensor([70, 33])
    o, _ = sp.seed_pooling_forward(seeds, kv, kv, lengths, 0.25)
    tuner = sp._tuned_kernel(sp._fwd_tuned, sp._meta(seeds, kv, kv, 0.25)[0])
    saved, got = (list(tuner.configs), dict(tuner.cache)), []
    config = triton.Config({"BLOCK_T": 64}, num_warps=4, num_stages=1)

    def run():
        got.append(list(tuner.configs))
        assert sp._tuned_kernel(sp._fwd_tuned, sp._meta(seeds, kv, kv, 0.25)[0]) is tuner   # the one launched
        return sp.seed_pooling_forward(seeds, kv, kv, lengths, 0.25)
    o2, _ = pinned(tuner, config, run)
    assert got == [[config]] and (list(tuner.configs), dict(tuner.cache)) == saved
    torch.testing.assert_close(o2, o, rtol=1e-5, atol=1e-6)


def test_live_skips_dead_weak_proxies():
    """A weak proxy whose referent is gone raises ReferenceError on isinstance; the GPU run of
    call 1 (twenty-first session) died on one of inductor's while listing its autotuners."""
    import gc
    import weakref

    class Thing:
        pass

    keep, gone = Thing(), Thing()
    proxy = weakref.proxy(gone)
    del gone
    with pytest.raises(ReferenceError):
        isinstance(proxy, Thing)
    dead = 0
    for obj in gc.get_objects():   # the garbage collector does list the dead proxy
        try:
            isinstance(obj, Thing)
        except ReferenceError:
            dead += 1
    assert dead >= 1
    found = autotune_picks.live(Thing)
    assert keep in found and len(found) == 1
