"""Cross-field rules of the spec format (spec-format.md, "Rules").

Field-level rules live on the pydantic fields; these relate several fields. `check` returns every
violation, each at the key whose value should change, so one run of the CLI lists them all.
"""
from __future__ import annotations

import keyword
import re
import sys

from .errors import Issue, Path, did_you_mean, format_path, show
from .spec import Feature, Spec, Tower

# The generated package is imported by its name, so it must not hide a module it or we import.
RESERVED_MODULES = frozenset(sys.stdlib_module_names) | {
    "torch", "triton", "numpy", "kunlun_compiler", "kunlunc", "generated", "pydantic", "yaml",
    "networkx", "jinja2",
}
# ASCII only: non-ASCII identifiers are NFKC-normalized by Python, so two distinct names in the
# spec could become one attribute in generated code.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check(spec: Spec) -> list[Issue]:
    issues: list[Issue] = []
    for rule in (_identifiers, _unique_names, _package_name, _tables, _towers, _lengths,
                 _layer_lists, _tokens, _size):
        issues += rule(spec)
    return issues


def _features(spec: Spec) -> list[tuple[Path, Feature]]:
    found = [(("features", "sparse", i), f) for i, f in enumerate(spec.features.sparse)]
    for event, ev in spec.features.events.items():
        found += [(("features", "events", event, "items", j), f) for j, f in enumerate(ev.items)]
    return found


def _towers_of(spec: Spec) -> list[tuple[Path, Tower]]:
    events = spec.features.events
    return [(("features", "events", e, "tower"), ev.tower) for e, ev in events.items()]


def _all_names(spec: Spec) -> list[tuple[Path, str, bool]]:
    """(path, name, is_a_mapping_key) of every name that reaches generated code."""
    names = [(("name",), spec.name, False)]
    names += [(p + ("name",), f.name, False) for p, f in _features(spec)]
    names += [(("features", "events", e), e, True) for e in spec.features.events]
    names += [(("model", "head", "tasks", i), t, False)
              for i, t in enumerate(spec.model.head.tasks)]
    return names


def _identifiers(spec: Spec) -> list[Issue]:
    issues = []
    for path, name, at_key in _all_names(spec):
        if not _IDENTIFIER.match(name):
            fixed = re.sub(r"[^A-Za-z0-9_]", "_", name)
            fixed = "_" + fixed if fixed[:1].isdigit() else fixed
            issue = Issue.mismatch(
                path,
                "a Python identifier (ASCII letters, digits and _, not starting with a digit)",
                show(name), hint=f"did you mean {fixed!r}?", at_key=at_key)
        elif keyword.iskeyword(name):
            issue = Issue.mismatch(path, "a name that is not a Python keyword", show(name),
                                   hint=f"did you mean {name + '_'!r}?", at_key=at_key)
        else:
            continue
        issues.append(issue)
    return issues


def _unique_names(spec: Spec) -> list[Issue]:
    groups = {
        "feature": [(p + ("name",), f.name) for p, f in _features(spec)],
        "task": [(("model", "head", "tasks", i), t) for i, t in enumerate(spec.model.head.tasks)],
    }
    issues = []
    for kind, named in groups.items():
        first: dict[str, Path] = {}
        for path, name in named:
            if name in first:
                issues.append(Issue.mismatch(
                    path, f"a unique {kind} name", f"{show(name)} again",
                    f"it is already used at {format_path(first[name])}; rename one of them"))
            first.setdefault(name, path)
    return issues


def _package_name(spec: Spec) -> list[Issue]:
    name = spec.name
    if name.startswith("_"):
        return [Issue.mismatch(("name",), "a package name that does not start with '_'",
                               show(name), hint=f"did you mean {name.lstrip('_') or 'model'!r}?")]
    if name in RESERVED_MODULES:
        return [Issue.mismatch(
            ("name",), "a package name that does not shadow an importable module", show(name),
            f"a generated package named {name} would hide the `{name}` module",
            hint=f"did you mean {name + '_model'!r}?")]
    return []


def _tables(spec: Spec) -> list[Issue]:
    features = _features(spec)
    owners = {f.name for _, f in features if f.share is None and f.vocab and f.dim}
    issues = []
    for path, f in features:
        if f.share is None:
            missing = [k for k in ("vocab", "dim") if getattr(f, k) is None]
            if missing:
                issues.append(Issue.mismatch(
                    path, "either `share: <feature>` or both `vocab` and `dim`",
                    "no " + " and no ".join(missing),
                    f"add {' and '.join(missing)}, or share another feature's table"))
            continue
        for key in ("vocab", "dim"):
            if getattr(f, key) is not None:
                issues.append(Issue.mismatch(
                    path + (key,), f"no `{key}` next to `share`", show(getattr(f, key)),
                    f"a shared feature uses the table of {f.share!r}; remove {key}"))
        if f.share not in owners:
            issues.append(_bad_share(path + ("share",), f.share, owners, features))
    return issues


