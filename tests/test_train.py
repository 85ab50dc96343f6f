"""A short training run on a planted-teacher dataset: the model must really learn.

The teacher draws labels from fixed random functions of a categorical feature, a dense
feature and the *valid* part of the click sequence (mean over its length), so a model that
ignores the sequence or its lengths cannot reach the teacher's NE.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from genutil import SPECS, build_and_import, load_spec


def _teacher(batch, gen):
    cat_w = torch.randn(50, generator=gen) * 2.0
    seq_w = torch.randn(50, generator=gen) * 3.0
    ev = batch["events"]["click"]
    t = ev["items"]["click_category"].shape[1]
    valid = (torch.arange(t)[None, :] < ev["lengths"][:, None]).float()
    seq_mean = (seq_w[ev["items"]["click_category"]] * valid).sum(1) / valid.sum(1).clamp(min=1)
    click = cat_w[batch["sparse"]["ad_category"]] + seq_mean
    conversion = 1.5 * batch["dense"][:, 0] - seq_mean
    return torch.stack([click, conversion], 1)


def _dataset(pkg, n_batches, batch_size, seed):
    out = []
    for i in range(n_batches):
        batch = pkg.example_batch(batch_size, seed=seed + i)
        logits = _teacher(batch, torch.Generator().manual_seed(1234))
        batch["labels"] = torch.bernoulli(torch.sigmoid(logits), generator=torch.Generator().manual_seed(seed + i))
        out.append((batch, logits))
    return out


def normalized_entropy(logits, labels):
    p = labels.mean(0).clamp(1e-6, 1 - 1e-6)
    base = -(p * p.log() + (1 - p) * (1 - p).log())
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(0)
    return (bce / base).mean().item()


def test_planted_teacher_is_learned(tmp_path):
    torch.manual_seed(0)
    pkg, _ = build_and_import(load_spec(SPECS / "kunlun_tiny.yaml"), tmp_path)
    model = pkg.Model()
    test = _dataset(pkg, 4, 256, seed=10_000)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    for step in range(250):          # a fresh batch every step: no example is seen twice
        ((batch, _),) = _dataset(pkg, 1, 128, seed=100 + step)
        loss = F.binary_cross_entropy_with_logits(model(batch), batch["labels"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(b) for b, _ in test])
    labels = torch.cat([b["labels"] for b, _ in test])
    teacher = torch.cat([t for _, t in test])
    ne_model, ne_teacher = normalized_entropy(pred, labels), normalized_entropy(teacher, labels)
    print(f"NE model {ne_model:.3f}, teacher (Bayes) {ne_teacher:.3f}")
    assert math.isfinite(ne_model)
    assert ne_model < 0.85, (ne_model, ne_teacher)      # an untrained model sits at 1.0
    assert ne_model < ne_teacher + 0.15, (ne_model, ne_teacher)
