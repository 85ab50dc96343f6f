"""The pass pipeline: what each pass reports, IR verification naming the pass, determinism."""
from __future__ import annotations

import pytest

from genutil import SPECS, compiled, load_spec
from kunlun_compiler.compiler import compile_spec
from kunlun_compiler.ir import IRError
from kunlun_compiler.lower import lower
from kunlun_compiler.passes import PIPELINE, PassManager, PassResult
from kunlun_compiler.plan import canonicalize


@pytest.fixture(scope="module")
def tiny():
    return compiled(load_spec(SPECS / "kunlun_tiny.yaml"))


def test_reports_say_what_changed(tiny):
    by_name = {r.name: r for r in tiny.reports}
    assert list(by_name) == ["compskip", "tower_depth", "prune_readouts", "fuse", "batch_kernels", "select_kernels"]
    assert by_name["compskip"].stats == {"removed_blocks": 6, "global": 1, "local": 1, "both": 0}
    assert "removed l1_click_hsp (layer 1 is local)" in by_name["compskip"].notes
    assert by_name["tower_depth"].notes == ("removed l1_impression_swa (tower impression has 1 of 2 layers)",)
    assert by_name["fuse"].stats == {"gdpa": 2, "seed_pooling": 3, "window_attention": 1}
    # two experts of 9 tokens each (one run): each of the 9 launching ops of expert 1's one Wukong
    # layer rides expert 0's batched kernel, in both interaction blocks
    assert by_name["batch_kernels"].stats == {"batched_ops": 18, "kernels": 18}
    assert by_name["batch_kernels"].notes == ("Wukong expert ops: 36 in 18 kernels",)
    assert by_name["select_kernels"].stats == {"gdpa:torch": 2, "seed_pooling:torch": 3, "window_attention:torch": 1}
    for r in tiny.reports:
        assert r.ops_after <= r.ops_before


def test_kernel_selection_follows_the_target():
    spec = load_spec(SPECS / "kunlun_tiny.yaml")
    gpu = compile_spec(spec, "h200")
    kernels = {op.attr("kernel") for op in gpu.graph.ops() if op.attr("kernel")}
    assert kernels == {"triton"}
    assert {op.attr("kernel") for op in compile_spec(spec, "cpu").graph.ops() if op.attr("kernel")} == {"torch"}


def test_unfused_families_stay_chains():
    spec = load_spec(SPECS / "ablation_no_gdpa_fusion.yaml")
    c = compile_spec(spec, verify="each")
    kinds = c.graph.kinds()
    assert "gdpa" not in kinds and kinds["window_attention"] > 0 and kinds["seed_pooling"] > 0
    fuse = next(r for r in c.reports if r.name == "fuse")
    assert any("compile.fuse leaves it unfused" in n for n in fuse.notes)


def test_a_pass_that_breaks_the_ir_is_named(tiny):
    def broken(graph):
        op = next(o for o in graph.ops() if o.kind == "linear")
        graph.update(op.with_(shape=(999,)))
        return PassResult(graph, True)

    plan, _ = canonicalize(load_spec(SPECS / "kunlun_tiny.yaml"))
    with pytest.raises(IRError, match="after pass broken"):
        PassManager((PIPELINE[0], broken)).run(lower(plan))


def test_compilation_is_deterministic():
    spec = load_spec(SPECS / "kunlun_6g.yaml")
    a, b = compile_spec(spec), compile_spec(spec)
    assert [op.id for op in a.graph.ops()] == [op.id for op in b.graph.ops()]
    assert [o.shape for o in a.graph.ops()] == [o.shape for o in b.graph.ops()]


def test_batched_experts_follow_the_runs_of_group_sizes():
    """The first Wukong layer batches each run of experts with one token count, later layers all
    experts; a batched op names the op whose kernel it shares, of the same role and layer."""
    c = compile_spec(load_spec(SPECS / "kunlun_60g.yaml"), verify="each")   # groups (33, 32, 32), 2 layers
    g = c.graph
    assert g.op("l0_interaction.expert0.layer0.fm").attr("batched_with") is None
    assert g.op("l0_interaction.expert1.layer0.fm").attr("batched_with") is None
    assert g.op("l0_interaction.expert2.layer0.fm").attr("batched_with") == "l0_interaction.expert1.layer0.fm"
    assert g.op("l0_interaction.expert2.layer1.fmb_out").attr("batched_with") == "l0_interaction.expert0.layer1.fmb_out"
    assert g.op("l0_interaction.expert2.layer0.fm_proj").attr("batched_with") is None   # params launch nothing
    one = compile_spec(load_spec(SPECS / "ablation_one_expert.yaml"))
    assert not any(op.attr("batched_with") for op in one.graph.ops() if op.block.endswith("_interaction"))
    report = next(r for r in one.reports if r.name == "batch_kernels")
    assert report.notes == ("feature projections: 16 in 3 kernels",)                # no expert batch


