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


def test_copy_chains_names_who_copied_what():
    """--trace-copies: each copy counted once per (issuing chain, shapes), innermost op first."""
    from torch.profiler import profile
    x = torch.randn(6, 4)
    with profile(record_shapes=True) as prof:
        for _ in range(2):
            x.t().contiguous()          # aten::contiguous -> aten::clone -> aten::copy_
        x.clone()
    chains = profile_step.copy_chains(prof.events())
    assert chains[(("aten::copy_", "aten::clone", "aten::contiguous"), "[[4, 6], [4, 6], []]")] == 2
    assert chains[(("aten::clone", "aten::contiguous"), "[[4, 6], []]")] == 2
    assert chains[(("aten::clone",), "[[6, 4], []]")] == 1
    assert all(chain[0] in profile_step.COPIES for chain, _ in chains)


def test_gemm_table_prices_each_shape():
    """--gemms: FLOPs from the recorded shapes of mm, addmm, bmm and baddbmm, one row a shape."""
    from torch.profiler import profile
    a, b, bias = torch.randn(64, 32), torch.randn(32, 16), torch.randn(16)
    x, y = torch.randn(3, 8, 4), torch.randn(3, 4, 5)
    with profile(record_shapes=True) as prof:
        for _ in range(2):
            torch.mm(a, b)
            torch.addmm(bias, a, b)
            torch.bmm(x, y)
            torch.baddbmm(torch.zeros(3, 8, 5), x, y)
    rows = profile_step.gemm_rows(prof.key_averages(group_by_input_shape=True), steps=2, device=False)
    by_op = {r["op"]: r for r in rows}
    assert set(by_op) == {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
    assert by_op["aten::mm"]["flops"] == by_op["aten::addmm"]["flops"] == 2 * 64 * 32 * 16
    assert by_op["aten::bmm"]["flops"] == by_op["aten::baddbmm"]["flops"] == 2 * 3 * 8 * 4 * 5
    assert all(r["calls"] == 1 and r["s"] > 0 for r in rows)
    assert profile_step.gemm_flops("aten::mm", [[4, 3]]) == 0          # not a GEMM's shapes
    text = profile_step.format_gemms(rows, peak_tflops=989, top=2)
    assert "GEMMs:" in text and len(text.splitlines()) == 2 + 2 + 1   # blank, title, header, 2 rows
