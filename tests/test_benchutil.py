"""bench/benchutil.py, the bench scripts' shared pieces that run without a GPU."""
from __future__ import annotations

import json
import sys

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
