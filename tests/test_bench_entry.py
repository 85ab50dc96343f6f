"""`python -m <package> bench`: real training steps, measured beside the estimate."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from genutil import SPECS, compiled, load_spec, tiny_package
from kunlun_compiler.codegen import render
from kunlun_compiler.cost import estimate
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
    assert report["dispatched_ops_per_step"] > 100   # the host work of an eager step
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
    padded = subprocess.run([sys.executable, "-m", "kunlun_tiny", "bench", "--device", "cpu", "--steps", "1",
                             "--warmup", "0", "--batch-size", "4", "--layout", "padded", "--json"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert padded.returncode == 0, padded.stderr
    padded = json.loads(padded.stdout)
    assert report["layout"] == "packed" and padded["layout"] == "padded"      # packed by default
    assert padded["model_flops_per_step"] == report["model_flops_per_step"]   # useful work: the same
    # the GPU time is the compiler's estimate priced at the batch run (not the spec's scaled: a
    # step's launches and weight bytes do not grow with the batch)
    at4 = estimate(c.graph, "cpu", batch_size=4)
    assert est["batch_size"] != 4
    assert report["estimated_gpu_step_s"] == pytest.approx(at4.est_gpu_time_packed_s, rel=1e-9)
    assert padded["estimated_gpu_step_s"] == pytest.approx(at4.est_gpu_time_s, rel=1e-9)
    assert at4.est_gpu_time_s != pytest.approx(est["est_gpu_time_s"] * 4 / est["batch_size"], rel=1e-3)
    assert report["estimated_gpu_step_s"] < padded["estimated_gpu_step_s"]
    assert all(g["measured_s"] > 0 for g in padded["groups"].values())
    bad = subprocess.run([sys.executable, "-m", "kunlun_tiny", "bench", "--device", "cpu", "--layout", "ragged"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert bad.returncode == 2 and "--layout" in bad.stderr


def test_compile_modes_reach_torch_compile(tmp_path, monkeypatch):
    """`--compile` alone is torch.compile's default mode; `--compile reduce-overhead` (CUDA graphs)
    and the other modes are passed through; an unknown mode is refused before anything runs."""
    import importlib

    import torch
    c = compiled(load_spec(SPECS / "kunlun_tiny.yaml"))
    write_package(render(c, "kunlun_tiny.yaml"), tmp_path, "kunlunc_bench_modes")
    monkeypatch.syspath_prepend(str(tmp_path))
    bench = importlib.import_module("kunlunc_bench_modes.bench")
    main = importlib.import_module("kunlunc_bench_modes.__main__").main
    seen, targets = [], []
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None, **kw: targets.append(fn) or seen.append(mode) or fn)
    for compile_arg, mode in ((True, None), ("default", None), ("reduce-overhead", "reduce-overhead"),
                              ("max-autotune-no-cudagraphs", "max-autotune-no-cudagraphs")):
        bench.training("cpu", 2, compile=compile_arg)
        assert seen[-1] == mode
    blocks = importlib.import_module("kunlunc_bench_modes.model").BLOCK_GROUPS
    targets.clear()
    model, _, _ = bench.training("cpu", 2, compile=True)            # scope "blocks": each block in place
    assert len(targets) == len(blocks) and all(t.__self__ is getattr(model, b) for t, b in zip(targets, blocks))
    targets.clear()
    model, _, _ = bench.training("cpu", 2, compile=True, scope="model")   # one graph
    assert targets == [model]
    with pytest.raises(ValueError, match="compile scope"):
        bench.training("cpu", 2, compile=True, scope="layers")
    report = bench.run_bench("cpu", steps=1, warmup=0, batch_size=2, compile="reduce-overhead", blocks=False)
    assert report["compile"] == "reduce-overhead" and seen[-1] == "reduce-overhead"
    assert report["layout"] == "packed"      # the Python API's default layout is the CLI's
    assert "dispatched_ops_per_step" not in report      # a dispatch mode would recompile a compiled model
    assert bench.dispatched_ops(lambda: torch.ones(3) + 1) == 2   # aten.ones, aten.add
    from types import SimpleNamespace
    rows = [SimpleNamespace(device_type=torch.autograd.DeviceType.CUDA, self_device_time_total=1500),
            SimpleNamespace(device_type=torch.autograd.DeviceType.CPU, self_device_time_total=9000)]
    assert bench.kernel_time_s(rows) == 1500 / 1e6      # kernel rows only: op rows repeat them
    assert report["compile_scope"] == "blocks"
    est = bench.ESTIMATE["targets"]["cpu"]           # a compiled run is set beside the compiled estimate
    curve = est["batch_curve"]

    def at2(values):                                  # the build's curve read at batch 2
        return bench.at_batch(curve["batch_sizes"], values, 2)
    gpu = at2(curve["gpu"]["est_gpu_time_s"])
    # the GPU time is read at the batch, host time does not change with it; the step is the longer
    monkeypatch.setitem(curve["gpu"], "est_gpu_time_compiled_s", [t / 2 for t in curve["gpu"]["est_gpu_time_s"]])
    monkeypatch.setitem(est, "est_host_compiled_s", 0.0)
    monkeypatch.setitem(est, "est_host_s", gpu * 3)
    compiled_report = bench._report(None, "cpu", 2, "auto", "default", 1, 1.0, "padded")
    eager_report = bench._report(None, "cpu", 2, "auto", False, 1, 1.0, "padded")
    assert compiled_report["estimated_step_s"] == pytest.approx(gpu / 2)
    assert eager_report["estimated_gpu_step_s"] == pytest.approx(gpu)
    assert eager_report["estimated_step_s"] == eager_report["estimated_host_s"] == pytest.approx(gpu * 3)
    flops = est["flops_train_per_step"] * 2 / est["batch_size"]     # FLOPs are linear in the batch
    assert compiled_report["estimated_mfu"] == pytest.approx(flops / (gpu / 2 * est["peak_flops"]))
    assert eager_report["estimated_mfu"] == pytest.approx(flops / (gpu * 3 * est["peak_flops"]))
    assert "host not fitted" not in bench.format_report({**report, **eager_report})
    assert "host not fitted for this target" in bench.format_report({**report, **compiled_report})
    group, v = next(iter(curve["groups"].items()))
    assert compiled_report["groups"][group]["estimated_s"] == pytest.approx(at2(v["time_compiled_s"]))
    # per group: each block the longer of its GPU time (its group's at this batch, shared as at the
    # spec's batch) and its share of the host time (what a block timed alone takes), the same rule
    # as the compiler's Estimate.group_steps
    from kunlun_compiler.cost import group_steps
    ratio = {g: at2(c["time_s"]) / est["groups"][g]["time_s"] for g, c in curve["groups"].items()}
    expected = group_steps(est["blocks"], est["est_host_s"] / est["host_ops"], compiled=False, gpu_scale=ratio)
    assert {g: v["estimated_s"] for g, v in eager_report["groups"].items()} == pytest.approx(expected)
    assert any(v["estimated_s"] > v["estimated_gpu_s"] for v in eager_report["groups"].values())
    assert all(v["estimated_gpu_s"] == pytest.approx(at2(curve["groups"][g]["time_s"]))
               for g, v in eager_report["groups"].items())
    assert "compile (reduce-overhead, per block)" in bench.format_report(report)
    with pytest.raises(ValueError, match="compile mode"):
        bench.training("cpu", 2, compile="fast")
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--device", "cpu", "--compile", "fast"])
    assert exc.value.code == 2


@pytest.mark.gpu
def test_bench_measures_gpu_kernel_time_on_cuda(tmp_path):
    """On CUDA the report carries the step's and each group's GPU kernel time (what the estimate
    models), below the wall time of a step that may wait on the host."""
    c = compiled(load_spec(SPECS / "kunlun_tiny.yaml"))
    write_package(render(c, "kunlun_tiny.yaml"), tmp_path, "kunlun_tiny")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "KUNLUNC_AUTOTUNE": "0"}
    p = subprocess.run([sys.executable, "-m", "kunlun_tiny", "bench", "--device", "cuda", "--steps", "3",
                        "--batch-size", "8", "--json"], capture_output=True, text=True, cwd=tmp_path, env=env,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(p.stdout)
    assert 0 < report["gpu_step_s"] < 10 * report["measured_step_s"]
    assert all(g["gpu_s"] > 0 for g in report["groups"].values() if "measured_s" in g)


def test_block_inputs_of_a_compiled_model_do_not_recompile_it(tmp_path, monkeypatch):
    """Per-block timing captures each block's inputs; on a model compiled block by block it must
    not touch the compiled blocks (hooks and no_grad change dynamo's guards: every graph compiled
    again, 11 -> 24 on kunlun_tiny before the fix). The inputs equal those an eager model sees."""
    import torch
    from torch._dynamo.utils import counters
    pkg, bench = tiny_package(tmp_path, monkeypatch, "kunlunc_bench_capture")
    torch.manual_seed(0)
    eager, regional = pkg.Model(), pkg.Model()
    regional.load_state_dict(eager.state_dict())
    torch._dynamo.reset()
    counters.clear()
    regional.compile_blocks(backend="aot_eager_decomp_partition")
    batch = pkg.example_batch(4, seed=0)
    regional(batch).sum().backward()
    graphs = counters["stats"]["unique_graphs"]
    assert graphs > 0
    seen = bench._capture_inputs(regional, batch)
    assert counters["stats"]["unique_graphs"] == graphs
    expected = bench._capture_inputs(eager, batch)
    assert seen.keys() == expected.keys() == set(bench.BLOCK_GROUPS)
    for name in seen:
        for got, want in zip(seen[name], expected[name], strict=True):
            if isinstance(want, torch.nn.Module):        # the model's own module, not a copy's
                assert got is getattr(regional, next(n for n, m in eager.named_children() if m is want))
            else:
                torch.testing.assert_close(got, want, msg=name)
    torch._dynamo.reset()


def test_block_timing_starts_each_repeat_from_no_gradient(tmp_path, monkeypatch):
    """A timed block repeat is one step's forward and backward: the gradients of the block's
    parameters and of its captured inputs are those of one call, not the sum over the repeats
    (adding into the last call's gradients launched one extra kernel per parameter, a fifth of
    Wukong's kernel time at kunlun_180g)."""
    import torch
    pkg, bench = tiny_package(tmp_path, monkeypatch, "kunlunc_bench_fresh_grads")
    torch.manual_seed(0)
    model = pkg.Model()
    inputs = bench._capture_inputs(model, pkg.example_batch(4, seed=0))
    checked = 0
    for name, args in inputs.items():
        block = getattr(model, name)
        leaves = [t for x in (block, *args)
                  for t in (x.parameters() if isinstance(x, torch.nn.Module) else (x,))
                  if isinstance(t, torch.Tensor) and t.requires_grad]
        bench._forward_backward(block, args, None)
        once = [None if t.grad is None else t.grad.clone() for t in leaves]
        bench._forward_backward(block, args, None)
        for t, g in zip(leaves, once, strict=True):
            if g is not None:
                torch.testing.assert_close(t.grad, g, msg=name)
                checked += 1
    assert checked > 20


def test_stream_picks_its_estimate(tmp_path, monkeypatch):
    """`--stream compute` trains Model(stream="compute") and is set beside the compute-stream
    estimate of its target (where the target trains under autocast; the CPU has one stream)."""
    import importlib
    c = compiled(load_spec(SPECS / "kunlun_tiny.yaml"))
    write_package(render(c, "kunlun_tiny.yaml"), tmp_path, "kunlunc_bench_stream")
    monkeypatch.syspath_prepend(str(tmp_path))
    bench = importlib.import_module("kunlunc_bench_stream.bench")
    main = importlib.import_module("kunlunc_bench_stream.__main__").main
    estimates = bench.ESTIMATE
    assert "cpu" not in estimates["compute_stream"] and "h200" in estimates["compute_stream"]
    monkeypatch.setattr(bench, "device_target", lambda device: "h200")
    fp32 = bench._report(None, "cpu", 8, "auto", "default", 1, 1.0, "packed", "fp32")
    half = bench._report(None, "cpu", 8, "auto", "default", 1, 1.0, "packed", "compute")
    for report, stream in ((fp32, "fp32"), (half, "compute")):
        # batch 8 lies between the curve's 4 and 16: read off the line between them, within 5% of
        # the compiler's estimate priced at 8
        exact = estimate(c.graph, "h200", batch_size=8, stream=stream).est_gpu_time_compiled_packed_s
        assert report["estimated_gpu_step_s"] == pytest.approx(exact, rel=0.05)
    assert half["estimated_gpu_step_s"] < fp32["estimated_gpu_step_s"]
    model, _, _ = bench.training("cpu", 2, stream="compute")
    assert model.stream == "compute" and model.embed_click.stream == "compute"
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--device", "cpu", "--stream", "bf16"])
    assert exc.value.code == 2


def _bench_module(tmp_path, monkeypatch, name):
    import importlib
    _, bench = tiny_package(tmp_path, monkeypatch, name)
    return bench, importlib.import_module(f"{name}.__main__").main


def test_cuda_graph_option_is_checked_and_priced(tmp_path, monkeypatch):
    """`--cuda-graph` (the whole step in one CUDA graph) is refused off CUDA and beside a compile
    mode that replays graphs of its own; its estimate is the GPU time alone (no host time per op);
    a batch of other shapes than the captured one is refused before anything replays."""
    bench, main = _bench_module(tmp_path, monkeypatch, "kunlunc_bench_graph")
    with pytest.raises(ValueError, match="needs device 'cuda'"):
        bench.training("cpu", 2, graph=True)
    for mode in bench.GRAPH_CONFLICTS:         # refused before any CUDA work
        with pytest.raises(ValueError, match="CUDA graphs of its own"):
            bench.training("cuda", 2, compile=mode, graph=True)
        with pytest.raises(SystemExit) as exc:
            main(["bench", "--device", "cuda", "--compile", mode, "--cuda-graph"])
        assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--device", "cpu", "--cuda-graph"])
    assert exc.value.code == 2
    monkeypatch.setattr(bench, "device_target", lambda device: "h200")
    eager = bench._report(None, "cpu", 4096, "auto", False, 1, 1.0, "packed", "fp32")
    graphed = bench._report(None, "cpu", 4096, "auto", False, 1, 1.0, "packed", "fp32", True)
    gpu = estimate(compiled(load_spec(SPECS / "kunlun_tiny.yaml")).graph, "h200", batch_size=4096)
    assert graphed["estimated_step_s"] == graphed["estimated_gpu_step_s"] == pytest.approx(
        gpu.est_gpu_time_packed_s, rel=1e-9)
    assert graphed["estimated_host_s"] == 0.0 and eager["estimated_host_s"] > 0
    small = bench._report(None, "cpu", 1, "auto", False, 1, 1.0, "packed", "fp32", True)
    assert small["estimated_step_s"] < bench._report(None, "cpu", 1, "auto", False, 1, 1.0)["estimated_step_s"]
    text = bench.format_report({**graphed, "cuda_graph": True, "layout": "packed", "first_step_s": 1.0})
    assert "+ CUDA graph" in text and "one CUDA graph launch" in text
    ragged = [bench.example_batch(3, seed=i, packed=True) for i in range(2)]    # row counts differ
    assert ragged[0]["events"]["click"]["offsets"][-1] != ragged[1]["events"]["click"]["offsets"][-1]
    batches = [ragged[0]]
    step = bench.graphed_step(lambda batch: None, batches)    # captures ragged[0]'s shapes
    batches[0] = ragged[1]
    with pytest.raises(ValueError, match="fixed shapes"):
        step()


@pytest.mark.gpu
def test_cuda_graph_step_matches_eager_on_gpu(tmp_path, monkeypatch):
    """The captured step trains as the eager step does: the same parameter updates after the
    first call (the warm-up steps and the first replay, all on the first batch) and two more
    replays on the next batches, which must be copied in (a stale batch gives other updates)."""
    import torch
    monkeypatch.setenv("KUNLUNC_AUTOTUNE", "0")
    bench, _ = _bench_module(tmp_path, monkeypatch, "kunlunc_bench_graph_gpu")
    model_g, batches_g, step_g = bench.training("cuda", 8, graph=True)
    model_e, batches_e, step_e = bench.training("cuda", 8)
    init = {n: p.detach().clone() for n, p in model_e.named_parameters()}
    b0, b1, b2 = batches_e[:3]
    batches_e[:] = [b0] * (bench.GRAPH_WARMUP + 1) + [b1, b2]   # the graphed sequence, step by step
    for _ in range(len(batches_e)):
        step_e()
    for _ in range(3):
        step_g()
    torch.cuda.synchronize()
    worst = 0.0
    for (n, pe), (_, pg) in zip(model_e.named_parameters(), model_g.named_parameters()):
        de, dg = pe.detach() - init[n], pg.detach() - init[n]
        if de.norm() > 0:
            worst = max(worst, ((dg - de).norm() / de.norm()).item())
    assert worst < 2e-2, worst


def test_graphed_step_warms_up_captures_once_and_replays_each_batch(tmp_path, monkeypatch):
    """graphed_step's data flow, with torch.cuda's streams and graphs replaced by stand-ins (this
    machine has no GPU): GRAPH_WARMUP eager steps and one capture on the first call, all on one
    static batch; then every call copies the next batch into that same static batch and replays."""
    import contextlib

    import torch
    bench, _ = _bench_module(tmp_path, monkeypatch, "kunlunc_bench_graph_flow")
    log, state = [], {"capturing": False}

    class Graph:
        def replay(self):
            log.append(("replay", state["recorded"]()))

    @contextlib.contextmanager
    def graph(g, **_):
        state["capturing"] = True
        yield
        state["capturing"] = False

    class Stream:
        def wait_stream(self, other):
            pass
    for name, value in (("Stream", Stream), ("CUDAGraph", Graph), ("graph", graph),
                        ("stream", lambda s: contextlib.nullcontext()), ("current_stream", lambda: Stream())):
        monkeypatch.setattr(torch.cuda, name, value)
    batches = [bench.example_batch(2, seed=i, at_avg_len=True, packed=True) for i in range(3)]
    assert len({int(b["events"]["click"]["offsets"][-1]) for b in batches}) == 1   # one shape
    seen = []

    def train_step(batch):
        seen.append(batch)
        labels = batch["events"]["click"]["time_gaps"].clone()   # what a replay reads from the static batch
        if state["capturing"]:
            state["recorded"] = lambda: batch["events"]["click"]["time_gaps"].clone()
            log.append(("capture", labels))
        else:
            log.append(("eager", labels))
    step = bench.graphed_step(train_step, batches)
    for _ in range(4):
        step()
    kinds = [k for k, _ in log]
    assert kinds == ["eager"] * bench.GRAPH_WARMUP + ["capture"] + ["replay"] * 4
    assert all(b is seen[0] for b in seen) and seen[0] is not batches[0]      # one static batch
    order = [0] * (bench.GRAPH_WARMUP + 2) + [1, 2, 0]                        # warm-up, capture, replays
    gaps = [b["events"]["click"]["time_gaps"] for b in batches]
    assert not torch.equal(gaps[0], gaps[1]) and not torch.equal(gaps[1], gaps[2])
    assert all(torch.equal(v, gaps[i]) for (_, v), i in zip(log, order))


def test_report_says_when_the_step_waits_on_the_host(tmp_path, monkeypatch):
    """A CUDA step measured well past its GPU kernels gets a line naming the wait and what removes
    it (--cuda-graph; a larger batch where the compile mode replays graphs itself); a step at its
    kernel time, a graphed step and a CPU run (no kernel time) get none. Blocks whose times alone
    sum past the step show n/a for the optimizer's share, not a negative time."""
    bench, _ = _bench_module(tmp_path, monkeypatch, "kunlunc_bench_host_wait")
    base = bench._report(None, "cpu", 2, "auto", False, 1, 0.130, "packed", "fp32")
    base.update(layout="packed", first_step_s=1.0)
    waiting = bench.format_report({**base, "gpu_step_s": 0.117})
    line = next(x for x in waiting.splitlines() if "host wait" in x)
    assert "13.000 ms" in line and "(10%)" in line and "--cuda-graph" in line
    assert "host wait" not in bench.format_report({**base, "gpu_step_s": 0.128})       # 1.5%: none
    assert "host wait" not in bench.format_report(base)                                 # CPU: no kernel time
    assert "host wait" not in bench.format_report({**base, "gpu_step_s": 0.05, "cuda_graph": True})
    replaying = bench.format_report({**base, "gpu_step_s": 0.05, "compile": "reduce-overhead"})
    assert "a larger --batch-size" in replaying and "--cuda-graph" not in replaying.split("host wait")[1]
    blocks = {**base, "blocks_total_s": 0.2, "groups": {}}
    glue = next(x for x in bench.format_report(blocks).splitlines() if "optimizer, glue" in x)
    assert "n/a" in glue and "-" not in glue.split("glue")[1].split("(")[0]
    glue = next(x for x in bench.format_report({**blocks, "blocks_total_s": 0.1}).splitlines()
                if "optimizer, glue" in x)
    assert "30.000" in glue
