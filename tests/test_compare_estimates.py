"""bench/compare_estimates.py: measured rows re-estimated with this checkout's compiler."""
from __future__ import annotations

import pytest

from genutil import ROOT
from opsload import import_file

ce = import_file(ROOT / "bench" / "compare_estimates.py", "compare_estimates")


def _row(variant: str, **extra) -> dict:
    return {"spec": "kunlun_tiny", "variant": variant, "batch_size": 8, "measured_step_s": 0.5, **extra}


def test_rows_get_the_estimate_of_their_variant():
    from kunlun_compiler.cost import estimate
    fused = estimate(ce.graph_of("kunlun_tiny", True), "h200", 8)
    unfused = estimate(ce.graph_of("kunlun_tiny", False), "h200", 8)
    assert ce.re_estimate(_row("fused"), "h200")[:3] == (fused.est_step_time_s, fused.est_gpu_time_s, fused.est_host_s)
    assert ce.re_estimate(_row("compiled"), "h200")[:3] == (
        fused.est_step_time_compiled_s, fused.est_gpu_time_compiled_s, fused.est_host_compiled_s)
    assert ce.re_estimate(_row("unfused"), "h200")[0] == unfused.est_step_time_s
    assert fused.est_gpu_time_compiled_s < fused.est_gpu_time_s      # bf16 on h200: casts priced
    assert fused.est_host_compiled_s < fused.est_host_s              # h200 has a host fit
    groups, gpu = ce.re_estimate(_row("compiled"), "h200")[3:]
    assert gpu == {g: v["time_compiled_s"] for g, v in fused.groups().items()}
    assert groups == fused.group_steps(compiled=True)
    packed = ce.re_estimate(_row("compiled_packed"), "h200")
    assert packed[:2] == (fused.est_step_time_compiled_packed_s, fused.est_gpu_time_compiled_packed_s)
    assert packed[4] == {g: v["time_compiled_packed_s"] for g, v in fused.groups().items()}
    # a step replayed as one CUDA graph: the GPU time, no host time (tiny at 8 is host-bound otherwise)
    assert ce.re_estimate(_row("graphed"), "h200")[:3] == (fused.est_gpu_time_s, fused.est_gpu_time_s, 0.0)
    assert fused.est_step_time_s > fused.est_gpu_time_s
    unfused_graphed = ce.re_estimate(_row("unfused_graphed"), "h200")
    assert unfused_graphed[:3] == (unfused.est_gpu_time_s, unfused.est_gpu_time_s, 0.0)


def test_group_estimate_is_per_block_max_of_gpu_and_host():
    """A block timed alone takes the longer of its GPU time and its host time (its HOST_KINDS ops x
    the per-op host cost); a group sums its blocks. Host-bound blocks make the sum exceed the GPU."""
    from kunlun_compiler.cost import estimate, group_steps, is_host_op
    est = estimate(ce.graph_of("kunlun_tiny", True), "h200", 8)
    per_op = est.est_host_compiled_s / est.host_ops
    assert est.host_per_op_s(compiled=True) == per_op > 0
    blocks = est.blocks()
    assert sum(b["host_ops"] for b in blocks.values()) == est.host_ops == sum(is_host_op(c) for c in est.ops)
    expected: dict = {}
    for b in blocks.values():
        expected[b["group"]] = expected.get(b["group"], 0) + max(b["time_compiled_s"], b["host_ops"] * per_op)
    assert est.group_steps(compiled=True) == pytest.approx(expected)
    gpu = {g: v["time_compiled_s"] for g, v in est.groups().items()}
    assert all(expected[g] >= gpu[g] for g in gpu) and any(expected[g] > gpu[g] for g in gpu)
    big = group_steps(blocks, per_op, compiled=True, gpu_scale=1e6)   # GPU-bound everywhere
    assert big == pytest.approx({g: 1e6 * t for g, t in gpu.items()})


def test_table_ratios():
    step, gpu_est, host_est, _, _ = ce.re_estimate(_row("fused"), "h200")
    groups = {"gdpa": {"measured_s": 0.1, "gpu_s": 0.05}}
    text = ce.tables([_row("fused", gpu_step_s=0.25, blocks_total_s=0.1, groups=groups),
                      _row("fused", measured_step_s=None, error="timeout")], "h200")
    lines = text.splitlines()
    assert len([line for line in lines if line.startswith("| kunlun_tiny | fused | 8 |")]) == 2   # a failed row is skipped
    assert (f"| {step * 1e3:.1f} | {gpu_est * 1e3:.1f} / {host_est * 1e3:.1f} | {step / 0.5:.2f} "
            f"| {gpu_est / 0.25:.2f} |") in lines[2]
    assert lines[-1].startswith("| kunlun_tiny | fused | 8 | gdpa | 100.0 | 50.0 |")
    assert lines[-3].startswith("| spec | variant | batch | group | measured ms | GPU kernels ms | estimated ms | est GPU ms")
    with pytest.raises(KeyError):
        ce.re_estimate(_row("jit"), "h200")


def test_bad_input_is_one_line_and_status_1(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert ce.main([str(bad)]) == 1
    assert capsys.readouterr().err.startswith("error: JSONDecodeError")
    bad.write_text('[{"spec": "kunlun_tiny", "variant": "jit", "batch_size": 8, "measured_step_s": 0.5}]')
    assert ce.main([str(bad)]) == 0          # an unknown variant is not a measured row of ours: skipped
    assert ce.main([str(tmp_path / "absent.json")]) == 1
    assert "error: FileNotFoundError" in capsys.readouterr().err
