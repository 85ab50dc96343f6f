"""Hypothesis strategies for VALID kunlunc specs (spec-format.md, version 1), as plain dicts.

`valid_specs()` draws a spec dict that follows every rule of the format, across the whole key
space: dense 0 or positive (with or without `dense_tokens`); sparse features with their own table
or a `share` of any table owner (a sparse feature or an event item, declared before or after);
0-3 event types with own/shared item tables, `avg_len` absent, an int or a float <= max_len,
`time_gaps`; towers with dim divisible by heads, windows below, at and above max_len, seeds >=
summary_tokens (== when kron_rank is 0), layers <= model.layers; compskip alternate, none or an
explicit list; one activation or one per head (then every tower has that head count);
temperature max_len, sqrt_d or a number; qk_norm; attention softmax or an activation, causal;
experts up to the number of interaction tokens; wukong and head options; fuse true, false or a
list (possibly empty, possibly with repeats); dtype; target. Optional keys are sometimes left
out, so defaults are exercised too.

Everything is small enough to build and run forward and backward on a CPU well under a second:
max_len <= 12, dims <= 16, vocabs <= 64, at most 3 layers.

Names are drawn from plain identifiers and from valid-but-awkward ones (`self`, `torch`,
`__init__`, `Model`, names of the batch's keys, a 64-character name, ...), and may coincide
across kinds (an event named like a feature or a task), which the format allows.
"""
from __future__ import annotations

import keyword

from hypothesis import strategies as st

from kunlun_compiler.rules import RESERVED_MODULES
from kunlun_compiler.spec import ACTIVATIONS, FUSIBLE, TARGETS

MAX_LEN = 12
MAX_DIM = 16
MAX_VOCAB = 64
MAX_LAYERS = 3

# Valid identifiers that a code generator could trip on: Python builtins and dunders, names the
# generated modules use themselves, the batch layout's keys, one letter, the 64-character limit.
AWKWARD_NAMES = (
    "self", "cls", "x", "h", "s", "i", "T", "B", "F", "nn", "torch", "math", "super", "print",
    "len", "range", "list", "dict", "tuple", "type", "id", "object", "__init__", "__class__",
    "__dict__", "__name__", "_", "_x", "Model", "Config", "EventConfig", "config", "model", "forward",
    "training", "backend", "ops", "layers", "data", "kernels", "batch", "dense", "sparse", "events",
    "lengths", "items", "time_gaps", "labels", "tables", "tasks", "logits", "x_sum", "weight",
    "bias", "ESTIMATE", "example_batch", "l0_weight_gen", "embed_click", "click", "A1_b2",
    "n" * 64,
)
# Package names: the same idea, minus what the rules forbid (a leading `_`, a shadowed module).
AWKWARD_PACKAGES = tuple(n for n in AWKWARD_NAMES + ("kunlun_tiny", "ops", "triton_ops", "model")
                         if not n.startswith("_") and n not in RESERVED_MODULES)


def _ok_name(name: str) -> bool:
    return not keyword.iskeyword(name)


def names() -> st.SearchStrategy[str]:
    plain = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(_ok_name)
    return st.one_of(plain, st.sampled_from(AWKWARD_NAMES))


def package_names() -> st.SearchStrategy[str]:
    plain = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
        lambda n: _ok_name(n) and n not in RESERVED_MODULES)
    return st.one_of(plain, st.sampled_from(AWKWARD_PACKAGES))


def _maybe(draw, out: dict, key: str, strategy) -> None:
    """Set an optional key, or leave it out (then the default applies)."""
    if draw(st.booleans()):
        out[key] = draw(strategy)


def _table(draw) -> dict:
    return {"vocab": draw(st.integers(1, MAX_VOCAB)), "dim": draw(st.integers(1, MAX_DIM))}


