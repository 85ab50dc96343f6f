"""The generated MixtureOfWukongExperts runs its experts batched (one matmul for all experts of a
Wukong layer); here it is checked against the per-expert math written out plainly, expert by
expert, from the same weights: outputs and every gradient, in float64."""
from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from genutil import build_and_import, load_spec, SPECS
from modelutil import assert_same_grads, perturb


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    pkg, _ = build_and_import(load_spec(SPECS / "kunlun_tiny.yaml"), tmp_path_factory.mktemp("wukong"))
    return importlib.import_module(f"{pkg.__name__}.layers")


def _vector(p: torch.Tensor, j: int) -> torch.Tensor:
    """Expert j's bias or LayerNorm affine, flat: stored [E, 1, ..., width], or [width] for one
    expert."""
    return (p if p.dim() == 1 else p[j]).flatten()


def _expert_layer(layer, j: int, a: torch.Tensor) -> torch.Tensor:
    """Expert j of a WukongExperts on its own tokens a [B, n, d]:
    A' = LN(concat(FMB(A), LCB(A)) + P·A), FMB = MLP(LN(flatten(A·(AᵀY))))."""
    b = a.shape[0]
    fm = a @ (a.transpose(1, 2) @ layer.fm_proj[j, 0])                    # [B, n, rank]
    h = F.layer_norm(fm.flatten(1), (fm[0].numel(),), _vector(layer.fm_norm.weight, j),
                     _vector(layer.fm_norm.bias, j))
    for lin in layer.fmb_mlp:
        h = torch.relu(h @ lin.weight[j] + _vector(lin.bias, j))
    fmb = (h @ layer.fmb_out.weight[j] + _vector(layer.fmb_out.bias, j)).view(b, layer.fmb_tokens, layer.dim)
    skip = a if layer.skip is None else layer.skip[j, 0] @ a
    return F.layer_norm(torch.cat([fmb, layer.lcb[j, 0] @ a], dim=1) + skip, (layer.dim,),
                        _vector(layer.norm.weight, j), _vector(layer.norm.bias, j))


def _reference(moe, x, x_sum, hs) -> torch.Tensor:
    g = torch.cat([x, x_sum, *hs], dim=1)
    outs = []
    for j, a in enumerate(g.split(moe.groups, dim=1)):
        run = next(r for r, (start, count) in enumerate(moe.runs) if start <= j < start + count)
        a = _expert_layer(moe.first[run], j - moe.runs[run][0], a)
        for layer in moe.rest:
            a = _expert_layer(layer, j, a)
        outs.append(a)
    return moe.norm(x + moe.project @ torch.cat(outs, dim=1))


@pytest.mark.parametrize("groups, layers_, fmb, lcb", [
    ((5, 4, 4), 3, 3, 2),      # uneven groups: two runs in the first layer, a skip projection
    ((4, 4), 2, 2, 2),         # one run; out == n: the skip is the identity
    ((6,), 1, 2, 3),           # one expert, one layer
    ((3, 3, 2, 2, 2), 2, 1, 1),
])
def test_batched_experts_match_the_per_expert_math(layers, groups, layers_, fmb, lcb):
    torch.manual_seed(0)
    dim, rank, x_tokens, x_sum_tokens = 8, 3, sum(groups) - 3, 2
    moe = layers.MixtureOfWukongExperts(x_tokens, dim, groups, layers_, fmb, lcb, rank, (10, 6)).double()
    perturb(moe)
    x = torch.randn(5, x_tokens, dim, dtype=torch.float64, requires_grad=True)
    x_sum = torch.randn(5, x_sum_tokens, dim, dtype=torch.float64, requires_grad=True)
    hs = [torch.randn(5, 1, dim, dtype=torch.float64, requires_grad=True)]
    inputs = [x, x_sum, *hs, *moe.parameters()]
    out, ref = moe(x, x_sum, hs), _reference(moe, x, x_sum, hs)
    assert out.shape == ref.shape == (5, x_tokens, dim)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert_same_grads(out, ref, inputs, ["x", "x_sum", "h", *(n for n, _ in moe.named_parameters())])


def test_runs_of_equal_group_sizes(layers):
    assert layers.expert_runs((33, 32, 32)) == [(0, 1), (1, 2)]
    assert layers.expert_runs((4, 4, 4)) == [(0, 3)]
    assert layers.expert_runs((7,)) == [(0, 1)]


def test_one_expert_vectors_are_stored_flat(layers):
    """A run of one expert stores its biases and LayerNorm affines as [width], not [1, ..., width]:
    under torch.compile on CUDA, inductor's mix-order reduction returned a [1, 1, 1, width] affine's
    gradient as [width] and the backward failed (kunlun_6g's first Wukong layer, torch 2.11 on the
    H200; pytorch/pytorch#178080). Several experts keep [E, 1, ..., width]."""
    one = layers.WukongExperts(1, 6, 8, 2, 2, 3, (10,))
    many = layers.WukongExperts(3, 6, 8, 2, 2, 3, (10,))
    vectors = lambda layer: {n: tuple(p.shape) for n, p in layer.named_parameters() if n.endswith(("bias", "norm.weight"))}
    assert vectors(one) == {"fm_norm.weight": (18,), "fm_norm.bias": (18,), "fmb_mlp.0.bias": (10,),
                            "fmb_out.bias": (16,), "norm.weight": (8,), "norm.bias": (8,)}
    assert vectors(many) == {"fm_norm.weight": (3, 1, 18), "fm_norm.bias": (3, 1, 18), "fmb_mlp.0.bias": (3, 1, 10),
                             "fmb_out.bias": (3, 1, 16), "norm.weight": (3, 1, 1, 8), "norm.bias": (3, 1, 1, 8)}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("groups", [(5, 4), (4, 4)])
def test_compiled_experts_train_on_gpu(layers, groups):
    """Inductor on CUDA (mix-order reductions on, as by default) compiles a mixture with a run of
    one expert (5, 4) and one of two (4, 4): the backward runs and every gradient matches eager."""
    torch.manual_seed(0)
    dim, x_tokens = 16, sum(groups) - 3
    moe = layers.MixtureOfWukongExperts(x_tokens, dim, groups, 2, 3, 2, 4, (32,)).cuda()
    b = 2048                     # rows enough for inductor to pick a mix-order reduction
    x, x_sum = torch.randn(b, x_tokens, dim, device="cuda"), torch.randn(b, 2, dim, device="cuda")
    hs = [torch.randn(b, 1, dim, device="cuda")]
    eager = torch.autograd.grad(moe(x, x_sum, hs).square().sum(), list(moe.parameters()))
    compiled = torch.compile(moe, fullgraph=True)
    grads = torch.autograd.grad(compiled(x, x_sum, hs).square().sum(), list(moe.parameters()))
    for (name, p), g, e in zip(moe.named_parameters(), grads, eager):
        assert g.shape == p.shape, name
        torch.testing.assert_close(g, e, rtol=1e-3, atol=1e-3, msg=name)
