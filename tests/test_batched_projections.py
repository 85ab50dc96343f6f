"""The embedding blocks project with fewer, wider GEMMs: FeatureTokens one bmm per feature width,
EventEmbedding one Linear on the concatenated items (Σ_i e_i W_i = [e_1 ‖ e_2 ‖ ...] [W_1; W_2; ...]).
Each against the per-feature math written out plainly from the same weights, float64, outputs and
every gradient."""
from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from genutil import build_and_import, load_spec, SPECS
from modelutil import assert_same_grads, perturb


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    pkg, _ = build_and_import(load_spec(SPECS / "kunlun_tiny.yaml"), tmp_path_factory.mktemp("proj"))
    return importlib.import_module(f"{pkg.__name__}.layers")


@pytest.mark.parametrize("dense", [0, 3])
def test_feature_tokens_project_each_width_in_one_bmm(layers, dense):
    torch.manual_seed(0)
    dim = 8
    features = (("a", "ta", 4), ("b", "tb", 8), ("c", "tc", 4), ("d", "td", 6), ("e", "ta", 4))
    tables = layers.EmbeddingTables({"ta": (10, 4), "tb": (10, 8), "tc": (10, 4), "td": (10, 6)}).double()
    block = layers.FeatureTokens(dense, 2, dim, features).double()
    assert block.widths == {4: ["a", "c", "e"], 6: ["d"]}             # b is already d wide
    assert {k: tuple(v.shape) for k, v in block.proj.items()} == {"w4": (3, 4, 8), "w6": (1, 6, 8)}
    perturb(block)
    batch = {"sparse": {name: torch.randint(10, (5,)) for name, _, _ in features},
             "dense": torch.randn(5, dense, dtype=torch.float64)}
    out = block(tables, batch)

    def reference():
        tokens = []
        if dense:
            tokens.append(block.dense_proj(batch["dense"]).view(5, 2, dim))
        for name, table, width in features:
            e = tables(table, batch["sparse"][name])
            if width != dim:
                e = e @ block.proj[f"w{width}"][block.widths[width].index(name)]
            tokens.append(e.unsqueeze(1))
        return block.norm(torch.cat(tokens, dim=1))
    ref = reference()
    assert out.shape == ref.shape == (5, (2 if dense else 0) + len(features), dim)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    params = dict(block.named_parameters()) | {f"tables.{k}": v for k, v in tables.named_parameters()}
    assert_same_grads(out, ref, list(params.values()), list(params))


@pytest.mark.parametrize("packed", [False, True])
def test_event_items_are_projected_by_one_linear_on_their_concatenation(layers, packed):
    torch.manual_seed(0)
    dim, T = 8, 5
    items = (("x", "tx", 8), ("y", "ty", 4), ("z", "tz", 6))          # x needs no projection
    tables = layers.EmbeddingTables({"tx": (20, 8), "ty": (20, 4), "tz": (20, 6)}).double()
    block = layers.EventEmbedding("click", T, dim, False, items).double()
    assert tuple(block.proj.weight.shape) == (dim, 4 + 6)
    perturb(block)
    if packed:
        offsets = torch.tensor([0, 2, 2, 7])
        inputs = {"items": {n: torch.randint(20, (7,)) for n, _, _ in items}, "offsets": offsets}
        position = block.position[torch.tensor([0, 1, 0, 1, 2, 3, 4])]
    else:
        inputs = {"items": {n: torch.randint(20, (3, T)) for n, _, _ in items}, "lengths": torch.tensor([2, 0, 5])}
        position = block.position
    out, _ = block(tables, inputs)
    w_y, w_z = block.proj.weight.split([4, 6], dim=1)                 # each item's own Linear(width, d)
    look = {n: tables(t, inputs["items"][n]) for n, t, _ in items}
    ref = F.layer_norm(position + look["x"] + look["y"] @ w_y.t() + look["z"] @ w_z.t(), (dim,),
                       block.norm.weight, block.norm.bias)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    params = dict(block.named_parameters()) | {f"tables.{k}": v for k, v in tables.named_parameters()}
    assert_same_grads(out, ref, list(params.values()), list(params))


def test_item_projection_rows_start_as_their_own_linears(layers):
    """The stacked weight's columns for an item of width w start uniform in ±1/sqrt(w), as that
    item's own nn.Linear(w, d) would."""
    torch.manual_seed(0)
    block = layers.EventEmbedding("click", 4, 64, False, (("y", "ty", 4), ("z", "tz", 256)))
    w_y, w_z = block.proj.weight.split([4, 256], dim=1)
    assert w_y.abs().max() <= 0.5 and w_y.abs().max() > 0.4          # 1/sqrt(4)
    assert w_z.abs().max() <= 1 / 16                                  # 1/sqrt(256)
