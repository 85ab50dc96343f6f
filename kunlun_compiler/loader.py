"""Spec file → `Spec`, or a `SpecError` listing every located problem.

Three stages: safe YAML with positions (yamlload), the strict pydantic models (spec), the
cross-field rules (rules). Pydantic's errors are rephrased here as "expected X, found Y" at the
user's key path; the expected text comes from the model's JSON schema, so it never drifts from
the fields' real constraints.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re

from pydantic import ValidationError

from . import rules, yamlload
from .errors import Issue, Path, SpecError, clip, did_you_mean, show
from .spec import Spec


def load_spec(path: str | os.PathLike) -> Spec:
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else str(path)
    return _guarded(name, lambda: _validate(yamlload.load_file(path), name))


def load_spec_text(text: str | bytes, filename: str = "<spec>") -> Spec:
    return _guarded(filename, lambda: _validate(yamlload.load_text(text, filename), filename))


def _guarded(filename: str, load):
    try:
        return load()
    except SpecError:
        raise
    except Exception as exc:  # the contract: any input ends in a SpecError, never a traceback
        try:
            detail = clip(f"{type(exc).__name__}: {exc}", 120)
        except Exception:
            detail = type(exc).__name__
        raise SpecError(filename, [Issue((), f"cannot load the spec ({detail})")]) from None


def _validate(loaded: yamlload.Loaded, filename: str) -> Spec:
    try:
        spec = Spec.model_validate(loaded.data, strict=True)
    except ValidationError as exc:
        issues = pydantic_issues(exc.errors(include_url=False), loaded.data)
        raise SpecError(filename, locate(issues, loaded)) from None
    issues = rules.check(spec)
    if issues:
        raise SpecError(filename, locate(issues, loaded))
    return spec


def locate(issues: list[Issue], loaded: yamlload.Loaded) -> list[Issue]:
    """Attach line:col to each issue, drop repeats, and order them as they appear in the file."""
    placed, seen = [], set()
    for issue in issues:
        if (issue.path, issue.message) in seen:
            continue
        seen.add((issue.path, issue.message))
        pos = loaded.position(issue.path, key=issue.at_key)
        if pos is not None:
            issue = dataclasses.replace(issue, line=pos[0], col=pos[1])
        placed.append(issue)
    return sorted(placed, key=lambda i: (i.line is None, i.line or 0, i.col or 0))


# ---- pydantic errors → issues ----

def pydantic_issues(errors: list[dict], data: dict) -> list[Issue]:
    """One issue per error, except that a union's per-branch errors collapse into one.

    A union reports one error per branch. If some branch got past the type check (its errors lie
    deeper than the union, e.g. `compskip: [global, lcoal]`), the input had that branch's shape
    and only those deeper errors matter; otherwise one issue lists every alternative.
    """
    unions: dict[Path, list[tuple[dict, Path]]] = {}
    issues = []
    for error in errors:
        path, union, at_key = _data_path(error, data)
        if union is None:
            issues.append(_issue(error, path, at_key))
        else:
            unions.setdefault(union, []).append((error, path))
    for union, group in unions.items():
        deeper = [(e, p) for e, p in group if len(p) > len(union)]
        issues += [_issue(e, p, False) for e, p in deeper] or [_issue(group[0][0], union, False)]
    return issues


def _data_path(error: dict, data) -> tuple[Path, Path | None, bool]:
    """Split pydantic's loc into the user's key path, the union it passed (if any), and whether
    the error is about a mapping key. Loc elements that are not keys of the data are union tags."""
    loc, path, union, cur = error["loc"], [], None, data
    for i, elem in enumerate(loc):
        if elem == "[key]":
            return tuple(path), union, True
        if isinstance(cur, dict) and isinstance(elem, str) and elem in cur:
            cur = cur[elem]
        elif isinstance(cur, list) and isinstance(elem, int) and 0 <= elem < len(cur):
            cur = cur[elem]
        elif error["type"] == "missing" and i == len(loc) - 1:
            pass
        else:
            union = tuple(path) if union is None else union
            continue
        path.append(elem)
    return tuple(path), union, False


def _issue(error: dict, path: Path, at_key: bool) -> Issue:
    kind = error["type"]
    if kind == "missing":
        expected = describe(schema_at(path))
        return Issue(path, f"missing required key {path[-1]!r}: expected {expected}",
                     expected, "nothing")
    if kind == "extra_forbidden":
        known = list(schema_at(path[:-1]).get("properties", {}))
        hint = did_you_mean(path[-1], known) or f"known keys: {', '.join(known)}"
        return Issue.mismatch(path, "a known key", f"unknown key {clip(repr(path[-1]))}",
                              hint=hint, at_key=True)
    schema = schema_at(path)
    if at_key:
        schema = {"type": "string", **schema_at(path[:-1]).get("propertyNames", {})}
    value = error.get("input")
    return Issue.mismatch(path, describe(schema), show(value), hint=_hint(value, schema),
                          at_key=at_key)


def _hint(value, schema: dict) -> str | None:
    options = [p.strip("'") for p in _phrases(schema) if p.startswith("'")]
    if options:
        return did_you_mean(value, options) if isinstance(value, str) else None
    if _deref(schema).get("type") != "string":
        return None
    if isinstance(value, bool):
        return "YAML reads yes/no/on/off/true/false as booleans; quote it to make it a string"
    return "quote it to make it a string" if isinstance(value, (int, float)) else None


# ---- "expected ..." text from the JSON schema ----

@functools.cache
def _root() -> dict:
    return Spec.model_json_schema()


def _deref(schema: dict) -> dict:
    while "$ref" in schema:
        schema = _root()["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def schema_at(path: Path) -> dict:
    """The JSON schema of the value at `path` ({} when the path leaves the schema)."""
    schema = _root()
    for elem in path:
        schema = _step(schema, elem)
        if schema is None:
            return {}
    return _deref(schema)


def _step(schema: dict, elem) -> dict | None:
    schema = _deref(schema)
    if "anyOf" in schema:
        return next((s for b in schema["anyOf"] if (s := _step(b, elem)) is not None), None)
    if isinstance(elem, int):
        return schema.get("items")
    if "properties" in schema:
        return schema["properties"].get(elem)
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def describe(schema: dict) -> str:
    phrases = _phrases(schema) or ["a value"]
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " or " + phrases[-1]


def _phrases(schema: dict) -> list[str]:
    s = _deref(schema)
    if "anyOf" in s:
        return [p for branch in s["anyOf"] for p in _phrases(branch)]
    if "const" in s:
        return [_literal(s["const"])]
    if "enum" in s:
        return [_literal(v) for v in s["enum"]]
    kind = s.get("type")
    if kind == "array":
        size = "non-empty " if s.get("minItems") else ""
        return [f"a {size}list of {_plural(s.get('items', {}))}"]
    simple = {"null": [], "boolean": ["true", "false"], "object": ["a mapping"]}
    if kind in simple:
        return simple[kind]
    if kind in ("integer", "number"):
        return [_number(kind, s)]
    if kind == "string":
        lo, hi = s.get("minLength"), s.get("maxLength")
        return [f"a string of {lo or 0} to {hi} characters" if hi else "a string"]
    return []


def _number(kind: str, s: dict) -> str:
    noun = "integer" if kind == "integer" else "number"
    low = s.get("minimum")
    if s.get("exclusiveMinimum") == 0:
        text = f"a positive {noun}"
    elif low == 0:
        text = f"a non-negative {noun}"
    elif low is not None:
        return f"a {noun} from {_bound(low)} to {_bound(s.get('maximum'))}"
    else:
        text = f"an {noun}" if noun == "integer" else f"a {noun}"
    if "maximum" in s:
        text += f" at most {_bound(s['maximum'])}"
    return text


def _bound(top) -> str:
    if isinstance(top, int) and top >= 2**20 and top & (top - 1) == 0:
        return f"2^{top.bit_length() - 1}"
    return f"{top:g}" if isinstance(top, float) else str(top)


def _plural(items: dict) -> str:
    phrases = _phrases(items)
    if phrases and all(p.startswith("'") for p in phrases):
        return "/".join(phrases)  # a list of 'global'/'local'
    return " or ".join(re.sub(r"^an? (.*?)(integer|number|string|mapping)", r"\1\2s", p)
                       for p in phrases) or "values"


def _literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"'{value}'" if isinstance(value, str) else str(value)
