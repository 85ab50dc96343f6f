"""Generated packages: forward/backward, jagged semantics, FLOPs against FlopCounterMode, params,
torch.compile and torch.export."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from genutil import build_and_import, estimate, full_length, load_spec, spec_paths, SPECS

TINY = SPECS / "kunlun_tiny.yaml"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_and_import(load_spec(TINY), tmp_path_factory.mktemp("tiny"))


def _to(tree, device):
    if isinstance(tree, dict):
        return {k: _to(v, device) for k, v in tree.items()}
    return tree.to(device)


def test_forward_backward(tiny):
    pkg, _ = tiny
    torch.manual_seed(0)
    model = pkg.Model()
    batch = pkg.example_batch(16, seed=1)
    logits = model(batch)
    assert logits.shape == (16, 2) and torch.isfinite(logits).all()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["labels"])
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # every parameter is reached by the loss: no dead block in the compiled graph
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, dead


def test_example_batch_contract(tiny):
    pkg, _ = tiny
    b = pkg.example_batch(200, seed=3)
    lengths = b["events"]["click"]["lengths"]
    assert lengths.min() == 0 and lengths.max() == 24          # 0 … max_len
    full = pkg.example_batch(5, full=True)
    assert (full["events"]["impression"]["lengths"] == 32).all()
    assert b["labels"].shape == (200, 2) and set(b["labels"].unique().tolist()) <= {0.0, 1.0}
    again = pkg.example_batch(200, seed=3)
    assert torch.equal(again["events"]["click"]["items"]["click_item"], b["events"]["click"]["items"]["click_item"])


@pytest.mark.parametrize("backend", ["auto", "torch", "triton"])
def test_backends(tiny, backend):
    pkg, _ = tiny
    model = pkg.Model(backend=backend)
    assert model.backend == backend and model.l0_click_pffn.backend == backend
    with pytest.raises(ValueError):
        pkg.Model(backend="cuda")


def test_padding_changes_nothing(tiny):
    """Tokens at or beyond an example's length influence neither the logits nor any gradient."""
    pkg, _ = tiny
    torch.manual_seed(0)
    model = pkg.Model()
    batch = pkg.example_batch(12, seed=5)
    for ev in batch["events"].values():       # include empty and length-1 sequences
        ev["lengths"][:3] = torch.tensor([0, 1, 2])
    other = copy.deepcopy(batch)
    for name, ev in other["events"].items():
        t = ev["lengths"]
        for item, ids in ev["items"].items():
            pad = torch.arange(ids.shape[1])[None, :] >= t[:, None]
            ids[pad] = (ids[pad] + 7) % 50
        if "time_gaps" in ev:
            ev["time_gaps"][torch.arange(ev["time_gaps"].shape[1])[None, :] >= t[:, None]] += 12345
    out_a, out_b = model(batch), model(other)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=1e-6)
    grads = []
    for b in (batch, other):
        model.zero_grad()
        model(b).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if "tables" not in n})
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-5, atol=1e-6, msg=n)


def test_length_zero_and_one(tiny):
    pkg, _ = tiny
    model = pkg.Model()
    batch = pkg.example_batch(4, seed=2)
    for ev in batch["events"].values():
        ev["lengths"][:] = torch.tensor([0, 1, 0, 1])
    out = model(batch)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_params_match_estimate(tiny):
    pkg, c = tiny
    model = pkg.Model()
    assert sum(p.numel() for p in model.parameters()) == estimate(c.graph).params


def _flops_of(pkg, batch_size: int, device: str) -> int:
    with torch.device(device):
        model = pkg.Model()
    batch = _to(pkg.example_batch(batch_size, full=True), device)
    with FlopCounterMode(display=False) as counter:
        model(batch)
    return counter.get_total_flops()


@pytest.mark.parametrize("path", spec_paths(), ids=lambda p: p.stem)
def test_flop_counter_matches_cost_model(path, tmp_path):
    """FlopCounterMode over one full-length forward == the cost model's forward FLOPs per step."""
    spec = full_length(load_spec(path))
    pkg, c = build_and_import(spec, tmp_path)
    batch_size = 3
    est = estimate(c.graph, batch_size=batch_size)
    device = "cpu" if path.stem == "kunlun_tiny" else "meta"   # big presets: shapes only
    counted = _flops_of(pkg, batch_size, device)
    assert counted == est.flops_fwd_exec_per_step
    banded_unfused = any(o.kind == "attn_scores" and o.attr("tq") == o.attr("tk") is not None
                         and o.attr("window", 0) < c.graph.seq_lens[o.attr("tq")][0] - 1
                         for o in c.graph.ops())
    if not banded_unfused:      # useful == executed: the MFU numerator is what torch counts
        assert abs(counted - est.flops_fwd_per_step) <= 0.01 * est.flops_fwd_per_step


def test_torch_compile(tiny):
    pkg, _ = tiny
    torch.manual_seed(0)
    model = pkg.Model()
    batch = pkg.example_batch(6, seed=4)
    eager = model(batch)
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(compiled(batch), eager, rtol=1e-4, atol=1e-5)


