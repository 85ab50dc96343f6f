"""bench/seed_pooling_ab.py on the CPU (Triton's interpreter, a small shape, one round): each
version is timed and compared with the first, and a version whose outputs disagree is reported,
not timed, and makes the exit status 1."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import seed_pooling_ab  # noqa: E402

KERNEL = ROOT / "templates" / "kernels" / "seed_pooling.py"
ACCUMULATE = "acc = acc * alpha[:, None] + _dot(p.to(vt.dtype), vt, IEEE)"


@pytest.fixture
def on_cpu(monkeypatch):
    """The script on the CPU at one small shape, every call 'taking' 1 ms (the profiler's kernel
    time needs a GPU), a copy bandwidth of 1 TB/s."""
    monkeypatch.setattr(seed_pooling_ab, "DEVICE", "cpu")
    monkeypatch.setattr(seed_pooling_ab, "SHAPES", [dict(B=5, H=2, T=70, D=16, S1=5, S2=2)])
    monkeypatch.setattr(seed_pooling_ab, "copy_ceiling", lambda: 1e12)
    monkeypatch.setattr(seed_pooling_ab, "kernel_ms", lambda fn: (fn(), 1.0)[1])


def run(tmp_path, monkeypatch, **versions) -> tuple[int, dict]:
    args = [f"--kernel={label}={path}" for label, path in versions.items()]
    out = tmp_path / "ab.json"
    monkeypatch.setattr(sys, "argv", ["seed_pooling_ab.py", *args, "--rounds", "1", "--shapes", "0",
                                      "--json", str(out)])
    status = seed_pooling_ab.main()
    return status, json.loads(out.read_text())


def test_versions_timed_and_checked(on_cpu, tmp_path, monkeypatch):
    status, report = run(tmp_path, monkeypatch, base=KERNEL, same=KERNEL)
    assert status == 0
    rows = report["shapes"][0]["versions"]
    assert set(rows) == {"base", "same"}
    for row in rows.values():
        assert row["ok"] and row["max_rel_diff"] <= 1e-6
        assert set(row["ms"]) == {"fwd full", "fwd jagged", "fwd+bwd full", "fwd+bwd jagged", "fwd level 2"}
        assert set(row["configs"]) == {"fwd", "bwd", "fwd level 2"}
        assert row["jagged_over_full"] == {"fwd": 1.0, "fwd+bwd": 1.0}


def test_a_wrong_version_is_reported(on_cpu, tmp_path, monkeypatch):
    text = KERNEL.read_text()
    assert ACCUMULATE in text
    wrong = tmp_path / "wrong.py"
    wrong.write_text(text.replace(ACCUMULATE, ACCUMULATE.replace("+ _dot(", "+ 2 * _dot(")))
    status, report = run(tmp_path, monkeypatch, base=KERNEL, wrong=wrong)
    rows = report["shapes"][0]["versions"]
    assert status == 1
    assert rows["base"]["ok"] and not rows["wrong"]["ok"]
    assert rows["wrong"]["max_rel_diff"] > seed_pooling_ab.TOLERANCE


@pytest.mark.parametrize("item", ["no-label-or-path", "=x.py", "base=/no/such/file.py"])
def test_a_bad_kernel_argument_is_one_line_and_status_2(item, on_cpu, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["seed_pooling_ab.py", "--kernel", item])
    with pytest.raises(SystemExit) as exit_:
        seed_pooling_ab.main()
    assert exit_.value.code == 2
    assert "expected LABEL=PATH of an existing kernel file" in capsys.readouterr().err