def test_feature_projections_of_one_width_share_a_kernel():
    """FeatureTokens projects the sparse features of one embedding width in one bmm: each
    projection names the first of its width; the dense projection and features of the model
    width (no projection) are left alone."""
    c = compile_spec(load_spec(SPECS / "kunlun_60g.yaml"))
    projs = [op for op in c.graph.ops() if op.block == "features" and op.kind == "linear"]
    widths: dict[int, str] = {}
    for op in projs:
        if c.graph.op(op.inputs[0]).kind != "embedding":
            assert op.attr("batched_with") is None, op.id                      # the dense projection
            continue
        leader = widths.setdefault(op.attrs["in_features"], op.id)
        assert op.attr("batched_with") == (None if leader == op.id else leader), op.id
    assert len(widths) == 3 and sum(1 for op in projs if op.attr("batched_with")) == 13
    assert "feature projections: 16 in 3 kernels" in next(r for r in c.reports if r.name == "batch_kernels").notes


def test_batch_kernels_refuses_ops_of_different_shapes(monkeypatch):
    """Batching experts whose token counts differ would price one kernel for two shapes: an IR error."""
    import sys
    be = sys.modules["kunlun_compiler.passes.batch_kernels"]     # the module (the package exports the pass)
    monkeypatch.setattr(be, "expert_runs", lambda groups: [(0, len(groups))])   # 33, 32, 32 as one run
    with pytest.raises(IRError, match=r"expert1\.layer0\.\w+ .* cannot share the kernel of .*expert0\.layer0"):
        compile_spec(load_spec(SPECS / "kunlun_60g.yaml"))


def test_kernel_reasons_say_where_the_backward_runs_in_gluon():
    """On sm_90 targets the reason names the Gluon backward at the head dims the kernel files run it
    at (GDPA at 64 only, window attention at 64 and 128); elsewhere it does not."""
    spec = load_spec(SPECS / "kunlun_60g.yaml")

    def reasons(target):
        graph = compile_spec(spec, target).graph
        return {(op.kind, graph.op(op.inputs[0]).shape[-1], "Gluon" in op.attr("kernel_reason"))
                for op in graph.ops() if op.kind in ("gdpa", "window_attention")}

    assert reasons("h200") == {("gdpa", 64, True), ("gdpa", 128, False),
                               ("window_attention", 64, True), ("window_attention", 128, True)}
    assert not any(gluon for *_, gluon in reasons("b200") | reasons("cpu"))


def test_hopper_table_matches_the_kernel_files():
    """select.HOPPER_GLUON mirrors templates/kernels/*_hopper.py: the head dims gdpa_hopper.ENABLED
    turns on, and those window_attention_hopper builds (VARIANT), with dQ named where it runs there
    (ENABLED, HOPPER_DQ) and the forward where window_attention_hopper.HOPPER_FWD runs it."""
    from test_gdpa_gluon import _has_gluon_hopper
    if not _has_gluon_hopper():
        pytest.skip("Triton's Gluon for Hopper is not installed")
    from opsload import import_file
    from kunlun_compiler.passes.select import HOPPER_GLUON
    kernels = SPECS.parent / "templates" / "kernels"
    gdpa_hopper = import_file(kernels / "gdpa_hopper.py", "kunlunc_test_select_gdpa_hopper")
    window_hopper = import_file(kernels / "window_attention_hopper.py", "kunlunc_test_select_window_hopper")
    gdpa, window = HOPPER_GLUON["gdpa"], HOPPER_GLUON["window_attention"]
    assert set(gdpa) == {d for (_, d), on in gdpa_hopper.ENABLED.items() if on}
    assert all(("dQ" in gdpa[d]) == gdpa_hopper.ENABLED[("dq", d)] for d in gdpa)
    assert set(window) == set(window_hopper.VARIANT)
    assert all(("dQ" in window[d]) == window_hopper.HOPPER_DQ[d] for d in window)
    assert all(("forward" in window[d]) == window_hopper.HOPPER_FWD[d] for d in window)
    assert not any("forward" in what for what in gdpa.values())
