"""bench/count_ops.py: the ops one training step dispatches (the host work of an eager step)."""
from __future__ import annotations

import importlib.util
import sys

from genutil import ROOT, SPECS, compiled, load_spec


def _count_ops():
    spec = importlib.util.spec_from_file_location("_kunlunc_count_ops", ROOT / "bench" / "count_ops.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_counts_each_attention_op_once_per_call(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "generated"))
    counts = _count_ops().count_step("kunlun_tiny", batch_size=2, autocast="bf16")
    graph = compiled(load_spec(SPECS / "kunlun_tiny.yaml")).graph
    ns = graph.meta["plan"].name
    for kind in ("gdpa", "window_attention", "seed_pooling"):
        n = sum(op.kind == kind for op in graph.ops())
        assert n > 0
        assert counts["forward"][f"kunlunc_{ns}.{kind}"] == n             # a custom op: one dispatch
        assert counts["backward"][f"kunlunc_{ns}.{kind}_backward"] == n
    assert counts["forward"]["aten._to_copy"] > 0 and counts["optimizer"]["aten._fused_adamw_"] == 1
    fp32 = _count_ops().count_step("kunlun_tiny", batch_size=2, autocast="none")
    assert fp32["forward"]["aten._to_copy"] < counts["forward"]["aten._to_copy"]   # autocast casts
    assert _count_ops().main(["kunlun_tiny", "--top", "3"]) == 0
    assert "ops per training step" in capsys.readouterr().out