def test_compile_blocks_shares_graphs_between_like_blocks(tiny):
    """Model.compile_blocks compiles each block in place: outputs and gradients match eager, and
    blocks built with the same arguments share one dynamo graph (compile time grows with the
    distinct blocks, not the layers), with no block left eager by the recompile limit."""
    import re

    from torch._dynamo.utils import counters
    pkg, _ = tiny
    torch.manual_seed(0)
    eager, regional = pkg.Model(), pkg.Model()
    regional.load_state_dict(eager.state_dict())
    batch = pkg.example_batch(6, seed=4)
    torch._dynamo.reset()
    counters.clear()
    assert regional.compile_blocks(backend="aot_eager_decomp_partition") is regional
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):   # no block left eager
        out_e, out_r = eager(batch), regional(batch)
    torch.testing.assert_close(out_r, out_e, rtol=1e-5, atol=1e-6)
    out_e.square().sum().backward()
    out_r.square().sum().backward()
    grads = dict(regional.named_parameters())
    for name, p in eager.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(grads[name].grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)
    source = (Path(pkg.__file__).parent / "model.py").read_text()
    blocks = pkg.model.BLOCK_GROUPS
    built = [call for attr, call in re.findall(r"^        self\.(\w+) = (\w+\(.*\))$", source, re.M)
             if attr in blocks]
    assert len(built) == len(blocks) and all(getattr(regional, b)._compiled_call_impl for b in blocks)
    graphs = counters["stats"]["unique_graphs"]
    assert 0 < graphs <= len(set(built)) < len(blocks)
    assert not counters["graph_break"]
    torch._dynamo.reset()


def test_torch_export(tiny):
    pkg, _ = tiny
    model = pkg.Model().eval()
    batch = pkg.example_batch(6, seed=4)
    program = torch.export.export(model, (batch,))
    torch.testing.assert_close(program.module()(batch), model(batch), rtol=1e-5, atol=1e-6)


def _counted(spec_text_, tmp_path, batch_size=2):
    from genutil import spec_text
    pkg, c = build_and_import(spec_text(spec_text_), tmp_path)
    return _flops_of(pkg, batch_size, "cpu")


@pytest.mark.parametrize("change, delta", [
    # the click tower's one local layer: 4·H·D·Δpairs at T = 24, batch 2
    (("window: 4,", "window: 9,"), 2 * 4 * 16 * ((24 * 19 - 90) - (24 * 9 - 20))),
    (("causal: false", "causal: true"), 2 * 4 * 16 * ((24 * 5 - 10) - (24 * 9 - 20))),
])
def test_measured_flops_change_as_the_cost_model_says(tmp_path, change, delta):
    text = TINY.read_text()
    base = _counted(text, tmp_path / "a")
    changed = _counted(text.replace(*change), tmp_path / "b")
    assert changed - base == delta


def test_measured_compskip_saving(tmp_path):
    from genutil import compiled as compile_path, spec_text
    text = TINY.read_text().replace("avg_len: 12", "avg_len: 24")
    none_text = text.replace("compskip: alternate", "compskip: none")
    saving = _counted(none_text, tmp_path / "n") - _counted(text, tmp_path / "a")
    est = [estimate(compile_path(spec_text(t)).graph, batch_size=2).flops_fwd_per_step for t in (none_text, text)]
    assert saving == est[0] - est[1] > 0


def test_compile_blocks_covers_more_block_configs_than_dynamo_allows(tmp_path):
    """Nine towers of different lengths give one block class nine graphs (static shapes), one
    past dynamo's default recompile limit of 8: compile_blocks raises the limit so none is left
    eager. With the default limit the same model hits it."""
    import yaml

    from genutil import spec_text
    spec = yaml.safe_load(TINY.read_text())
    click = spec["features"]["events"]["click"]
    spec["features"]["events"] = {}
    for e in range(9):
        ev = copy.deepcopy(click)
        ev["max_len"], ev["avg_len"] = 16 + 2 * e, 8 + e
        ev["items"] = [{"name": f"item{e}", "share": "ad_id"}]
        spec["features"]["events"][f"ev{e}"] = ev
    pkg, _ = build_and_import(spec_text(yaml.safe_dump(spec)), tmp_path)
    batch = pkg.example_batch(2, seed=0)
    saved = torch._dynamo.config.recompile_limit
    try:
        for limit, fails in ((None, False), (8, True)):
            torch._dynamo.reset()
            model = pkg.Model().compile_blocks(backend="eager")
            if limit is not None:
                torch._dynamo.config.recompile_limit = limit
            with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True), torch.no_grad():
                if fails:
                    with pytest.raises(Exception, match="recompile_limit"):
                        model(batch)
                else:
                    model(batch)
            torch._dynamo.config.recompile_limit = saved
    finally:
        torch._dynamo.config.recompile_limit = saved
        torch._dynamo.reset()
