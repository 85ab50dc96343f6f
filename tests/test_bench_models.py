"""bench/bench_models.py: run parsing, the spec variants it builds, and the table it writes."""
import pytest
import yaml

from genutil import ROOT
from opsload import import_file

bm = import_file(ROOT / "bench" / "bench_models.py", "_bench_models")


def fake_runs(monkeypatch, returncode: int, stdout: str = "", stderr: str = "") -> list:
    """measure() without building or running: every run returns this; the commands are collected."""
    class Proc:
        pass
    Proc.returncode, Proc.stdout, Proc.stderr = returncode, stdout, stderr
    commands = []
    monkeypatch.setattr(bm, "build", lambda spec, fused, work: "pkg")
    monkeypatch.setattr(bm.subprocess, "run", lambda cmd, **k: commands.append(cmd) or Proc())
    return commands


def result(spec, variant, batch, step_s, flops_per_example=1e9, **extra):
    return {"spec": spec, "variant": variant, "batch_size": batch, "measured_step_s": step_s,
            "estimated_step_s": step_s / 2, "model_flops_per_step": flops_per_example * batch,
            "measured_tflops": 1.0, "measured_mfu": 0.1, "estimated_mfu": 0.2, "peak_flops": 989e12,
            "device": "NVIDIA H200", **extra}


def test_run_parse():
    assert bm.Run.parse("kunlun_60g:unfused@16") == bm.Run("kunlun_60g", "unfused", 16)
    assert bm.Run.parse("kunlun_6g") == bm.Run("kunlun_6g", "fused", None)
    with pytest.raises(SystemExit, match="unknown variant"):
        bm.Run.parse("kunlun_6g:fast")


def test_every_default_run_names_a_spec_and_variant():
    for text in bm.DEFAULT_RUNS:
        run = bm.Run.parse(text)
        assert (ROOT / "specs" / f"{run.spec}.yaml").exists(), text
    runs = [bm.Run.parse(t) for t in bm.DEFAULT_RUNS]
    assert set(bm.PAPER) <= {r.spec for r in runs}
    # each ablation runs beside the full model in the same variant and batch (the ablation table)
    full = {(r.variant, r.batch) for r in runs if r.spec == "kunlun_6g"}
    assert all((r.variant, r.batch) in full for r in runs if r.spec in bm.PAPER)


def test_unfused_build_turns_fusion_off(tmp_path):
    name = bm.build("kunlun_tiny", fused=False, work=tmp_path)
    assert name == "kunlun_tiny_unfused"
    written = yaml.safe_load((tmp_path / "kunlun_tiny_unfused.yaml").read_text())
    assert written["compile"]["fuse"] is False
    model = (tmp_path / name / "model.py").read_text()
    assert "fused=False" in model and "fused=True" not in model
    assert "fused=True" in (ROOT / "generated" / "kunlun_tiny" / "model.py").read_text()


def test_ratio_is_examples_per_second_across_batches():
    table = bm.markdown([result("m", "fused", 64, 0.5), result("m", "unfused", 16, 0.5)], "hdr")
    # fused: 128 examples/s; unfused: 32 examples/s
    assert "| m | fused ÷ unfused | 64 vs 16 | 4.00x |" in table


def test_ablation_deltas():
    rows = bm.markdown([result("kunlun_6g", "fused", 8, 1.0, flops_per_example=6e9),
                        result("ablation_no_compskip", "fused", 8, 1.25, flops_per_example=10e9)], "")
    line = next(r for r in rows.splitlines() if "ablation_no_compskip" in r and "GFLOP" in r)
    assert "6.00 vs 10.00 GFLOP" in line and "-40.0%" in line and "+25.0%" in line and "-43%" in line


def test_failed_runs_are_listed():
    table = bm.markdown([result("a", "fused", 4, 1.0), {"spec": "b", "variant": "fused", "batch_size": 4,
                                                        "error": "timeout 150s"}], "")
    assert "| b | fused | 4 | failed: timeout 150s" in table


