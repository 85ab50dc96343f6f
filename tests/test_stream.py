"""Model(stream="compute"): the towers keep their residual stream in the autocast dtype.

Checked on the CPU under torch.autocast("cpu", bfloat16) (the torch path): the stream the tower
blocks hand on is bf16 (fp32 by default), the model computes nearly the same function, it casts
fewer tensors per step, and the cost model prices it as less traffic.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from genutil import SPECS, compiled, load_spec
from modelutil import build_untuned, rel
from kunlun_compiler.cost import STREAMS, estimate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_untuned(SPECS / "kunlun_tiny.yaml", tmp_path_factory.mktemp("tiny_stream"))


class _Casts(TorchDispatchMode):
    """Counts the float casts (aten._to_copy between float dtypes) a region dispatches."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._to_copy.default and args[0].is_floating_point():
            self.n += 1
        return func(*args, **(kwargs or {}))


def _run(pkg, stream, batch, packed=False):
    torch.manual_seed(0)
    model = pkg.Model(backend="torch", stream=stream)
    streams = {}
    for name in ("embed_click", "l1_click_swa"):
        getattr(model, name).register_forward_hook(
            lambda m, a, out, name=name: streams.__setitem__(name, (out[0] if isinstance(out, tuple) else out).dtype))
    with _Casts() as casts, torch.autocast("cpu", dtype=torch.bfloat16):
        out = model._forward(pkg.pack_events(batch) if packed else batch).float()
        out.square().sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return out, grads, streams, casts.n


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_compute_stream_is_bf16_and_close(tiny, packed):
    batch = tiny.example_batch(64, seed=4)
    out32, g32, s32, casts32 = _run(tiny, "fp32", batch, packed)
    out16, g16, s16, casts16 = _run(tiny, "compute", batch, packed)
    assert set(s32.values()) == {torch.float32} and set(s16.values()) == {torch.bfloat16}
    assert rel(out16, out32) <= 2e-2             # bf16 rounding of the stream (0.4% here): close, not equal
    assert rel(out16, out32) > 0
    # Gradients per parameter. The stream's rounding flips a few ReLUs of the Wukong and head MLPs,
    # so any one gradient moves by chance: over data seeds the whole gradient vector differed by
    # 0.5-18% at batch 6 and 0.6-2.3% at 64 (median per parameter 0.5-2.3%, worst 7-14%). A lost
    # or garbled gradient is off by ~100%.
    assert g16.keys() == g32.keys()
    errors = sorted(rel(g16[n], g32[n]) for n in g32)
    assert errors[len(errors) // 2] <= 5e-2, errors[len(errors) // 2]
    assert errors[-1] <= 0.5, [(n, rel(g16[n], g32[n])) for n in g32 if rel(g16[n], g32[n]) > 0.5]
    assert casts16 < casts32, (casts16, casts32)  # the casts before projections and kernels go


def test_stream_is_checked_and_inert_without_autocast(tiny):
    with pytest.raises(ValueError, match="stream must be one of"):
        tiny.Model(stream="bf16")
    batch = tiny.example_batch(4, seed=1)
    torch.manual_seed(0)
    a = tiny.Model(backend="torch")(batch)
    torch.manual_seed(0)
    b = tiny.Model(backend="torch", stream="compute")(batch)     # CPU: no autocast, fp32 throughout
    assert torch.equal(a, b)


def test_cost_model_prices_the_compute_stream():
    """Under autocast the compute stream halves the stream's bytes (the norms that write it, the
    residual sums, the reads of the projections and kernels) and drops their casts; without
    autocast (the CPU target, an fp32 spec) there is one stream."""
    g = compiled(load_spec(SPECS / "kunlun_60g.yaml")).graph
    fp32, half = (estimate(g, "h200", 256, stream=s) for s in STREAMS)
    assert (fp32.stream, half.stream) == ("fp32", "compute")
    for field in ("est_gpu_time_s", "est_gpu_time_compiled_s", "est_gpu_time_compiled_packed_s"):
        assert getattr(half, field) < 0.95 * getattr(fp32, field), field
    assert half.flops_train_per_step == fp32.flops_train_per_step
    ours, theirs = ({c.id: c for c in e.ops} for e in (half, fp32))
    assert ours["embed_click.norm"].time_s < theirs["embed_click.norm"].time_s        # writes bf16
    assert ours["l1_click_swa.qkv_proj"].time_s < theirs["l1_click_swa.qkv_proj"].time_s   # no cast
    assert ours["l0_weight_gen.gate"].time_s == theirs["l0_weight_gen.gate"].time_s   # off the towers
    cpu = estimate(g, "cpu", 8, stream="compute")
    assert cpu.stream == "fp32" and cpu.est_gpu_time_s == estimate(g, "cpu", 8).est_gpu_time_s
    with pytest.raises(ValueError, match="stream must be one of"):
        estimate(g, "h200", 8, stream="bf16")


@pytest.mark.gpu
def test_compute_stream_on_gpu(tiny):
    """bf16 autocast on the Triton kernels, packed: the compute stream close to the fp32 stream,
    eager and compiled per block."""
    from modelutil import deep_cuda, grads
    batch = deep_cuda(tiny.pack_events(tiny.example_batch(64, seed=5)))
    torch.manual_seed(0)
    fp32 = tiny.Model(backend="triton").cuda()
    half = tiny.Model(backend="triton", stream="compute").cuda()
    half.load_state_dict(fp32.state_dict())
    out32, g32 = grads(fp32, batch)
    out16, g16 = grads(half, batch)
    flat = lambda g: torch.cat([g[n].double().flatten() for n in sorted(g32)])   # noqa: E731
    assert rel(out16, out32) <= 3e-2 and rel(flat(g16), flat(g32)) <= 5e-2
    half.compile_blocks()
    out_c, g_c = grads(half, batch)
    assert rel(out_c, out32) <= 3e-2 and rel(flat(g_c), flat(g32)) <= 5e-2
