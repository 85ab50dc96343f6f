"""`python -m <package> bench`: real training steps, measured beside the estimate."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from genutil import SPECS, compiled, load_spec
from kunlun_compiler.codegen import render
from kunlun_compiler.writer import write_package

KEYS = {"measured_step_s", "estimated_step_s", "model_flops_per_step", "measured_tflops", "measured_mfu",
        "estimated_mfu"}


def test_bench_entry_point_on_cpu(tmp_path):
    c = compiled(load_spec(SPECS / "kunlun_tiny.yaml"))
    write_package(render(c, "kunlun_tiny.yaml"), tmp_path, "kunlun_tiny")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "kunlun_tiny", "bench", "--device", "cpu", "--steps", "2",
                        "--warmup", "1", "--batch-size", "4", "--json"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert KEYS <= set(report)
    assert report["measured_step_s"] > 0 and report["target"] == "cpu" and report["batch_size"] == 4
    assert report["first_step_s"] > 0          # the step that compiles and autotunes, timed apart
    groups = report["groups"]
    assert {"gdpa", "window_attention", "seed_pooling", "wukong", "embeddings"} <= set(groups)
    assert all(g["measured_s"] > 0 for g in groups.values())
    # the model FLOPs are the estimate's training FLOPs, scaled to the batch
    est = json.loads((tmp_path / "kunlun_tiny" / "estimate.json").read_text())["targets"]["cpu"]
    assert report["model_flops_per_step"] == est["flops_train_per_step"] * 4 / est["batch_size"]
    text = subprocess.run([sys.executable, "-m", "kunlun_tiny", "bench", "--device", "cpu", "--steps", "1",
                           "--warmup", "0", "--batch-size", "2", "--no-blocks"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert text.returncode == 0 and "MFU" in text.stdout and "step time" in text.stdout
    assert "first step" in text.stdout           # --warmup 0 still times the first step apart
