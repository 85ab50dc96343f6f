"""bench/benchutil.py, the bench scripts' shared pieces (one test needs a GPU)."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import benchutil  # noqa: E402


def test_partial_json_keeps_the_rows_so_far(tmp_path):
    path = tmp_path / "out.json"
    benchutil.write_json(str(path), [{"a": 1}])
    assert json.loads(path.read_text()) == {"rows": [{"a": 1}], "partial": True}
    benchutil.write_json(None, [{"a": 2}])       # no path: nothing written, no error
    assert json.loads(path.read_text())["rows"] == [{"a": 1}]


def test_rel_err_and_the_comparison_line():
    ref = torch.tensor([3.0, 4.0])
    assert benchutil.rel_err(ref, ref) == 0.0
    assert abs(benchutil.rel_err(ref * 1.01, ref) - 0.01) < 1e-6
    row = {"two_pass_ms": 2.0, "fused_ms": 1.0, "speedup": 2.0, "correct": False,
           "rel_diff_vs_two_pass": {"dq": 0.5, "dk": 1e-3, "dv": 2e-3}}
    line = benchutil.describe_comparison("packed jagged", row)
    assert line.startswith("packed jagged two-pass 2.000 ms, fused 1.000 ms (2.00x)")
    assert "dq 5.0e-01" in line and line.endswith("WRONG")
    assert not benchutil.describe_comparison("full", {**row, "correct": True}).endswith("WRONG")



def test_over_tolerance_names_what_fails_the_check(tmp_path):
    """A bench's bf16 check can fail: the entries over the bound (NaN included) come back."""
    errors = {"o": 2.3e-3, "dq": 1.5e-2, "dk": float("nan"), "dv": benchutil.TOLERANCE}
    wrong = benchutil.over_tolerance(errors)
    assert set(wrong) == {"dq", "dk"}
    assert benchutil.over_tolerance({"o": 1e-3}) == {}
    path = tmp_path / "fresh" / "out" / "bench.json"     # a --json into a folder not made yet
    benchutil.write_text(str(path), "{}")
    assert path.read_text() == "{}"


def test_check_status_fails_a_bench_with_a_wrong_kernel(capsys):
    assert benchutil.check_status("bench_x", {"o": 2e-3, "dq": 3e-3}) == 0
    assert capsys.readouterr().err == ""
    assert benchutil.check_status("bench_x", {"o": 2e-3, "dq": float("nan")}) == 1
    err = capsys.readouterr().err
    assert err.startswith("bench_x: bf16 check over 0.01:") and "dq" in err and "'o'" not in err


def test_gdpa_reference_is_the_gelu_tanh_attention_and_its_gradients():
    q, k, v, do = benchutil.gdpa_inputs(2, 3, 5, 4, 8, device="cpu")
    assert q.shape == do.shape == (2, 3, 5, 8) and k.shape == v.shape == (2, 3, 4, 8)
    assert q.dtype == k.dtype == v.dtype == do.dtype == torch.bfloat16
    o, dq, dk, dv = benchutil.gdpa_reference(q, k, v, do, 0.25)
    qf, kf, vf, dof = (x.double().requires_grad_() for x in (q, k, v, do))
    s = qf @ kf.mT
    expect = 0.5 * s * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (s + 0.044715 * s ** 3))) @ vf * 0.25
    expect.backward(dof)
    for got, ref in ((o, expect), (dq, qf.grad), (dk, kf.grad), (dv, vf.grad)):
        assert torch.allclose(got.double(), ref.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_kernel_time_agrees_with_cuda_events_on_a_gpu_bound_call():
    """kernel_ms (the calibration's and the benches' GPU time) takes the profiler's kernel time
    per call; on a call whose GPU work dwarfs its launch (an 8192² matmul) that is the CUDA-event
    time within 10%."""
    import triton.testing
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    fn = lambda: a @ a  # noqa: E731
    events_ms = triton.testing.do_bench(fn, warmup=5, rep=100, return_mode="median")
    by_name = benchutil.kernel_ms_by_name(fn, 10)
    assert abs(sum(by_name.values()) / events_ms - 1) < 0.1, (by_name, events_ms)
