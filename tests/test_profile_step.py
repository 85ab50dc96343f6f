"""bench/profile_step.py --group: one group's blocks alone, forward and backward on captured inputs."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

from genutil import SPECS, compiled, load_spec
from kunlun_compiler.codegen import render
from kunlun_compiler.writer import write_package

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import profile_step  # noqa: E402


def test_group_step_runs_that_group_alone(tmp_path, monkeypatch):
    c = compiled(load_spec(SPECS / "kunlun_tiny.yaml"))
    write_package(render(c, "kunlun_tiny.yaml"), tmp_path, "kunlunc_profile_group")
    monkeypatch.syspath_prepend(str(tmp_path))
    pkg = importlib.import_module("kunlunc_profile_group")
    bench = importlib.import_module("kunlunc_profile_group.bench")
    torch.manual_seed(0)
    model = pkg.Model()
    step = profile_step.group_step(bench, model, pkg.example_batch(4, seed=0), "wukong")
    step()
    wukong = {n for n, g in bench.BLOCK_GROUPS.items() if g == "wukong"}
    assert wukong
    for name in bench.BLOCK_GROUPS:
        grads = [p.grad for p in getattr(model, name).parameters()]
        if name in wukong:
            assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), name
        else:   # the other blocks ran forward only, to capture the inputs
            assert all(g is None for g in grads), name
    with pytest.raises(SystemExit, match="no block in group 'attention'; groups: .*wukong"):
        profile_step.group_step(bench, model, pkg.example_batch(4, seed=0), "attention")
