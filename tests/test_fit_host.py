"""bench/fit_host.py: the estimate's host cost per op, fitted from host-bound measured steps, and
the calibration file's "host" object it writes (and calibrate.py keeps)."""
from __future__ import annotations

import json

import pytest

from genutil import ROOT
from kunlun_compiler import hardware
from kunlun_compiler.cost import HOST_KINDS
from kunlun_compiler.hardware import CalibrationError
from opsload import import_file

fh = import_file(ROOT / "bench" / "fit_host.py", "fit_host")
cal = import_file(ROOT / "bench" / "calibrate.py", "calibrate_for_fit_host")


def _row(variant: str, step: float, gpu: float | None = 0.001, batch: int = 8, spec: str = "kunlun_tiny") -> dict:
    return {"spec": spec, "variant": variant, "batch_size": batch, "measured_step_s": step,
            **({"gpu_step_s": gpu} if gpu is not None else {})}


@pytest.fixture(scope="module")
def tiny_host_ops() -> int:
    graph = fh.graph_of("kunlun_tiny", True)
    n = sum(1 for op in graph.ops() if op.kind in HOST_KINDS and not op.attr("batched_with"))
    assert n > 0
    return n


def test_fit_is_step_over_host_ops_per_mode(tiny_host_ops):
    rows = [_row("fused", 0.2), _row("fused", 0.3, batch=4), _row("compiled", 0.1)]
    host = fh.fit(fh.select(rows, ["kunlun_tiny:fused@8", "kunlun_tiny:fused@4", "kunlun_tiny:compiled@8"]), "h200")
    assert host["eager_s_per_op"] == pytest.approx((0.2 + 0.3) / 2 / tiny_host_ops)
    assert host["compiled_s_per_op"] == pytest.approx(0.1 / tiny_host_ops)
    assert [u["row"] for u in host["fit_from"]] == ["kunlun_tiny:fused@8", "kunlun_tiny:fused@4",
                                                     "kunlun_tiny:compiled@8"]
    assert hardware.parse_host(host, "x") == {"eager": host["eager_s_per_op"], "compiled": host["compiled_s_per_op"]}


def test_fit_refuses_rows_that_do_not_measure_the_host():
    with pytest.raises(fh.FitError, match="not host-bound: GPU 150.0 ms of a 200.0 ms step"):
        fh.fit([_row("fused", 0.2, gpu=0.15), _row("compiled", 0.1)], "h200")
    with pytest.raises(fh.FitError, match="not host-bound"):     # no GPU measurement: the estimate's
        fh.fit([_row("fused", 1e-6, gpu=None), _row("compiled", 0.1)], "h200")
    with pytest.raises(fh.FitError, match="no host-bound row for mode compiled"):
        fh.fit([_row("fused", 0.2)], "h200")
    with pytest.raises(fh.FitError, match="reduce-overhead"):
        fh.fit([_row("cudagraphs", 0.2)], "h200")
    with pytest.raises(fh.FitError, match="one CUDA graph"):
        fh.fit([_row("graphed", 0.2), _row("compiled", 0.1)], "h200")
    with pytest.raises(fh.FitError, match="no measured row 'kunlun_tiny:fused@16'"):
        fh.select([_row("fused", 0.2), {**_row("fused", 0.2, batch=16), "measured_step_s": None}],
                  ["kunlun_tiny:fused@16"])


def test_write_keeps_the_file_and_calibrate_keeps_the_fit(tmp_path, monkeypatch, capsys):
    results = tmp_path / "models.json"
    results.write_text(json.dumps([_row("fused", 0.2), _row("compiled", 0.1)]))
    cal_dir = tmp_path / "calibration"
    cal_dir.mkdir()
    shipped = json.loads((hardware.CALIBRATION_DIR / "h200.json").read_text())
    (cal_dir / "h200.json").write_text(json.dumps({k: v for k, v in shipped.items() if k != "host"}))
    monkeypatch.setattr(hardware, "CALIBRATION_DIR", cal_dir)
    assert hardware.load_table(cal_dir)["h200"].host_s == {}
    argv = [str(results), "--fit", "kunlun_tiny:fused@8", "kunlun_tiny:compiled@8"]
    assert fh.main(argv) == 0 and not json.loads((cal_dir / "h200.json").read_text()).get("host")  # printed only
    assert fh.main([*argv, "--write"]) == 0
    data = json.loads((cal_dir / "h200.json").read_text())
    assert data["efficiency"] == shipped["efficiency"] and data["samples"] == shipped["samples"]
    assert data["host"]["command"].startswith("python3 bench/fit_host.py")
    host_s = hardware.load_table(cal_dir)["h200"].host_s
    assert host_s == {"eager": data["host"]["eager_s_per_op"], "compiled": data["host"]["compiled_s_per_op"]}
    assert cal.kept_host(cal_dir / "h200.json") == {"host": data["host"]}   # a re-calibration keeps it
    assert cal.kept_host(tmp_path / "absent.json") == {}
    capsys.readouterr()
    results.write_text("not json")
    assert fh.main(argv) == 1
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize("host, message", [
    ([1], "'host' must be an object, found list"),
    ({"eager_s_per_op": 1e-4}, "host.compiled_s_per_op must be a number"),
    ({"eager_s_per_op": 1e-4, "compiled_s_per_op": 0}, "host.compiled_s_per_op must be in (0, 0.1]"),
])
def test_bad_host_object_names_the_file(host, message):
    data = json.loads((hardware.CALIBRATION_DIR / "h200.json").read_text())
    with pytest.raises(CalibrationError, match=f"^f.json: {message.replace('(', '[(]').replace(')', '[)]')}"):
        hardware.parse_calibration({**data, "host": host}, "f.json")
