"""Specs nobody wrote: each validates, builds, runs forward and backward, and its FLOPs match
FlopCounterMode exactly."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from genutil import build_and_import, estimate, full_length, spec_text
from specgen import random_spec


@pytest.mark.parametrize("seed", range(40))
def test_random_spec_builds_runs_and_counts(seed, tmp_path):
    spec = full_length(spec_text(random_spec(seed)))
    pkg, c = build_and_import(spec, tmp_path)
    torch.manual_seed(seed)
    model = pkg.Model()
    batch = pkg.example_batch(3, seed=seed)
    out = model(batch)
    assert out.shape == (3, len(spec.model.head.tasks)) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert sum(p.numel() for p in model.parameters()) == estimate(c.graph).params
    with FlopCounterMode(display=False) as counter:
        model(pkg.example_batch(3, seed=seed, full=True))
    assert counter.get_total_flops() == estimate(c.graph, batch_size=3).flops_fwd_exec_per_step
