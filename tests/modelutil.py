"""Helpers shared by the tests that train generated models: build untuned, compare, collect grads."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from genutil import build_and_import, load_spec


def build_untuned(spec_path: Path, out_dir: Path):
    """The package of a spec, imported with KUNLUNC_AUTOTUNE=0 (read when the kernels are
    imported): one config per kernel, for correctness, not speed. Autotuning every kernel shape of
    a model took the first GPU test past 100 s."""
    saved = os.environ.get("KUNLUNC_AUTOTUNE")
    os.environ["KUNLUNC_AUTOTUNE"] = "0"
    try:
        pkg, _ = build_and_import(load_spec(spec_path), out_dir)
    finally:
        if saved is None:
            del os.environ["KUNLUNC_AUTOTUNE"]
        else:
            os.environ["KUNLUNC_AUTOTUNE"] = saved
    return pkg


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ in float64."""
    return ((a.double() - b.double()).norm() / b.double().norm().clamp(min=1e-30)).item()


def grads(model, batch) -> tuple[torch.Tensor, dict]:
    """(output, {parameter name: gradient}) of sum(output²)."""
    model.zero_grad()
    out = model(batch)
    out.float().pow(2).sum().backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def deep_cuda(tree):
    """A batch (nested dicts of tensors) on the GPU."""
    if isinstance(tree, dict):
        return {k: deep_cuda(v) for k, v in tree.items()}
    return tree.cuda()


def perturb(module) -> None:
    """Move every parameter off its init (ones, zeros) so that each weight matters to a comparison."""
    for p in module.parameters():
        p.data.add_(0.1 * torch.randn_like(p))


def assert_same_grads(out, ref, inputs, names) -> None:
    """The gradients of out and of ref for one random upstream gradient agree (float64 bounds)."""
    grad = torch.randn_like(out)
    for name, g1, g2 in zip(names, torch.autograd.grad(out, inputs, grad), torch.autograd.grad(ref, inputs, grad)):
        torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")