@st.composite
def valid_specs(draw, max_events: int = 3, max_layers: int = MAX_LAYERS) -> dict:
    layers = draw(st.integers(1, max_layers))
    n_sparse = draw(st.integers(0, 3))
    dense = draw(st.integers(0 if n_sparse else 1, 6))   # X needs at least one token
    n_events = draw(st.integers(0, max_events))
    n_items = [draw(st.integers(1, 3)) for _ in range(n_events)]

    # Feature names are unique over sparse features and event items; tasks among themselves.
    feature_names = draw(st.lists(names(), min_size=n_sparse + sum(n_items),
                                  max_size=n_sparse + sum(n_items), unique=True))
    event_names = draw(st.lists(names(), min_size=n_events, max_size=n_events, unique=True))
    tasks = draw(st.lists(names(), min_size=1, max_size=3, unique=True))

    # Which features own a table: at least the first one; sharers pick any owner, wherever it is.
    owns = [True] + [draw(st.booleans()) for _ in feature_names[1:]]
    owners = [n for n, o in zip(feature_names, owns) if o]
    order = draw(st.permutations(range(len(feature_names)))) if feature_names else []
    owns = [owns[i] for i in order]
    feature_names = [feature_names[i] for i in order]

    def feature(name: str, own: bool) -> dict:
        if own:
            return {"name": name, **_table(draw)}
        return {"name": name, "share": draw(st.sampled_from(owners))}

    feats = [feature(n, o) for n, o in zip(feature_names, owns)]
    sparse, rest = feats[:n_sparse], feats[n_sparse:]

    kron = draw(st.sampled_from([0, 1, 2, 4, None]))            # None: default 4
    act_list = draw(st.booleans())
    shared_heads = draw(st.integers(1, 4))
    events = {}
    for e, name in enumerate(event_names):
        items, rest = rest[:n_items[e]], rest[n_items[e]:]
        heads = shared_heads if act_list else draw(st.integers(1, 4))
        max_len = draw(st.integers(1, MAX_LEN))
        summary = draw(st.integers(1, 4))
        seeds = summary if kron == 0 else summary + draw(st.integers(0, 3))
        window = draw(st.one_of(st.just(max_len), st.integers(1, max_len + 4)))
        tower = {"dim": heads * draw(st.integers(1, MAX_DIM // heads)), "heads": heads,
                 "layers": draw(st.integers(1, layers)), "window": window, "seeds": seeds,
                 "summary_tokens": summary}
        event = {"max_len": max_len}
        _maybe(draw, event, "avg_len", st.one_of(
            st.integers(1, max_len),
            st.floats(0.01, float(max_len), allow_nan=False, allow_infinity=False),
            st.just(float(max_len))))
        _maybe(draw, event, "time_gaps", st.booleans())
        event["items"] = items
        event["tower"] = tower
        events[name] = event

    features: dict = {}
    if dense or draw(st.booleans()):
        features["dense"] = dense
    if dense_tokens := draw(st.one_of(st.none(), st.integers(1, 3))):
        features["dense_tokens"] = dense_tokens
    if sparse or draw(st.booleans()):
        features["sparse"] = sparse
    if events or draw(st.booleans()):
        features["events"] = events

    heads_of = sorted({ev["tower"]["heads"] for ev in events.values()})
    if act_list:
        n_acts = heads_of[0] if heads_of else draw(st.integers(1, 4))
        activation = st.lists(st.sampled_from(ACTIVATIONS), min_size=n_acts, max_size=n_acts)
    else:
        activation = st.sampled_from(ACTIVATIONS)
    pffn = {"kv_tokens": draw(st.integers(1, 8))}
    _maybe(draw, pffn, "activation", activation)
    _maybe(draw, pffn, "temperature", st.one_of(
        st.sampled_from(["max_len", "sqrt_d"]), st.integers(1, 64),
        st.floats(0.1, 1e6, allow_nan=False, allow_infinity=False)))
    _maybe(draw, pffn, "qk_norm", st.booleans())

    n_sum = draw(st.integers(1, 4))
    x_tokens = ((dense_tokens or 1) if dense else 0) + n_sparse
    interaction_tokens = x_tokens + n_sum + sum(ev["tower"]["summary_tokens"] for ev in events.values())
    wukong = {"fmb_tokens": draw(st.integers(1, 4)), "lcb_tokens": draw(st.integers(1, 4)),
              "rank": draw(st.integers(1, 4))}
    _maybe(draw, wukong, "layers", st.integers(1, 2))
    _maybe(draw, wukong, "mlp", st.lists(st.integers(1, MAX_DIM), max_size=2))
    interaction = {"wukong": wukong}
    _maybe(draw, interaction, "experts", st.integers(1, min(4, interaction_tokens)))

    model: dict = {"dim": draw(st.integers(1, MAX_DIM)), "layers": layers}
    _maybe(draw, model, "compskip", st.one_of(
        st.sampled_from(["alternate", "none"]),
        st.lists(st.sampled_from(["global", "local"]), min_size=layers, max_size=layers)))
    model["weight_generation"] = {"summary_tokens": n_sum}
    model["pffn"] = pffn
    attention: dict = {}
    _maybe(draw, attention, "kind", st.sampled_from(("softmax",) + ACTIVATIONS))
    _maybe(draw, attention, "causal", st.booleans())
    _maybe(draw, model, "attention", st.just(attention))
    if kron is not None:
        model["hsp"] = {"kron_rank": kron}
    elif draw(st.booleans()):
        model["hsp"] = {}
    model["interaction"] = interaction
    head = {"tasks": tasks}
    _maybe(draw, head, "mlp", st.lists(st.integers(1, MAX_DIM), max_size=2))
    model["head"] = head

    spec: dict = {"kunlun": 1, "name": draw(package_names())}
    _maybe(draw, spec, "dtype", st.sampled_from(["bf16", "fp16", "fp32"]))
    _maybe(draw, spec, "batch_size", st.integers(1, 4096))
    spec["features"] = features
    spec["model"] = model
    compile_: dict = {}
    _maybe(draw, compile_, "fuse", st.one_of(
        st.booleans(), st.lists(st.sampled_from(FUSIBLE), max_size=4)))
    _maybe(draw, compile_, "target", st.sampled_from(TARGETS))
    _maybe(draw, spec, "compile", st.just(compile_))
    return spec


def spec_facets(spec: dict) -> set[str]:
    """Which corners of the spec space a drawn spec touches (to check the strategy's coverage)."""
    f, m = spec["features"], spec["model"]
    events = f.get("events", {})
    items = [i for ev in events.values() for i in ev["items"]]
    facets = {f"events={len(events)}", f"dense={'0' if not f.get('dense') else '+'}"}
    facets |= {"dense_tokens"} if "dense_tokens" in f else set()
    facets |= {"sparse_share"} if any("share" in s for s in f.get("sparse", [])) else set()
    facets |= {"item_share"} if any("share" in i for i in items) else set()
    facets |= {"item_own"} if any("vocab" in i for i in items) else set()
    for ev in events.values():
        t = ev["tower"]
        window = ev["max_len"] - t["window"]
        facets.add("window" + ("<" if window > 0 else "=" if window == 0 else ">") + "max_len")
        if "avg_len" in ev:
            facets.add(f"avg_len:{type(ev['avg_len']).__name__}")
        if ev.get("time_gaps"):
            facets.add("time_gaps")
        if t["layers"] < m["layers"]:
            facets.add("tower_shallower")
        if t["seeds"] > t["summary_tokens"]:
            facets.add("seeds>summary")
    cs = m.get("compskip", "alternate")
    facets.add(f"compskip={'list' if isinstance(cs, list) else cs}")
    act = m["pffn"].get("activation", "gelu_tanh")
    facets.add("activation_list" if isinstance(act, list) else "activation_one")
    temp = m["pffn"].get("temperature", "max_len")
    facets.add(f"temperature={temp if isinstance(temp, str) else 'number'}")
    if m["pffn"].get("qk_norm"):
        facets.add("qk_norm")
    att = m.get("attention", {})
    facets.add(f"attention={'softmax' if att.get('kind', 'softmax') == 'softmax' else 'activation'}")
    if att.get("causal"):
        facets.add("causal")
    facets.add(f"kron={'0' if m.get('hsp', {}).get('kron_rank', 4) == 0 else '+'}")
    if m["interaction"].get("experts", 1) > 1:
        facets.add("experts>1")
    fuse = spec.get("compile", {}).get("fuse", True)
    facets.add(f"fuse={'list' if isinstance(fuse, list) else fuse}")
    facets.add(f"dtype={spec.get('dtype', 'bf16')}")
    facets.add(f"target={spec.get('compile', {}).get('target', 'h200')}")
    return facets


ALL_FACETS = frozenset(
    {f"events={n}" for n in range(4)} | {"dense=0", "dense=+", "dense_tokens", "sparse_share",
     "item_share", "item_own", "window<max_len", "window=max_len", "window>max_len",
     "avg_len:int", "avg_len:float", "time_gaps", "tower_shallower", "seeds>summary",
     "compskip=alternate", "compskip=none", "compskip=list", "activation_list", "activation_one",
     "temperature=max_len", "temperature=sqrt_d", "temperature=number", "qk_norm",
     "attention=softmax", "attention=activation", "causal", "kron=0", "kron=+", "experts>1",
     "fuse=True", "fuse=False", "fuse=list"}
    | {f"dtype={d}" for d in ("bf16", "fp16", "fp32")} | {f"target={t}" for t in TARGETS})
