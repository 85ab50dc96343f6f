"""bench/fwd_ab.py on the CPU (Triton's interpreter, fp32, small shapes, one round): each version
of the GDPA or window-attention kernel file is timed and compared with the first, and a version
whose outputs disagree is reported, not timed, and makes the exit status 1."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import fwd_ab  # noqa: E402

KERNELS = {"gdpa": ROOT / "templates" / "kernels" / "gdpa.py",
           "window": ROOT / "templates" / "kernels" / "window_attention.py"}
# a line of each forward that a wrong version doubles
ACCUMULATE = {"gdpa": "acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PREC)",
              "window": "acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=PRECISION)"}


@pytest.fixture
def on_cpu(monkeypatch):
    """The script on the CPU at small shapes in fp32, every call 'taking' 1 ms (the profiler's
    kernel time needs a GPU)."""
    monkeypatch.setattr(fwd_ab, "DEVICE", "cpu")
    monkeypatch.setattr(fwd_ab, "DTYPE", torch.float32)
    monkeypatch.setattr(fwd_ab, "GDPA_SHAPES", [("self", 3, 37, 37), ("cross", 2, 40, 20)])
    monkeypatch.setattr(fwd_ab, "GDPA_HEADS", [(2, 16)])
    monkeypatch.setattr(fwd_ab, "WINDOW_SHAPES", [(3, 2, 50, 16, 7)])
    monkeypatch.setattr(fwd_ab, "kernel_ms", lambda fn: (fn(), 1.0)[1])


def run(kind, tmp_path, monkeypatch, shapes=None, **versions) -> tuple[int, dict]:
    args = [f"--kernel={label}={path}" for label, path in versions.items()]
    out = tmp_path / "ab.json"
    extra = ["--shapes", shapes] if shapes else []
    monkeypatch.setattr(sys, "argv", ["fwd_ab.py", kind, *args, "--rounds", "1", *extra, "--json", str(out)])
    status = fwd_ab.main()
    return status, json.loads(out.read_text())


@pytest.mark.parametrize("kind", ["gdpa", "window"])
def test_versions_timed_and_checked(kind, on_cpu, tmp_path, monkeypatch):
    status, report = run(kind, tmp_path, monkeypatch, base=KERNELS[kind], same=KERNELS[kind])
    assert status == 0
    assert len(report["shapes"]) == 2          # two GDPA shapes; one window shape, both bands
    for shape in report["shapes"]:
        assert set(shape["versions"]) == {"base", "same"}
        for row in shape["versions"].values():
            assert row["ok"] and row["max_rel_diff"] <= 1e-6 and set(row["ms"]) == {"full", "jagged"}


@pytest.mark.parametrize("kind", ["gdpa", "window"])
def test_a_wrong_version_is_reported(kind, on_cpu, tmp_path, monkeypatch):
    text = KERNELS[kind].read_text()
    assert text.count(ACCUMULATE[kind]) == 1
    wrong = tmp_path / "wrong.py"
    wrong.write_text(text.replace(ACCUMULATE[kind], ACCUMULATE[kind].replace("tl.dot(p", "2 * tl.dot(p")))
    status, report = run(kind, tmp_path, monkeypatch, shapes="0", base=KERNELS[kind], wrong=wrong)
    assert status == 1
    rows = report["shapes"][0]["versions"]
    assert rows["base"]["ok"] and not rows["wrong"]["ok"]
    assert rows["wrong"]["max_rel_diff"] > fwd_ab.TOLERANCE


def test_a_bad_kernel_argument_is_one_line_and_status_2(on_cpu, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["fwd_ab.py", "gdpa", "--kernel", "base=/no/such/file.py"])
    with pytest.raises(SystemExit) as exit_:
        fwd_ab.main()
    assert exit_.value.code == 2
    assert "expected LABEL=PATH of an existing kernel file" in capsys.readouterr().err
