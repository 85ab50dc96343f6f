"""bench/count_ops.py: the ops one training step dispatches (the host work of an eager step)."""
from __future__ import annotations

from genutil import ROOT, SPECS, compiled, load_spec
from opsload import import_file

count_ops = import_file(ROOT / "bench" / "count_ops.py", "_kunlunc_count_ops")


def test_counts_each_attention_op_once_per_call(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "generated"))
    counts = count_ops.count_step("kunlun_tiny", batch_size=2, autocast="bf16")
    graph = compiled(load_spec(SPECS / "kunlun_tiny.yaml")).graph
    ns = graph.meta["plan"].name
    for kind in ("gdpa", "window_attention", "seed_pooling"):
        n = sum(op.kind == kind for op in graph.ops())
        assert n > 0
        assert counts["forward"][f"kunlunc_{ns}.{kind}"] == n             # a custom op: one dispatch
        assert counts["backward"][f"kunlunc_{ns}.{kind}_backward"] == n
    assert counts["forward"]["aten._to_copy"] > 0 and counts["optimizer"]["aten._fused_adamw_"] == 1
    fp32 = count_ops.count_step("kunlun_tiny", batch_size=2, autocast="none")
    assert fp32["forward"]["aten._to_copy"] < counts["forward"]["aten._to_copy"]   # autocast casts
    assert count_ops.main(["kunlun_tiny", "--top", "3"]) == 0
    assert "ops per training step" in capsys.readouterr().out


def test_counts_the_layout_and_stream_asked_for(monkeypatch, capsys):
    """--layout and --stream reach the step: a padded batch has no offsets to search (the packed
    embedding finds each row's example with searchsorted), and the compute-dtype stream casts less."""
    monkeypatch.syspath_prepend(str(ROOT / "generated"))
    packed = count_ops.count_step("kunlun_tiny", 2, "bf16", layout="packed")
    padded = count_ops.count_step("kunlun_tiny", 2, "bf16", layout="padded")
    assert packed["forward"]["aten.searchsorted"] > 0 and padded["forward"]["aten.searchsorted"] == 0
    compute = count_ops.count_step("kunlun_tiny", 2, "bf16", layout="packed", stream="compute")
    casts = lambda c: c["forward"]["aten._to_copy"] + c["backward"]["aten._to_copy"]   # noqa: E731
    assert casts(compute) < casts(packed)
    assert count_ops.main(["kunlun_tiny", "--layout", "padded", "--stream", "compute", "--top", "2"]) == 0
    assert "padded, autocast bf16, compute stream" in capsys.readouterr().out


def test_the_forward_dispatches_one_gemm_per_launching_ir_matmul(monkeypatch):
    """The generated forward dispatches exactly one GEMM (mm, addmm, bmm, baddbmm) per matmul-class
    IR op with a kernel of its own: batched experts, feature projections batched by width, the
    merged K/V and item projections, as the IR prices them (kunlun_6g: 269 matmul-class ops, 30
    riding a batched expert kernel, 13 a batched feature projection)."""
    from kunlun_compiler.cost import MATMUL_KINDS
    monkeypatch.syspath_prepend(str(ROOT / "generated"))
    for name in ("kunlun_tiny", "kunlun_6g"):
        graph = compiled(load_spec(SPECS / f"{name}.yaml")).graph
        own = sum(1 for op in graph.ops() if op.kind in MATMUL_KINDS and not op.attr("batched_with"))
        counts = count_ops.count_step(name, batch_size=1, autocast="bf16")
        assert count_ops.matmuls(counts["forward"]) == own, name
    assert own == 269 - 30 - 13
