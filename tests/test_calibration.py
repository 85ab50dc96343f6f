"""Calibration files (kunlun_compiler/calibration/<target>.json) and the per-kernel cost factors.

A file overrides its target's efficiency factors and launch_s; the estimate's compute-bound time
scales exactly with 1 / efficiency of the op's own key; bad files fail with the file's name; and
bench/calibrate.py's CPU smoke run writes a file the loader accepts.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genutil import ROOT, SPECS
from kunlun_compiler import hardware
from kunlun_compiler.compiler import compile_spec
from kunlun_compiler.cost import OPTIMIZER_BYTES_PER_PARAM, CostModel, _gemm_shape, efficiency_key, estimate
from kunlun_compiler.hardware import EFFICIENCY_KEYS, KERNEL_KEYS, CalibrationError
from kunlun_compiler.loader import load_spec

FACTORS = {"matmul": 0.6, "attention": 0.5, "memory": 0.9, "gdpa": 0.4, "window_attention": 0.35,
           "seed_pooling": 0.25}


def calibration(target: str = "h200", **changes) -> dict:
    data = {"target": target, "gpu": "Test GPU 80GB", "date": "2026-01-02", "torch": "x", "triton": "y",
            "command": "python3 bench/calibrate.py --target h200", "efficiency": dict(FACTORS),
            "launch_s": 5e-6, "samples": []}
    data.update(changes)
    return data


def write(directory: Path, data: dict, name: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (name or f"{data['target']}.json")
    path.write_text(json.dumps(data))
    return path


def table_with(tmp_path: Path, target: str = "h200", **factors):
    """The hardware table with one calibration file for `target` (FACTORS, overridden by factors)."""
    d = tmp_path / f"cal_{len(list(tmp_path.iterdir()))}"
    write(d, calibration(target, efficiency={**FACTORS, **factors}))
    return hardware.load_table(d)


@pytest.fixture(scope="module")
def g6():
    """kunlun_6g for h200: every fused op runs its Triton kernel."""
    return compile_spec(load_spec(SPECS / "kunlun_6g.yaml"), "h200").graph


def times(graph, target: str, table, monkeypatch) -> dict[str, float]:
    monkeypatch.setattr(hardware, "HARDWARE", table)
    model = CostModel(graph, target, graph.meta["plan"].batch_size)
    return {op.id: model.op_cost(op).time_s for op in graph.ops()}


# ---- loading ------------------------------------------------------------------------------------

def test_every_target_has_the_six_factors():
    assert set(EFFICIENCY_KEYS) == {"matmul", "attention", "memory", *KERNEL_KEYS}
    for hw in hardware.DATASHEET.values():
        assert set(hw.efficiency) == set(EFFICIENCY_KEYS)
        assert all(hw.efficiency[k] == hw.efficiency["attention"] for k in KERNEL_KEYS), hw.name
        assert hw.calibration is None and "datasheet guesses" in hw.source


def test_empty_or_missing_folder_keeps_the_datasheet(tmp_path):
    assert hardware.CALIBRATION_DIR.is_dir()            # ships, with or without files
    for directory in (tmp_path, tmp_path / "absent", None):
        assert dict(hardware.load_table(directory)) == dict(hardware.DATASHEET)


def test_file_overrides_its_target_only(tmp_path):
    path = write(tmp_path, calibration())
    table = hardware.load_table(tmp_path)
    h200 = table["h200"]
    assert dict(h200.efficiency) == FACTORS and h200.launch_s == 5e-6
    assert h200.peak_flops == hardware.DATASHEET["h200"].peak_flops        # peaks stay the datasheet's
    assert h200.calibration == hardware.Calibration(str(path), "Test GPU 80GB", "2026-01-02")
    assert h200.source == "h200 calibrated on Test GPU 80GB 2026-01-02 (h200.json)"
    for name in ("h100", "b200", "a100", "cpu"):
        assert table[name] == hardware.DATASHEET[name]


@pytest.mark.parametrize("change, message", [
    ({"target": "h300"}, "unknown target 'h300'"),
    ({"target": None}, "unknown target None"),
    ({"efficiency": {**FACTORS, "gdpa": 0}}, "efficiency.gdpa must be in (0, 1], found 0"),
    ({"efficiency": {**FACTORS, "matmul": 1.2}}, "efficiency.matmul must be in (0, 1], found 1.2"),
    ({"efficiency": {**FACTORS, "memory": -0.5}}, "efficiency.memory must be in (0, 1]"),
    ({"efficiency": {**FACTORS, "memory": float("nan")}}, "efficiency.memory must be in (0, 1]"),
    ({"efficiency": {**FACTORS, "memory": True}}, "efficiency.memory must be a number"),
    ({"efficiency": {**FACTORS, "memory": "0.5"}}, "efficiency.memory must be a number"),
    ({"efficiency": {k: v for k, v in FACTORS.items() if k != "seed_pooling"}}, "missing seed_pooling"),
    ({"efficiency": {**FACTORS, "softmax": 0.5}}, "unknown softmax"),
    ({"efficiency": [0.5]}, "'efficiency' must be an object"),
    ({"launch_s": 0}, "launch_s must be in (0, 0.001], found 0"),
    ({"launch_s": 2e-3}, "launch_s must be in (0, 0.001], found 0.002"),
    ({"launch_s": None}, "launch_s must be a number"),
    ({"gpu": ""}, "'gpu' must be a non-empty string"),
    ({"date": None}, "'date' must be a non-empty string"),
])
def test_invalid_file_names_the_file(tmp_path, change, message):
    data = calibration(**change)
    path = write(tmp_path, data, "h200.json")
    with pytest.raises(CalibrationError) as exc:
        hardware.load_table(tmp_path)
    assert str(exc.value).startswith(f"{path}: "), exc.value
    assert message in str(exc.value)


def test_unreadable_or_misnamed_file(tmp_path):
    bad = tmp_path / "a"
    bad.mkdir()
    (bad / "h200.json").write_text("{not json")
    with pytest.raises(CalibrationError, match=r"a/h200\.json: cannot read calibration JSON"):
        hardware.load_table(bad)
    named = tmp_path / "b"
    write(named, calibration("h100"), "h200.json")
    with pytest.raises(CalibrationError, match=r"b/h200\.json: holds target 'h100', so it must be named h100.json"):
        hardware.load_table(named)
    array = tmp_path / "c"
    write(array, [1, 2], "h200.json")
    with pytest.raises(CalibrationError, match=r"c/h200\.json: expected a JSON object, found list"):
        hardware.load_table(array)


def test_shipped_folder_is_loaded_at_import(tmp_path):
    """A copy of the package with a file in its calibration/ folder: `kunlunc inspect` uses and names it;
    a bad file stops the command with the file's name."""
    copy = tmp_path / "site"
    shutil.copytree(ROOT / "kunlun_compiler", copy / "kunlun_compiler", ignore=shutil.ignore_patterns("__pycache__"))
    cal = copy / "kunlun_compiler" / "calibration"
    for old in cal.glob("*.json"):
        old.unlink()
    write(cal, calibration())
    env = {**os.environ, "PYTHONPATH": str(copy)}
    cmd = [sys.executable, "-m", "kunlun_compiler.cli", "inspect", str(SPECS / "kunlun_tiny.yaml"), "--target"]
    p = subprocess.run([*cmd, "h200", "--json"], capture_output=True, text=True, cwd=copy, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    hw = json.loads(p.stdout)["hardware"]
    assert hw["efficiency"] == FACTORS and hw["launch_s"] == 5e-6
    assert hw["source"] == "h200 calibrated on Test GPU 80GB 2026-01-02 (h200.json)"
    p = subprocess.run([*cmd, "h100"], capture_output=True, text=True, cwd=copy, env=env, timeout=120)
    assert "cost model: h100 datasheet guesses" in p.stdout
    write(cal, calibration(efficiency={**FACTORS, "gdpa": 0}))
    p = subprocess.run([*cmd, "h200"], capture_output=True, text=True, cwd=copy, env=env, timeout=120)
    assert p.returncode != 0
    assert f"CalibrationError: {cal / 'h200.json'}: efficiency.gdpa must be in (0, 1], found 0" in p.stderr


# ---- the cost model -----------------------------------------------------------------------------

def test_efficiency_keys_of_ops(g6):
    kinds = {op.kind: efficiency_key(op) for op in g6.ops()}
    assert kinds["gdpa"] == "gdpa" and kinds["window_attention"] == "window_attention"
    assert kinds["seed_pooling"] == "seed_pooling" and kinds["linear"] == "matmul"
    cpu = compile_spec(load_spec(SPECS / "kunlun_6g.yaml"), "cpu").graph   # fused ops run as torch
    assert {efficiency_key(op) for op in cpu.ops() if op.kind in KERNEL_KEYS} == {"attention"}
    unfused = compile_spec(load_spec(SPECS / "ablation_no_gdpa_fusion.yaml"), "h200").graph
    assert {efficiency_key(op) for op in unfused.ops() if op.kind in ("attn_scores", "attn_values")} == {"attention"}


def test_compute_bound_time_scales_with_one_over_efficiency(g6, tmp_path, monkeypatch):
    batch = g6.meta["plan"].batch_size
    big = max((op for op in g6.ops() if op.kind == "linear"),
              key=lambda op: CostModel(g6, "h200", batch).flops(op, useful=False))
    gdpa = next(op for op in g6.ops() if op.kind == "gdpa")
    peak = hardware.DATASHEET["h200"].peak_bf16
    for eff in (0.4, 0.2, 0.1):   # low enough that both ops stay compute-bound
        t = times(g6, "h200", table_with(tmp_path, matmul=eff, gdpa=eff / 2), monkeypatch)
        model = CostModel(g6, "h200", batch)   # the patched table (monkeypatch holds it)
        linear_s = model.flops(big, useful=False) * batch * 3.0 / (peak * eff)
        gdpa_s = model.flops(gdpa, useful=True) * batch * 3.5 / (peak * eff / 2)
        assert t[big.id] - _casts_s(model, big, batch) == pytest.approx(linear_s, rel=1e-12)
        assert t[gdpa.id] - _casts_s(model, gdpa, batch) == pytest.approx(gdpa_s, rel=1e-12)


def _casts_s(model: CostModel, op, batch: int) -> float:
    """What time_s adds to an op's roofline: its autocast casts (memory-bound) and the launches
    of the op and its casts (5 us each in the test table)."""
    per_example, per_step, casts = model.cast_bytes(op)
    bandwidth = model.hw.mem_bw * model.hw.efficiency["memory"]
    return (per_example * batch + per_step) / bandwidth + 2 * (1 + casts) * 5e-6


@pytest.mark.parametrize("key", [*KERNEL_KEYS, "matmul"])
def test_changing_a_factor_changes_only_its_ops(g6, tmp_path, monkeypatch, key):
    base = times(g6, "h200", table_with(tmp_path), monkeypatch)
    changed = times(g6, "h200", table_with(tmp_path, **{key: FACTORS[key] / 4}), monkeypatch)
    moved = {i for i in base if changed[i] != base[i]}
    expected = {op.id for op in g6.ops() if efficiency_key(op) == key}
    assert moved and moved <= expected
    if key in KERNEL_KEYS:      # every kernel op is compute bound at batch 1024
        assert moved == expected
        assert all(changed[i] > base[i] for i in moved)


def test_attention_factor_prices_torch_run_fused_ops(g6, tmp_path, monkeypatch):
    """On h200 no op of kunlun_6g uses "attention"; on cpu its fused ops do, not their kernel keys."""
    assert times(g6, "h200", table_with(tmp_path, attention=0.01), monkeypatch) == \
        times(g6, "h200", table_with(tmp_path), monkeypatch)
    cpu = compile_spec(load_spec(SPECS / "kunlun_6g.yaml"), "cpu").graph
    base = times(cpu, "cpu", table_with(tmp_path, "cpu"), monkeypatch)
    assert times(cpu, "cpu", table_with(tmp_path, "cpu", gdpa=0.01, seed_pooling=0.01), monkeypatch) == base
    slow = times(cpu, "cpu", table_with(tmp_path, "cpu", attention=0.01), monkeypatch)
    assert {i for i in base if slow[i] != base[i]} == {op.id for op in cpu.ops() if op.kind in KERNEL_KEYS}


def test_optimizer_counts_embedding_tables(g6):
    est = estimate(g6, "h200")
    plan, hw = g6.meta["plan"], hardware.get("h200")
    tables = sum(t.vocab * t.dim for t in plan.tables)
    assert tables > 0 and est.params == est.params_dense + tables
    optimizer_s = est.params * OPTIMIZER_BYTES_PER_PARAM / (hw.mem_bw * hw.efficiency["memory"])
    assert est.est_gpu_time_s == pytest.approx(sum(c.time_s for c in est.ops) + optimizer_s, rel=1e-12)


# ---- bench/calibrate.py ---------------------------------------------------------------------------

def run_calibrate(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRITON_INTERPRET": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, str(ROOT / "bench" / "calibrate.py"), *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


def test_calibrate_cpu_smoke_writes_a_loadable_file(tmp_path):
    """The CPU smoke run (about 15 s on 2 cores): every measurement runs, the file passes the loader."""
    out = tmp_path / "cal" / "cpu.json"
    p = run_calibrate("--device", "cpu", "--out", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    target, factors, launch_s, host, info = hardware.read_calibration(out)
    assert target == "cpu" and set(factors) == set(EFFICIENCY_KEYS) and 0 < launch_s <= 1e-3
    data = json.loads(out.read_text())
    assert data["command"].startswith("python3 bench/calibrate.py --device cpu") and info.date == data["date"]
    measured = {s["measure"] for s in data["samples"]}
    assert {"memory", "memory_copy", "matmul", "attention", "launch_s", "host_s"} <= measured
    # the memory factor: cost.py's bytes for LayerNorm over its time at the specs' sequence shapes
    # (an fp32 target has no autocast cast); the copy is the ceiling, not part of the factor
    mem = [s for s in data["samples"] if s["measure"] == "memory"]
    assert {s["op"] for s in mem} == {"layer_norm"} and all(s["bytes"] == 24 * s["rows_run"] * s["width"] for s in mem)
    rate = sum(s["weight_bytes"] for s in mem) / sum(s["weight_bytes"] / s["bytes_per_s"] for s in mem)
    assert factors["memory"] == pytest.approx(min(1.0, rate / hardware.DATASHEET["cpu"].mem_bw))
    if _has_triton():
        assert set(KERNEL_KEYS) <= measured and data["not_measured"] == []
    assert all(s["time_s"] > 0 for s in data["samples"])
    launch = next(s for s in data["samples"] if s["measure"] == "launch_s")
    host = next(s for s in data["samples"] if s["measure"] == "host_s")
    assert launch["launch_s"] == pytest.approx(host["host_s_per_op"])   # CPU: one wall clock
    assert launch_s == min(launch["launch_s"], hardware.MAX_LAUNCH_S)   # clamped on a loaded machine
    assert host["dispatches"] >= 4 * host["ops"] // 2   # linear + gelu forward, and their backward
    assert host["host_s_per_dispatch"] == pytest.approx(host["time_s"] / host["dispatches"])
    assert hardware.load_table(out.parent)["cpu"].calibration.gpu == data["gpu"]
    assert [p.name for p in out.parent.iterdir()] == ["cpu.json"]          # no temporary left behind
    assert "wrote" in p.stdout and "matmul" in p.stdout


def test_calibrate_refuses_bad_arguments(tmp_path):
    p = run_calibrate("--device", "cpu", "--target", "h200", "--out", str(tmp_path / "h200.json"))
    assert p.returncode == 2 and "--device cpu calibrates target cpu" in p.stderr
    p = run_calibrate("--device", "cpu", "--out", str(tmp_path / "h200.json"))
    assert p.returncode == 2 and "--out must be named cpu.json" in p.stderr
    p = run_calibrate("--target", "h200")
    assert p.returncode == 2 and "no CUDA device here" in p.stderr
    assert not list(tmp_path.iterdir())


def _has_triton() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def test_memory_factor_under_bf16_prices_the_cast_and_layer_norm():
    """On a bf16 target the memory factor also times the autocast cast (fp32 -> bf16 and its
    gradient back: 12 bytes per element, as cost.py charges); shapes largest first, weighted."""
    from opsload import import_file
    cal = import_file(ROOT / "bench" / "calibrate.py", "_kunlunc_calibrate")
    import torch
    bench = cal.Bench(torch.device("cpu"), torch.bfloat16, "bf16", hardware.DATASHEET["h200"],
                      budget=64 << 20, smoke=True)
    from collections import Counter
    factor, samples = cal.measure_memory(bench, Counter({(64, 32): 3, (16, 8): 1, (8, 8): 5}), max_shapes=2)
    priced = [s for s in samples if s["measure"] == "memory"]
    assert [(s["op"], s["rows"], s["width"]) for s in priced] == [
        ("layer_norm", 64, 32), ("autocast_cast", 64, 32), ("layer_norm", 8, 8), ("autocast_cast", 8, 8)]
    cast = priced[1]
    assert cast["bytes"] == 12 * 64 * 32 and cast["weight_bytes"] == 3 * 12 * 64 * 32
    rate = sum(s["weight_bytes"] for s in priced) / sum(s["weight_bytes"] / s["bytes_per_s"] for s in priced)
    assert factor == pytest.approx(rate / hardware.DATASHEET["h200"].mem_bw)
    assert sum(s["measure"] == "memory_copy" for s in samples) == 1


def test_matmul_samples_price_their_own_shapes(tmp_path, monkeypatch):
    """A linear whose (in, out) calibration measured runs at that sample's efficiency (FLOP-weighted
    over repeats); other shapes keep the matmul factor. Narrow GEMMs run far below wide ones."""
    samples = [{"measure": "matmul", "in_features": 16, "out_features": 48, "efficiency": 0.2, "weight_flops": 1},
               {"measure": "matmul", "in_features": 16, "out_features": 48, "efficiency": 0.5, "weight_flops": 3},
               {"measure": "memory", "op": "layer_norm", "efficiency": 0.9}]
    d = tmp_path / "cal"
    write(d, calibration(samples=samples))
    table = hardware.load_table(d)
    assert dict(table["h200"].matmul_shapes) == {(16, 48): pytest.approx(0.425)}
    monkeypatch.setattr(hardware, "HARDWARE", table)
    tiny = compile_spec(load_spec(SPECS / "kunlun_tiny.yaml"), "h200").graph
    model = CostModel(tiny, "h200", 1)
    def efficiency(op_id: str) -> float:
        return model._efficiency("matmul", _gemm_shape(tiny.op(op_id), "matmul"))
    assert efficiency("l1_click_swa.qkv_proj") == pytest.approx(0.425)
    assert efficiency("l1_click_swa.o_proj") == FACTORS["matmul"]
    bad = calibration(samples=[{"measure": "matmul", "in_features": 16, "out_features": 48, "efficiency": 2}])
    with pytest.raises(CalibrationError, match=r"samples\[0\]\.efficiency must be in \(0, 1\]"):
        hardware.parse_calibration(bad, "f.json")


def test_linear_shapes_cover_the_narrow_gemms_too():
    """The heaviest shapes by FLOPs, then up to half as many (in, out) pairs not yet sampled, the
    heaviest first: the interaction's GEMMs (M = batch) get a factor of their own."""
    from collections import Counter
    from opsload import import_file
    cal = import_file(ROOT / "bench" / "calibrate.py", "_kunlunc_calibrate")
    S = cal.LinearShape
    shapes = Counter({S(1 << 20, 512, 512, True): 10, S(1 << 20, 256, 256, True): 10,
                      S(1 << 19, 512, 512, True): 4,          # a pair already sampled: skipped
                      S(256, 1536, 4096, True): 6, S(256, 272, 1536, True): 6, S(64, 8, 8, False): 1})
    picked = cal.pick_linear_shapes(shapes, max_shapes=2)
    assert [(s.rows, s.in_features, s.out_features) for s, _ in picked] == [
        (1 << 20, 512, 512), (1 << 20, 256, 256), (256, 1536, 4096)]          # 2 + 2 // 2
    picked = cal.pick_linear_shapes(shapes, max_shapes=4)
    assert [(s.in_features, s.out_features) for s, _ in picked] == [
        (512, 512), (256, 256), (512, 512), (1536, 4096), (272, 1536), (8, 8)]
