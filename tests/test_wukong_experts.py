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


def _expert_layer(layer, j: int, a: torch.Tensor) -> torch.Tensor:
    """Expert j of a WukongExperts on its own tokens a [B, n, d]:
    A' = LN(concat(FMB(A), LCB(A)) + P·A), FMB = MLP(LN(flatten(A·(AᵀY))))."""
    b = a.shape[0]
    fm = a @ (a.transpose(1, 2) @ layer.fm_proj[j, 0])                    # [B, n, rank]
    h = F.layer_norm(fm.flatten(1), (fm[0].numel(),), layer.fm_norm.weight[j].flatten(),
                     layer.fm_norm.bias[j].flatten())
    for lin in layer.fmb_mlp:
        h = torch.relu(h @ lin.weight[j] + lin.bias[j, 0])
    fmb = (h @ layer.fmb_out.weight[j] + layer.fmb_out.bias[j, 0]).view(b, layer.fmb_tokens, layer.dim)
    skip = a if layer.skip is None else layer.skip[j, 0] @ a
    return F.layer_norm(torch.cat([fmb, layer.lcb[j, 0] @ a], dim=1) + skip, (layer.dim,),
                        layer.norm.weight[j].flatten(), layer.norm.bias[j].flatten())


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
