"""bench/profile_step.py --group: one group's blocks alone, forward and backward on captured inputs."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from genutil import tiny_package

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import profile_step  # noqa: E402


def test_group_step_runs_that_group_alone(tmp_path, monkeypatch):
    pkg, bench = tiny_package(tmp_path, monkeypatch, "kunlunc_profile_group")
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
