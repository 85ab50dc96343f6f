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
    groups = ce.re_estimate(_row("compiled"), "h200")[3]
    assert groups == {g: v["time_compiled_s"] for g, v in fused.groups().items()}


def test_table_ratios():
    step, gpu_est, host_est, _ = ce.re_estimate(_row("fused"), "h200")
    groups = {"gdpa": {"measured_s": 0.1, "gpu_s": 0.05}}
    text = ce.tables([_row("fused", gpu_step_s=0.25, blocks_total_s=0.1, groups=groups),
                      _row("fused", measured_step_s=None, error="timeout")], "h200")
    lines = text.splitlines()
    assert len([line for line in lines if line.startswith("| kunlun_tiny | fused | 8 |")]) == 2   # a failed row is skipped
    assert (f"| {step * 1e3:.1f} | {gpu_est * 1e3:.1f} / {host_est * 1e3:.1f} | {step / 0.5:.2f} "
            f"| {gpu_est / 0.25:.2f} |") in lines[2]
    assert lines[-1].startswith("| kunlun_tiny | fused | 8 | gdpa | 100.0 | 50.0 |")
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
