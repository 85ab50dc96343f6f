"""Random valid specs (seeded), small enough to run on a CPU: specs nobody wrote by hand."""
from __future__ import annotations

import random

import yaml

ACTS = ["gelu_tanh", "gelu", "silu", "relu", "relu2", "identity"]


def random_spec(seed: int) -> str:
    r = random.Random(seed)
    heads = r.choice([1, 2, 3])
    sparse = [{"name": f"f{i}", "vocab": r.randint(2, 60), "dim": r.choice([4, 8, 12])} for i in range(r.randint(0, 3))]
    dense = r.choice([0, 3]) if sparse else 3
    features = {"dense": dense, "sparse": sparse, "events": {}}
    if dense and r.random() < 0.3:
        features["dense_tokens"] = 2
    layers = r.randint(1, 3)
    for e in range(r.randint(0, 3)):
        features["events"][f"ev{e}"] = _event(r, e, heads, layers, sparse)
    towers = [ev["tower"] for ev in features["events"].values()]
    kron = r.choice([0, 2])
    if kron == 0:
        for t in towers:
            t["seeds"] = t["summary_tokens"]
    n_sum = r.randint(1, 4)
    tokens = (features.get("dense_tokens", 1) if dense else 0) + len(sparse) + n_sum + sum(t["summary_tokens"] for t in towers)
    model = {
        "dim": r.choice([8, 12]), "layers": layers,
        "compskip": r.choice(["alternate", "none", [r.choice(["global", "local"]) for _ in range(layers)]]),
        "weight_generation": {"summary_tokens": n_sum},
        "pffn": {"kv_tokens": r.randint(1, 6),
                 "activation": r.choice(ACTS) if r.random() < 0.5 else [r.choice(ACTS) for _ in range(heads)],
                 "temperature": r.choice(["max_len", "sqrt_d", 2.5]), "qk_norm": r.random() < 0.3},
        "attention": {"kind": r.choice(["softmax", "softmax", *ACTS]), "causal": r.random() < 0.3},
        "hsp": {"kron_rank": kron},
        "interaction": {"experts": r.randint(1, min(3, tokens)),
                        "wukong": {"layers": r.randint(1, 2), "fmb_tokens": r.randint(1, 3),
                                   "lcb_tokens": r.randint(1, 3), "rank": r.randint(1, 3),
                                   "mlp": r.choice([[], [16]])}},
        "head": {"tasks": [f"task{i}" for i in range(r.randint(1, 2))], "mlp": r.choice([[], [8]])},
    }
    fuse = r.choice([True, False, ["gdpa"], ["window_attention", "seed_pooling"]])
    spec = {"kunlun": 1, "name": f"random_{seed}", "dtype": "fp32", "batch_size": 4,
            "features": features, "model": model, "compile": {"fuse": fuse, "target": "cpu"}}
    return yaml.safe_dump(spec, sort_keys=False)


def _event(r: random.Random, e: int, heads: int, layers: int, sparse: list) -> dict:
    max_len = r.choice([1, 2, 5, 9])
    items = [{"name": f"ev{e}_own", "vocab": r.randint(2, 40), "dim": r.choice([4, 6])}]
    if sparse and r.random() < 0.6:
        items.append({"name": f"ev{e}_shared", "share": r.choice(sparse)["name"]})
    summary = r.randint(1, 3)
    event = {"max_len": max_len, "time_gaps": r.random() < 0.5, "items": items,
             "tower": {"dim": heads * r.choice([2, 4]), "heads": heads, "layers": r.randint(1, layers),
                       "window": r.randint(1, max_len + 2), "seeds": summary + r.randint(0, 3),
                       "summary_tokens": summary}}
    if r.random() < 0.5:
        event["avg_len"] = r.randint(1, max_len)
    return event