def _bad_share(path: Path, share: str, owners: set[str], features) -> Issue:
    expected = "the name of a feature with its own table (vocab and dim)"
    sharer = next((f for _, f in features if f.name == share), None)
    if sharer is not None and sharer.share in owners:
        return Issue.mismatch(path, expected, f"{share!r}, which shares {sharer.share!r} itself",
                              hint=f"did you mean {sharer.share!r}?")
    what = f"{share!r}, which has no table" if sharer is not None else f"{share!r}, no such feature"
    return Issue.mismatch(path, expected, what, hint=did_you_mean(share, owners))


def _towers(spec: Spec) -> list[Issue]:
    issues = []
    layers, pma = spec.model.layers, spec.model.hsp.kron_rank == 0
    for tp, t in _towers_of(spec):
        if t.dim % t.heads:
            lo, hi = t.dim // t.heads * t.heads, (t.dim // t.heads + 1) * t.heads
            issues.append(Issue.mismatch(
                tp + ("dim",), f"a multiple of heads ({t.heads})", str(t.dim),
                f"tower.dim {t.dim} is not divisible by heads {t.heads}; use a dim that is a "
                f"multiple of {t.heads}, e.g. {hi if lo == 0 else f'{lo} or {hi}'}"))
        if t.seeds < t.summary_tokens:
            issues.append(Issue.mismatch(
                tp + ("seeds",), f"at least summary_tokens ({t.summary_tokens})", str(t.seeds),
                "the summary tokens are pooled from the seeds"))
        elif pma and t.seeds != t.summary_tokens:
            issues.append(Issue.mismatch(
                tp + ("seeds",), f"exactly summary_tokens ({t.summary_tokens})", str(t.seeds),
                "hsp.kron_rank 0 is PMA pooling, which keeps every seed as a summary token"))
        if t.layers > layers:
            issues.append(Issue.mismatch(tp + ("layers",), f"at most model.layers ({layers})",
                                         str(t.layers), "a tower cannot outlast the model"))
    return issues


def _lengths(spec: Spec) -> list[Issue]:
    return [Issue.mismatch(("features", "events", event, "avg_len"),
                           f"at most max_len ({ev.max_len})", _number(ev.avg_len),
                           "avg_len is the mean valid length of the sequence")
            for event, ev in spec.features.events.items()
            if ev.avg_len is not None and ev.avg_len > ev.max_len]


def _number(value: float) -> str:
    # pydantic turned the user's `300` into 300.0; print it as written
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else show(value)


def _layer_lists(spec: Spec) -> list[Issue]:
    model, issues = spec.model, []
    if isinstance(model.compskip, list) and len(model.compskip) != model.layers:
        issues.append(Issue.mismatch(
            ("model", "compskip"), f"{model.layers} entries (one per layer of model.layers)",
            f"{len(model.compskip)}", "or use `alternate` / `none`"))
    act = model.pffn.activation
    if isinstance(act, list):
        for tp, t in _towers_of(spec):
            if len(act) != t.heads:
                issues.append(Issue.mismatch(
                    ("model", "pffn", "activation"),
                    f"{t.heads} entries (one per head of {format_path(tp)})", f"{len(act)}",
                    "every tower needs as many heads as the list has entries"))
    return issues


def _tokens(spec: Spec) -> list[Issue]:
    f, model = spec.features, spec.model
    dense = f.dense_tokens if f.dense > 0 else 0
    if dense + len(f.sparse) == 0:
        return [Issue.mismatch(
            ("features",),
            "at least one non-sequence token (features.dense > 0 or a sparse feature)",
            "dense: 0 and no sparse features",
            "weight generation mixes the non-sequence tokens X into the summary tokens that drive "
            "the personalized FFN, so X needs at least one token")]
    towers = sum(ev.tower.summary_tokens for ev in f.events.values())
    n_g = dense + len(f.sparse) + model.weight_generation.summary_tokens + towers
    experts = model.interaction.experts
    if experts <= n_g:
        return []
    return [Issue.mismatch(
        ("model", "interaction", "experts"), f"at most the number of interaction tokens ({n_g})",
        str(experts),
        f"each expert needs a group of tokens; there are {dense} dense + {len(f.sparse)} sparse + "
        f"{model.weight_generation.summary_tokens} weight-generation + {towers} tower summary "
        "tokens")]


# The compiled graph grows with layers x (three blocks per tower + a Wukong stack per expert).
# 180 GFLOP/example needs 288 of these units; 768 keeps any build under about two seconds.
MAX_BLOCK_UNITS = 768


def _size(spec: Spec) -> list[Issue]:
    m = spec.model
    units = m.layers * (3 * len(spec.features.events) + m.interaction.experts * m.interaction.wukong.layers)
    if units <= MAX_BLOCK_UNITS:
        return []
    return [Issue.mismatch(
        ("model", "layers"), f"a model of at most {MAX_BLOCK_UNITS} layer blocks",
        f"{units} (model.layers {m.layers} x (3 x {len(spec.features.events)} towers + "
        f"{m.interaction.experts} experts x {m.interaction.wukong.layers} Wukong layers))",
        "use fewer layers, towers, experts or Wukong layers")]
