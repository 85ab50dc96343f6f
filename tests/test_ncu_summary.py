"""bench/ncu_summary.py on the twenty-third session's Nsight Compute output (kept in
bench/results): the rows BENCHMARKS.md quotes, kernels matched in launch order, short kernels
left out, and a mismatched pair of runs refused."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import ncu_summary  # noqa: E402

RUN = ROOT / "bench" / "results" / "2026-11-30-h200-s23"
NCU, STALLS = (RUN / "call6" / "ncu.txt").read_text(), (RUN / "call7" / "ncu_stalls.txt").read_text()


def test_the_rows_of_the_session():
    lines = ncu_summary.summary(NCU, STALLS)
    rows = lines[2:]
    assert len(rows) == 8                         # the 10 kernels less the dQ sum and the cast
    assert rows[0] == ("| _fwd_kernel (4096, 1, 1) | 195 | 1.68 | 128, 24% | 62% | ALU 44% | 61% / 73% | "
                       "5.97: not selected 1.39, wait 0.82, dispatch stall 0.67, barrier 0.66 |")
    assert rows[1].startswith("| _bwd_kernel (147, 4, 1) | 530 | 1.76 | 205, 12% | 24% | Shared 34% | 44% / 53% | "
                              "5.96: barrier 1.68, short scoreboard 1.13")
    assert rows[2].startswith("| _gdpa_fwd_kernel (32768, 1, 1) | 1,350 | 1.79 | 120, 24% | 56% | Tensor 42% |")


def test_kernels_and_their_metrics():
    found = ncu_summary.kernels(NCU)
    assert [name for name, _ in found][:2] == ["_fwd_kernel (4096, 1, 1)", "_bwd_kernel (147, 4, 1)"]
    assert ncu_summary.duration_us(found[3][1]) == pytest.approx(2.50)      # a cast, in µs
    assert ncu_summary.duration_us(found[4][1]) == pytest.approx(1350.0)    # printed in ms
    assert sum(ncu_summary.stalls(ncu_summary.kernels(STALLS)[0][1]).values()) == pytest.approx(5.97, abs=0.01)
    assert len(ncu_summary.summary(NCU, min_us=0)) == 2 + 10                # nothing left out
    assert "stall" not in ncu_summary.summary(NCU)[0]                       # no stalls' run given


def test_mismatched_runs_and_missing_files(tmp_path, capsys):
    with pytest.raises(ValueError, match="10 kernels in the sections' run, 1 in the stalls' run"):
        ncu_summary.summary(NCU, STALLS[:STALLS.index("  _bwd_kernel")])
    with pytest.raises(SystemExit) as exit_:
        ncu_summary.main([str(tmp_path / "nope.txt")])
    assert exit_.value.code == 2 and "no file" in capsys.readouterr().err