def test_write_markdown_replaces_only_between_markers(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Kernels\n\nkeep me\n")
    bm.write_markdown(path, bm.markdown([result("a", "fused", 4, 1.0)], "HEADER-1"))
    bm.write_markdown(path, bm.markdown([result("a", "fused", 4, 2.0)], "HEADER-2"))
    text = path.read_text()
    assert text.startswith("# Kernels\n\nkeep me\n")
    assert text.count(bm.MARK_BEGIN) == 1 and "HEADER-2" in text and "HEADER-1" not in text


def test_error_line_is_the_exception_not_the_closing_advice():
    stderr = ("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
              "torch._dynamo.exc.Unsupported: call_function UserDefinedObjectVariable(Autotuner)\n"
              "  Explanation: Dynamo does not know how to trace it.\n\n"
              "Set TORCHDYNAMO_VERBOSE=1 for the internal stack trace\n")
    assert bm.error_line(stderr).startswith("torch._dynamo.exc.Unsupported: call_function")
    assert bm.error_line("RuntimeError: CUDA error\n") == "RuntimeError: CUDA error"
    assert bm.error_line("just a message\n") == "just a message"
    assert bm.error_line("") == "no output"


def test_a_failed_run_keeps_its_stderr_beside_the_json(tmp_path, monkeypatch):
    stderr = "Traceback\nValueError: bad shape\nSet TORCHDYNAMO_VERBOSE=1\n"
    fake_runs(monkeypatch, 1, stderr=stderr)
    r = bm.measure(bm.Run.parse("kunlun_6g:compiled@8"), tmp_path, 1, 10.0, logs=tmp_path)
    assert r["error"] == "ValueError: bad shape"
    assert (tmp_path / r["log"]).read_text() == stderr


def test_compile_speedup_and_first_step_are_reported():
    table = bm.markdown([result("m", "fused", 8, 0.2, first_step_s=2.5),
                         result("m", "compiled", 8, 0.1, first_step_s=160.0)], "hdr")
    assert "| m | compiled ÷ fused | 8 vs 8 | 2.00x |" in table
    row = next(line for line in table.splitlines() if line.startswith("| m | compiled | 8 |"))
    assert row.endswith("| 160.0 |")
    old = bm.markdown([result("m", "fused", 8, 0.2)], "hdr")     # results from before the field
    assert next(line for line in old.splitlines() if line.startswith("| m | fused |")).endswith("| n/a |")


@pytest.mark.parametrize("variant, flags, layout", [
    ("fused", [], "padded"), ("compiled", ["--compile", "default", "--compile-scope", "blocks"], "padded"),
    ("compiled_model", ["--compile", "default", "--compile-scope", "model"], "padded"),
    ("cudagraphs", ["--compile", "reduce-overhead", "--compile-scope", "blocks"], "padded"),
    ("packed", [], "packed"), ("compiled_packed", ["--compile", "default", "--compile-scope", "blocks"], "packed"),
    ("compiled_packed_bf16", ["--compile", "default", "--compile-scope", "blocks"], "packed")])
def test_variants_pass_their_compile_mode_and_layout(tmp_path, monkeypatch, variant, flags, layout):
    seen = fake_runs(monkeypatch, 0, stdout='{"measured_step_s": 1.0}')
    bm.measure(bm.Run.parse(f"kunlun_6g:{variant}@8"), tmp_path, 1, 10.0)
    cmd = seen[-1]
    assert ("--compile" in cmd) == bool(flags)
    if flags:
        i = cmd.index("--compile")
        assert cmd[i:i + 4] == flags
    assert cmd[cmd.index("--layout") + 1] == layout    # explicit: the package's default is packed
    assert cmd[cmd.index("--stream") + 1] == ("compute" if variant.endswith("_bf16") else "fp32")


def test_ablations_compare_within_one_variant():
    rows = bm.markdown([result("kunlun_6g", "fused", 8, 1.0, flops_per_example=6e9),
                        result("ablation_no_swa", "fused", 8, 0.8, flops_per_example=8e9),
                        result("kunlun_6g", "compiled", 8, 0.5, flops_per_example=6e9),
                        result("ablation_no_swa", "compiled", 8, 0.6, flops_per_example=8e9)], "")
    eager = next(r for r in rows.splitlines() if "(ablation_no_swa) | fused |" in r)
    compiled = next(r for r in rows.splitlines() if "(ablation_no_swa) | compiled |" in r)
    assert "-25.0%" in eager and "-20.0%" in eager          # FLOPs 6 vs 8: -25%; steps/s 8/1.0 vs 8/0.8: -20%
    assert "-25.0%" in compiled and "+20.0%" in compiled    # steps/s 8/0.5 vs 8/0.6: +20%


def test_gpu_kernel_time_is_set_beside_the_estimate():
    table = bm.markdown([result("m", "fused", 8, 0.4, gpu_step_s=0.1)], "hdr")   # estimate: 0.2 s
    row = next(line for line in table.splitlines() if line.startswith("| m | fused |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:8] == ["400.0", "100.0", "200.0", "0.50", "2.00"]   # measured, GPU, est, ÷meas, ÷GPU
    old = bm.markdown([result("m", "fused", 8, 0.4)], "hdr")             # runs from before the field
    cells = [c.strip() for c in next(line for line in old.splitlines() if line.startswith("| m |")).strip("|").split("|")]
    assert cells[4] == "n/a" and cells[7] == "n/a"


def test_a_cold_first_step_failure_is_retried_once(tmp_path, monkeypatch):
    """A compiled run whose cold first step fails with inductor's autotune write-back into a saved
    tensor runs once more (the caches are warm then) and says so; any other failure, a second such
    failure, or an eager run is not retried."""
    import json
    cold = ("Traceback\nRuntimeError: one of the variables needed for gradient computation has been "
            "modified by an inplace operation: [torch.cuda.LongTensor [1024]] is at version 106; expected "
            "version 0 instead.\n")
    ok = json.dumps(result("kunlun_6g", "compiled", 8, 0.1, first_step_s=30.0))

    def runs(*procs):
        calls = []

        class Proc:
            def __init__(self, code, out, err):
                self.returncode, self.stdout, self.stderr = code, out, err
        queue = [Proc(*p) for p in procs]
        monkeypatch.setattr(bm, "build", lambda spec, fused, work: "pkg")
        monkeypatch.setattr(bm.subprocess, "run", lambda cmd, **k: calls.append(cmd) or queue.pop(0))
        return calls
    calls = runs((1, "", cold), (0, ok, ""))
    r = bm.measure(bm.Run.parse("kunlun_6g:compiled@8"), tmp_path, 1, 10.0)
    assert len(calls) == 2 and r["measured_step_s"] == 0.1
    assert r["first_attempt_error"].startswith("RuntimeError: one of the variables")
    assert "2nd attempt" in bm.markdown([r], "hdr")
    calls = runs((1, "", cold), (1, "", cold))
    r = bm.measure(bm.Run.parse("kunlun_6g:compiled@8"), tmp_path, 1, 10.0)
    assert len(calls) == 2 and r["error"].startswith("RuntimeError")
    calls = runs((1, "", cold))
    r = bm.measure(bm.Run.parse("kunlun_6g:fused@8"), tmp_path, 1, 10.0)      # eager: no caches to warm
    assert len(calls) == 1 and "error" in r
