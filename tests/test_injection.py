"""Hostile strings in a spec never become code (spec-format.md, Rules: "Names from the spec reach
generated code only as validated identifiers; no other spec string is ever pasted into code
unquoted").

1. Every string-valued place of a spec, times a battery of hostile values: each is rejected by
   the loader with a clean, located SpecError, or the package built from it carries the value
   only inside string literals or inside validated identifiers, exactly where a harmless
   placeholder would be. A couple of accepted specs are built, imported and run in a subprocess
   that watches for anything it should not do.
2. Every spec in specs/: the strings it carries that are not validated names appear in its
   generated code only inside string literals (or inside identifiers and comments the templates
   wrote themselves); hostile spec *file* names cannot break the header comment.
3. Jinja: values are substituted once; `{{`/`{%` in a value is never rendered as a template.
"""
from __future__ import annotations

import ast
import bisect
import copy
import io
import json
import keyword
import os
import re
import subprocess
import sys
import textwrap
import tokenize
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

import pytest
import yaml

from genutil import ROOT, SPECS, spec_paths
from kunlun_compiler import cli
from kunlun_compiler.codegen import render
from kunlun_compiler.compiler import compile_spec
from kunlun_compiler.errors import SpecError
from kunlun_compiler.loader import load_spec, load_spec_text
from kunlun_compiler.rules import RESERVED_MODULES
from kunlun_compiler.spec import Spec
from kunlun_compiler.writer import write_package

TEMPLATES = ROOT / "templates"
SPEC_FILE = "hostile.yaml"

# ---------------------------------------------------------------------------- the base spec

# Small, valid, and with every string-valued place present: a table owner that others share,
# a sharing sparse feature, a sharing and an owning item, lists for compskip, activation, fuse.
BASE: dict = {
    "kunlun": 1,
    "name": "inj_model",
    "dtype": "bf16",
    "batch_size": 8,
    "features": {
        "dense": 2,
        "sparse": [
            {"name": "user_id", "vocab": 50, "dim": 8},
            {"name": "ad_id", "vocab": 40, "dim": 8},
            {"name": "ad_alias", "share": "ad_id"},
        ],
        "events": {
            "click": {
                "max_len": 6,
                "avg_len": 3,
                "time_gaps": True,
                "items": [
                    {"name": "click_item", "share": "ad_id"},
                    {"name": "click_cat", "vocab": 20, "dim": 4},
                ],
                "tower": {"dim": 8, "heads": 2, "layers": 2, "window": 2, "seeds": 4,
                          "summary_tokens": 2},
            },
        },
    },
    "model": {
        "dim": 8,
        "layers": 2,
        "compskip": ["global", "local"],
        "weight_generation": {"summary_tokens": 2},
        "pffn": {"kv_tokens": 4, "activation": ["gelu_tanh", "silu"], "temperature": "max_len",
                 "qk_norm": False},
        "attention": {"kind": "softmax", "causal": False},
        "hsp": {"kron_rank": 2},
        "interaction": {"experts": 2, "wukong": {"layers": 1, "fmb_tokens": 2, "lcb_tokens": 2,
                                                 "rank": 2, "mlp": [8]}},
        "head": {"tasks": ["click", "conversion"], "mlp": [8]},
    },
    "compile": {"fuse": ["gdpa", "window_attention"], "target": "cpu"},
}


def dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=10**6)


def yaml_scalar(value: str) -> str:
    """`value` as a YAML double-quoted scalar: printable characters raw (look-alikes, bidi
    overrides and zero-width characters reach the loader as written), line breaks, controls,
    BOM and surrogates escaped (YAML folds a raw line break inside quotes into a space)."""
    out = []
    for c in value:
        o = ord(c)
        raw = (0x20 <= o <= 0x7E and c not in '"\\') or (0xA0 <= o <= 0xD7FF and c not in "\u2028\u2029") \
            or (0xE000 <= o <= 0xFFFD and c != "\ufeff") or o > 0xFFFF
        out.append(c if raw else f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")
    return '"' + "".join(out) + '"'


def _get(data, path):
    for elem in path:
        data = data[elem]
    return data


def _put(path):
    def put(data, value):
        _get(data, path[:-1])[path[-1]] = value
    return put


def _rename_event(data, value):
    events = data["features"]["events"]
    data["features"]["events"] = {value: events["click"]}


def _rename_table_owner(data, value):
    """Rename the shared table owner `ad_id` and every `share` that names it."""
    for f in data["features"]["sparse"] + data["features"]["events"]["click"]["items"]:
        if f["name"] == "ad_id":
            f["name"] = value
        if f.get("share") == "ad_id":
            f["share"] = value


def _unknown_key(*path):
    def put(data, value):
        _get(data, path)[value] = 1
    return put


@dataclass(frozen=True)
class Slot:
    id: str
    set: Callable[[dict, str], None]
    where: Callable[[str], tuple]    # the key path an error about the value must point at
    name: bool = False               # a name position: an accepted value must be an identifier


def _at(*path):
    return lambda value: path


EV = ("features", "events", "click")
SLOTS = [
    # names: validated identifiers
    Slot("name", _put(("name",)), _at("name"), name=True),
    Slot("sparse.name", _put(("features", "sparse", 0, "name")), _at("features", "sparse", 0, "name"),
         name=True),
    Slot("table_owner", _rename_table_owner, _at("features", "sparse", 1, "name"), name=True),
    Slot("item.name", _put(EV + ("items", 1, "name")), _at(*EV, "items", 1, "name"), name=True),
    Slot("event", _rename_event, lambda v: ("features", "events", v), name=True),
    Slot("task", _put(("model", "head", "tasks", 0)), _at("model", "head", "tasks", 0), name=True),
    # a dangling share: never accepted, whatever it holds
    Slot("sparse.share", _put(("features", "sparse", 2, "share")), _at("features", "sparse", 2, "share"),
         name=True),
    Slot("item.share", _put(EV + ("items", 0, "share")), _at(*EV, "items", 0, "share"), name=True),
    # closed choices
    Slot("dtype", _put(("dtype",)), _at("dtype")),
    Slot("compskip", _put(("model", "compskip")), _at("model", "compskip")),
    Slot("compskip[0]", _put(("model", "compskip", 0)), _at("model", "compskip", 0)),
    Slot("activation", _put(("model", "pffn", "activation")), _at("model", "pffn", "activation")),
    Slot("activation[0]", _put(("model", "pffn", "activation", 0)), _at("model", "pffn", "activation", 0)),
    Slot("temperature", _put(("model", "pffn", "temperature")), _at("model", "pffn", "temperature")),
    Slot("attention.kind", _put(("model", "attention", "kind")), _at("model", "attention", "kind")),
    Slot("compile.target", _put(("compile", "target")), _at("compile", "target")),
    Slot("compile.fuse", _put(("compile", "fuse")), _at("compile", "fuse")),
    Slot("compile.fuse[0]", _put(("compile", "fuse", 0)), _at("compile", "fuse", 0)),
    # strings where numbers or booleans go
    Slot("kunlun", _put(("kunlun",)), _at("kunlun")),
    Slot("batch_size", _put(("batch_size",)), _at("batch_size")),
    Slot("sparse.vocab", _put(("features", "sparse", 0, "vocab")), _at("features", "sparse", 0, "vocab")),
    Slot("tower.heads", _put(EV + ("tower", "heads")), _at(*EV, "tower", "heads")),
    Slot("time_gaps", _put(EV + ("time_gaps",)), _at(*EV, "time_gaps")),
    Slot("attention.causal", _put(("model", "attention", "causal")), _at("model", "attention", "causal")),
    Slot("head.mlp[0]", _put(("model", "head", "mlp", 0)), _at("model", "head", "mlp", 0)),
    # keys: an unknown key is the string
    Slot("key@top", _unknown_key(), lambda v: (v,)),
    Slot("key@tower", _unknown_key(*EV, "tower"), lambda v: EV + ("tower", v)),
    Slot("key@pffn", _unknown_key("model", "pffn"), lambda v: ("model", "pffn", v)),
]

HOSTILE = [
    # quotes, line breaks, escapes
    'a"b', "a'b", "a\nb", "a\\b", "x\n", "\nx", "x\r", "a\tb", "a b", " x", "x ", '"""', "'''",
    "\\", "\\n", "x\x0c", "a.b", "a-b", "../x",
    # code
    "__import__('os').system('touch MARKER')", "x; import os", "x)\nimport os\n#", "exec('1')",
    "${x}", "#", "# x", "x  # y",
    # Jinja
    "{{ 7*7 }}", "{% raw %}", "{%- endfor %}", "{# c #}", "}}", "{{ header }}",
    # unicode: look-alikes, invisible and control characters
    "\uff58", "\u0430", "c\u0430t", "\u212a", "\ufb01", "\u00e9", "x\u200bx", "\u200d", "\ufeffx",
    "a\x00b", "\x00", "\u202ex", "x\u2028y", "x\x85y", "\x7f", "\udcff",
    # sizes
    "", "x" * 65, "x" * 10_000,
    # keywords and constants
    "class", "None", "True", "def", "lambda", "import",
    # identifiers that mean something to Python or to the generated code
    "__init__", "__builtins__", "torch", "os", "self", "batch", "x", "x_sum", "training", "print",
    "Config", "ops", "_", "_x", "x" * 64,
    # leading digits
    "1x", "9", "0_a",
]
IDS = [ascii(v) if len(v) < 24 else f"{ascii(v[:12])}..len{len(v)}" for v in HOSTILE]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def is_identifier(value: str) -> bool:
    """What rules.py accepts as a name: an ASCII identifier that is not a keyword."""
    return bool(_IDENT.match(value)) and not keyword.iskeyword(value)


def valid_name(value: str) -> bool:
    return is_identifier(value) and len(value) <= 64


SLOT = {s.id: s for s in SLOTS}
SENTINEL = "zzsentinelzz"
_SENTINEL_KEY = re.compile(rf"^( *){SENTINEL}:", re.M)


@cache
def _spec_template(slot_ids: tuple[str, ...]) -> str:
    data = copy.deepcopy(BASE)
    for sid in slot_ids:
        SLOT[sid].set(data, SENTINEL)
    return dump(data)


def spec_with(slots, value: str) -> str:
    """The base spec's YAML with `value` in every slot of `slots` (a key goes in the explicit
    `? key` form, which has no length limit)."""
    slot_ids = (slots.id,) if isinstance(slots, Slot) else tuple(slots)
    q = yaml_scalar(value)
    text = _SENTINEL_KEY.sub(lambda m: f"{m.group(1)}? {q}\n{m.group(1)}:", _spec_template(slot_ids))
    return text.replace(SENTINEL, q)


# ---------------------------------------------------------------------------- checks

# Characters a one-line error must not carry raw: controls, format characters (bidi overrides,
# zero-width), line/paragraph separators, surrogates, private use, unassigned.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def assert_clean_error(exc: SpecError, *wheres: tuple, filename: str = SPEC_FILE) -> None:
    """One line per issue, each located (file:line:col), short, with no raw control, bidi or
    zero-width characters, and no "cannot load" (the loader's catch-all for its own crashes);
    an issue at (or under) each of `wheres`."""
    assert exc.issues, "a SpecError with no issues"
    text = exc.render()
    lines = text.split("\n")
    assert len(lines) == len(exc.issues), f"an issue spans several lines: {text!r}"
    for issue, line in zip(exc.issues, lines):
        assert not issue.message.startswith("cannot load the spec"), f"the loader crashed: {line}"
        assert issue.line is not None and issue.col is not None, f"not located: {line!r}"
        assert line.startswith(f"{filename}:{issue.line}:{issue.col}: "), line
        assert len(line) <= 400, f"an error line of {len(line)} characters: {line[:200]!r}..."
        raw = sorted({c for c in line if unicodedata.category(c) in _UNSAFE_CATEGORIES})
        assert not raw, f"raw control/format characters {raw!r} in {line!r}"
    paths = [i.path for i in exc.issues]
    for where in wheres:
        assert any(p[:len(where)] == where for p in paths), f"no issue at {where}: {text[:2000]}"


@dataclass
class PyFile:
    text: str
    tree: ast.Module
    tokens: list            # (start offset, end offset, TokenInfo)
    starts: list[int]
    _ids: frozenset[str] | None = None

    @property
    def ids(self) -> frozenset[str]:
        if self._ids is None:
            self._ids = frozenset(identifiers(self.tree))
        return self._ids


_LITERAL_TOKENS = {tokenize.STRING} | {getattr(tokenize, n) for n in ("FSTRING_MIDDLE", "TSTRING_MIDDLE")
                                       if hasattr(tokenize, n)}


def parse_py(name: str, text: str) -> PyFile:
    return _parse_py(text, name)


@cache
def _parse_py(text: str, name: str) -> PyFile:   # many builds share files (kernels/)
    try:
        tree = ast.parse(text, filename=name)
        compile(tree, name, "exec")
    except (SyntaxError, ValueError) as exc:
        pytest.fail(f"generated {name} does not parse: {exc!r}")
    offsets, pos = [], 0
    for line in io.StringIO(text).readlines():   # tokenize's own line splitting: "\n" only
        offsets.append(pos)
        pos += len(line)
    offsets.append(pos)
    toks = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.ENDMARKER, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                        tokenize.DEDENT):
            continue
        start = offsets[tok.start[0] - 1] + tok.start[1]
        end = offsets[tok.end[0] - 1] + tok.end[1]
        toks.append((start, end, tok))
    return PyFile(text, tree, toks, [t[0] for t in toks])


def containing_token(f: PyFile, i: int, j: int):
    k = bisect.bisect_right(f.starts, i) - 1
    if k >= 0 and f.tokens[k][0] <= i and j <= f.tokens[k][1]:
        return f.tokens[k][2]
    return None


def occurrences(text: str, value: str):
    i = text.find(value)
    while i >= 0:
        yield i, i + len(value)
        i = text.find(value, i + 1)


def misplaced(name: str, f: PyFile, value: str) -> list[str]:
    """Every place `value` occurs in `f` other than inside a string literal or, for a validated
    identifier, inside an identifier, comment or number token (template words such as `pos`
    contain `os`; provenance is checked by the placeholder comparison)."""
    ident = is_identifier(value)
    allowed = _LITERAL_TOKENS | ({tokenize.NAME, tokenize.COMMENT, tokenize.NUMBER} if ident else set())
    bad = []
    for i, j in occurrences(f.text, value):
        tok = containing_token(f, i, j)
        if tok is None or tok.type not in allowed:
            where = "across tokens" if tok is None else f"in a {tokenize.tok_name[tok.type]} token {tok.string!r}"
            line = f.text.count("\n", 0, i) + 1
            bad.append(f"{name}:{line}: {value!r} {where}")
    return bad


def identifiers(tree: ast.AST) -> set[str]:
    """Every name the code binds or reads: variables, attributes, keywords, parameters,
    functions, classes, imports."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            out.add(node.arg)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.alias):
            out.update((node.name.split(".")[0], node.asname or ""))
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.update(node.module.split("."))
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            out.update(node.names)
    out.discard("")
    return out


_SHA = re.compile(r"(?<=sha256 )[0-9a-f]{16}|(?<=\"spec_sha256\": \")[0-9a-f]{64}")


def _normal(text: str) -> str:
    """The text without the spec's digest (it differs whenever any spec byte does)."""
    return _SHA.sub("-", text)


# ---------------------------------------------------------------------------- 1. every place x every value

PLACEHOLDER = "zqplaceholderq"


@cache
def placeholder_build(slot_id: str) -> tuple[dict[str, str], dict[str, PyFile]]:
    files = render(compile_spec(load_spec_text(spec_with(SLOT[slot_id], PLACEHOLDER), SPEC_FILE)), SPEC_FILE)
    return files, {n: parse_py(n, _normal(t)) for n, t in files.items() if n.endswith(".py")}


NAME_SLOTS = [s for s in SLOTS if s.name and "share" not in s.id]


@pytest.mark.parametrize("slot", NAME_SLOTS, ids=lambda s: s.id)
def test_placeholder_never_stands_alone(slot):
    """Where a name reaches code as an identifier, it is always part of a longer one (`s_click`,
    `kunlunc_<name>`), so no name can shadow `torch`, `self` or a builtin."""
    files, parsed = placeholder_build(slot.id)
    seen = False
    for name, f in parsed.items():
        assert PLACEHOLDER not in f.ids, f"{name}: the name is a bare identifier"
        bare = [tok.string for _, _, tok in f.tokens if tok.type == tokenize.NAME and tok.string == PLACEHOLDER]
        assert not bare, f"{name}: the name is a bare NAME token"
        seen |= PLACEHOLDER in f.text
    assert seen, "the placeholder reached no generated file: the slot is not exercised"


def check_accepted(slot: Slot, value: str, spec: Spec) -> None:
    files = render(compile_spec(spec), SPEC_FILE)
    base_files, base_parsed = placeholder_build(slot.id)
    assert sorted(files) == sorted(base_files)
    problems = []
    for name, text in files.items():
        expected = base_files[name].replace(PLACEHOLDER, value)
        if name.endswith(".json"):
            got, want = json.loads(_normal(text)), json.loads(_normal(expected))
            assert got == want, f"{name} differs from the placeholder build"
            continue
        f = parse_py(name, _normal(text))
        problems += misplaced(name, f, value)
        # AST: the identifiers are the template's own plus the placeholder-derived ones with the
        # value in the placeholder's place; the value never becomes an identifier by itself.
        base_ids = base_parsed[name].ids
        derived = {i.replace(PLACEHOLDER, value) for i in base_ids if PLACEHOLDER in i}
        template = {i for i in base_ids if PLACEHOLDER not in i}
        got = f.ids
        assert got == template | derived, f"{name}: identifiers {sorted(got ^ (template | derived))}"
        assert value not in derived, f"{name}: {value!r} became an identifier of its own"
        assert _normal(text) == _normal(expected), (
            f"{name}: the value does not sit exactly where a placeholder name would")
    assert not problems, "\n".join(problems[:20])


# Slots filled together in one spec (each must get its own located issue); groups do not
# overlap: a scalar slot replaces the list whose entry another slot sets.
NAME_GROUP = tuple(s.id for s in NAME_SLOTS)
SHARE_GROUP = ("sparse.share", "item.share")
ENTRY_GROUP = ("compskip[0]", "activation[0]", "compile.fuse[0]")
SCALAR_GROUP = tuple(s.id for s in SLOTS if not s.name and s.id not in ENTRY_GROUP)
assert set(NAME_GROUP + SHARE_GROUP + ENTRY_GROUP + SCALAR_GROUP) == set(SLOT)
KEY_SLOTS = ("event", "key@top", "key@tower", "key@pffn")


def _has_surrogate(value: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in value)


@pytest.mark.parametrize("value", HOSTILE, ids=IDS)
def test_hostile_value_is_rejected(value):
    """Every slot that must refuse `value` does, with a clean issue located at that slot. Valid
    identifiers in name slots are the one thing accepted (test_hostile_name, below)."""
    # the event is renamed on its own: item paths run through it
    names = [tuple(s for s in NAME_GROUP if s != "event"), ("event",)]
    groups = [SHARE_GROUP, ENTRY_GROUP, SCALAR_GROUP] + ([] if valid_name(value) else names)
    for group in groups:
        if _has_surrogate(value):   # mislocated, see test_lone_surrogate_key_is_located_at_the_key
            group = tuple(s for s in group if s not in KEY_SLOTS)
        if not group:
            continue
        with pytest.raises(SpecError) as info:
            load_spec_text(spec_with(group, value), SPEC_FILE)
        assert_clean_error(info.value, *(SLOT[s].where(value) for s in group))


VALID_NAMES = [v for v in HOSTILE if valid_name(v)]


@pytest.mark.parametrize("value", VALID_NAMES, ids=ascii)
@pytest.mark.parametrize("slot", NAME_SLOTS, ids=lambda s: s.id)
def test_hostile_name(slot, value):
    """A valid identifier that means something to Python (`self`, `torch`, `__init__`, `print`)
    or to the generated code (`batch`, `x_sum`, `Config`, `ops`) is accepted as a name (but a
    package name must not start with `_` or shadow a module) and then sits in the package exactly
    where a harmless placeholder name would: in literals and inside longer identifiers."""
    try:
        spec = load_spec_text(spec_with(slot, value), SPEC_FILE)
    except SpecError as exc:
        assert_clean_error(exc, slot.where(value))
        assert slot.id == "name", f"the valid name {value!r} was rejected at {slot.id}: {exc}"
        assert value.startswith("_") or value in RESERVED_MODULES, f"package name {value!r}: {exc}"
        return
    check_accepted(slot, value, spec)


def test_yaml_scalar_round_trips():
    """The hostile values reach the loader intact, as values, list entries and keys."""
    for value in HOSTILE:
        q = yaml_scalar(value)
        doc = f"a: {q}\nb:\n- {q}\nc:\n  ? {q}\n  :\n    d: 1\n"
        assert yaml.load(doc, Loader=yaml.SafeLoader) == {"a": value, "b": [value], "c": {value: {"d": 1}}}, ascii(value)
    for group in (NAME_GROUP, SHARE_GROUP, ENTRY_GROUP, SCALAR_GROUP):
        data = yaml.load(spec_with(group, "a'\"\n\u202e"), Loader=yaml.SafeLoader)
        expected = copy.deepcopy(BASE)
        for sid in group:
            SLOT[sid].set(expected, "a'\"\n\u202e")
        assert data == expected, group


@pytest.mark.parametrize("slot", KEY_SLOTS)
def test_lone_surrogate_key_is_located_at_the_key(slot):
    with pytest.raises(SpecError) as info:
        load_spec_text(spec_with(SLOT[slot], "\udcff"), SPEC_FILE)
    assert_clean_error(info.value, SLOT[slot].where("\udcff"))


def test_non_ascii_identifiers_are_rejected():
    """Python NFKC-normalizes identifiers: `ｘ` and `x`, `ﬁ` and `fi`, `K` (Kelvin) and `K` would
    be one name in generated code; the loader only takes ASCII names."""
    for value in ("\uff58", "\ufb01", "\u212a", "\u0430", "\u00e9", "x\u200b", "\u1d62"):
        assert value.isidentifier() or value == "x\u200b"
        for slot in NAME_SLOTS:
            with pytest.raises(SpecError):
                load_spec_text(spec_with(slot, value), SPEC_FILE)


@pytest.mark.parametrize("raw", [b"\xed\xb2\x80", b"\xff", b"\xc0\xaf", b"a\x00b"], ids=ascii)
def test_undecodable_and_nul_bytes_in_a_name(raw):
    """Bytes that are not UTF-8 (a lone surrogate's encoding, an overlong '/') or NUL, raw in the
    file: a located error, never a crash."""
    text = dump(BASE).replace("name: inj_model", "name: inj")
    data = text.encode().replace(b"name: inj\n", b"name: inj" + raw + b"\n")
    with pytest.raises(SpecError) as info:
        load_spec_text(data, SPEC_FILE)
    assert_clean_error(info.value, ())


YAML_PAYLOADS = [
    "name: !!python/object/apply:os.system ['touch MARKER']",
    "name: !!python/object/new:os.system ['touch MARKER']",
    "name: !!python/name:os.system",
    "name: !!python/module:os",
    "name: !!python/object:os.PathLike {}",
    "name: !custom 'touch MARKER'",
    "name: !!binary aW5qX21vZGVs",
    "name: !!set {a, b}",
    "name: !!str &a inj_model\nx: *a",
]


@pytest.mark.parametrize("line", YAML_PAYLOADS, ids=range(len(YAML_PAYLOADS)))
def test_yaml_tags_construct_nothing(line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = dump(BASE).replace("name: inj_model", line)
    with pytest.raises(SpecError) as info:
        load_spec_text(text, SPEC_FILE)
    assert_clean_error(info.value, ())
    assert not (tmp_path / "MARKER").exists()


def test_payload_spec_builds_nothing(tmp_path, monkeypatch, capsys):
    """The CLI on specs whose strings are payloads: exit 1, one line per issue, nothing written,
    nothing run."""
    monkeypatch.chdir(tmp_path)
    payload = "__import__('os').system('touch MARKER')"
    for slot in SLOTS:
        spec = tmp_path / f"{slot.id}.yaml"
        spec.write_text(spec_with(slot, payload), encoding="utf-8")
        assert cli.main(["build", str(spec), "-o", str(tmp_path / "out"), "-q"]) == 1, slot.id
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.strip(), slot.id
    assert not (tmp_path / "MARKER").exists()
    out = tmp_path / "out"
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.endswith(".lock")]


# ---- build, import and run accepted hostile specs in a subprocess

def _hostile_but_valid_a() -> tuple[dict, str]:
    d = copy.deepcopy(BASE)
    d["name"] = "self"
    d["features"]["sparse"] = [{"name": "__init__", "vocab": 9, "dim": 8},
                               {"name": "torch", "vocab": 7, "dim": 4},
                               {"name": "os", "share": "torch"}]
    ev = d["features"]["events"].pop("click")
    ev["items"] = [{"name": "forward", "share": "torch"}, {"name": "training", "vocab": 5, "dim": 8}]
    d["features"]["events"]["batch"] = ev
    d["model"]["head"]["tasks"] = ["print", "x_sum", "__class__"]
    # the spec *file* name is not validated: it may hold a payload, it lands in a comment
    return d, "a\"b'.yaml\n__import__('os').system('touch MARKER')\n#\r\u2028.yaml"


def _hostile_but_valid_b() -> tuple[dict, str]:
    d = copy.deepcopy(BASE)
    d["name"] = "Config"
    d["features"]["sparse"] = [{"name": "self", "vocab": 9, "dim": 8},
                               {"name": "x", "vocab": 7, "dim": 8},
                               {"name": "sys", "share": "x"}]
    ev = d["features"]["events"].pop("click")
    ev["items"] = [{"name": "x_sum", "share": "x"}, {"name": "ops", "vocab": 5, "dim": 4}]
    d["features"]["events"]["x"] = ev
    second = copy.deepcopy(ev)
    second["items"] = [{"name": "_", "share": "self"}]
    d["features"]["events"]["os"] = second
    d["model"]["pffn"]["activation"] = "relu"
    d["model"]["head"]["tasks"] = ["__builtins__", "torch", "batch"]
    return d, "{{ 7*7 }}\"\"\"); __import__('os').system('touch MARKER') #.yaml"


_RUNNER = textwrap.dedent("""
    import importlib, json, os, sys
    pkgs, names = sys.argv[1], sys.argv[2:]
    sys.path.insert(0, pkgs)
    import torch
    try:
        import triton  # noqa: F401
    except ImportError:
        pass
    watched, seen = os.path.dirname(os.getcwd()), []   # the test's tmp dir: packages and cwd
    SPAWN = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
             "subprocess.Popen", "pty.spawn", "os.startfile")
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    def hook(event, args):
        if event.startswith(SPAWN):
            seen.append((event, repr(args)[:200]))
        elif event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            path, mode, flags = args
            writing = any(c in (mode or "") for c in "wax+") or (mode is None and flags & WRITE)
            if writing and os.path.abspath(os.fsdecode(path)).startswith(watched):
                seen.append((event, os.fsdecode(path)))
        elif event in ("os.remove", "os.rename", "os.mkdir", "shutil.rmtree", "os.rmdir"):
            if isinstance(args[0], (str, bytes, os.PathLike)) and \
                    os.path.abspath(os.fsdecode(args[0])).startswith(watched):
                seen.append((event, repr(args)[:200]))
        elif event == "socket.connect":
            seen.append((event, repr(args)[:200]))
    sys.addaudithook(hook)
    shapes = {}
    for name in names:
        pkg = importlib.import_module(name)
        model = pkg.Model(backend="torch")
        logits = model(pkg.example_batch(3, seed=1))
        shapes[name] = [list(logits.shape), len(pkg.Config().tasks), bool(torch.isfinite(logits).all())]
    print(json.dumps({"seen": seen, "shapes": shapes}))
""")


def test_hostile_but_valid_packages_import_and_run(tmp_path):
    pkgs = tmp_path / "pkgs"
    names = []
    for make in (_hostile_but_valid_a, _hostile_but_valid_b):
        data, spec_file = make()
        spec = load_spec_text(dump(data), SPEC_FILE)
        files = render(compile_spec(spec), spec_file)
        for name, text in files.items():
            if name.endswith(".py"):  # the payload in the file name is in one comment, line 1
                holders = [t for _, _, t in parse_py(name, text).tokens if "MARKER" in t.string]
                assert [(t.type, t.start[0]) for t in holders] == [(tokenize.COMMENT, 1)], name
        write_package(files, pkgs, spec.name)
        names.append(spec.name)
    work = tmp_path / "cwd"
    work.mkdir()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    p = subprocess.run([sys.executable, "-c", _RUNNER, str(pkgs), *names], cwd=work, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert report["seen"] == [], f"the packages did something on import or run: {report['seen']}"
    assert report["shapes"] == {"self": [[3, 3], 3, True], "Config": [[3, 3], 3, True]}
    assert list(work.iterdir()) == [], "the packages wrote into the working directory"
    assert not list(tmp_path.rglob("MARKER"))


# ---- defense in depth: codegen on a Spec that skipped the loader's rules

_DOCSTRING_BREAKOUT = 'x""" if __import__("os").system("touch MARKER") else """'


def test_compile_spec_refuses_a_spec_that_skipped_the_rules():
    """A Spec built with pydantic alone (no loader) still gets the rules before codegen."""
    data = copy.deepcopy(BASE)
    data["model"]["head"]["tasks"] = [_DOCSTRING_BREAKOUT, "conversion"]
    spec = Spec.model_validate(data, strict=True)
    with pytest.raises(SpecError) as info:
        compile_spec(spec)
    assert "model.head.tasks[0]" in info.value.render()


# ---------------------------------------------------------------------------- 2. the specs in specs/

def _is_name_path(path: tuple) -> bool:
    if path == ("name",):
        return True
    if path[:1] == ("features",) and path[-1] in ("name", "share"):
        return True
    return path[:3] == ("model", "head", "tasks")


def spec_strings(data, path=()) -> list[tuple[tuple, str, bool]]:
    """(path, string, is_a_validated_name) for every string a loaded spec holds; mapping keys
    count where they are content (event names), not where they are the schema's own keys."""
    out = []
    if isinstance(data, dict):
        for key, value in data.items():
            if path == ("features", "events"):
                out.append((path + (key,), key, True))
            out += spec_strings(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += spec_strings(value, path + (i,))
    elif isinstance(data, str):
        out.append((path, data, _is_name_path(path)))
    return out


@cache
def template_words() -> tuple[frozenset[str], frozenset[str]]:
    """Identifiers and comments the templates (and kernels) write themselves."""
    idents, notes = set(), set()
    for p in TEMPLATES.rglob("*"):
        if p.is_file() and p.suffix in (".j2", ".py"):
            text = p.read_text(encoding="utf-8")
            idents |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
            notes |= {m.strip() for m in re.findall(r"#[^\n]*", text)}
    return frozenset(idents), frozenset(notes)


# Comments codegen writes from the plan (not from spec strings directly): section titles (layer
# kinds come from the closed compskip choice) and shape comments; the header holds a repr.
_CODEGEN_COMMENT = re.compile(r"# ---- (layer \d+: (global|local|both)|inputs|readout) ----\Z"
                              r"|# \[B[, \d\[\]B]*\](, \[B\])?\Z")


def unquoted(name: str, f: PyFile, value: str, names: list[str]) -> list[str]:
    idents, notes = template_words()
    bad = []
    for i, j in occurrences(f.text, value):
        tok = containing_token(f, i, j)
        if tok is not None and tok.type in _LITERAL_TOKENS:
            continue
        if tok is not None and tok.type == tokenize.NAME and (
                tok.string in idents or any(n in tok.string for n in names)):
            continue
        if tok is not None and tok.type == tokenize.COMMENT and (
                tok.string.strip() in notes or _CODEGEN_COMMENT.match(tok.string)
                or tok.start[0] <= 2 and tok.string.startswith("# @generated by kunlunc ")):
            continue
        where = "across tokens" if tok is None else f"in {tokenize.tok_name[tok.type]} {tok.string!r}"
        bad.append(f"{name}:{f.text.count(chr(10), 0, i) + 1}: {value!r} {where}")
    return bad


@pytest.mark.parametrize("path", spec_paths(), ids=lambda p: p.stem)
def test_spec_strings_reach_code_only_quoted(path):
    from kunlun_compiler import yamlload
    data = yamlload.load_file(path).data
    strings = spec_strings(data)
    names = sorted({s for _, s, is_name in strings if is_name})
    assert all(is_identifier(n) for n in names)
    others = sorted({s for _, s, is_name in strings if not is_name})
    spec_file = str(path.relative_to(ROOT))
    files = render(compile_spec(load_spec(path)), spec_file)
    sources = {n: t for n, t in files.items() if n.endswith(".py")}
    on_disk = ROOT / "generated" / data["name"]
    if on_disk.is_dir():  # the committed build too (test_golden checks it is current)
        sources.update({f"generated/{p.relative_to(on_disk).as_posix()}": p.read_text(encoding="utf-8")
                        for p in on_disk.rglob("*.py") if "__pycache__" not in p.parts})
    bad = []
    for name, text in sources.items():
        first, second, rest = text.split("\n", 2)
        m = _HEADER.match(first)
        assert m and m.group(1) == repr(Path(spec_file).name) and second.startswith("# "), name
        # scanned with a constant header, so that files equal but for it are parsed once
        f = parse_py(name, "# header\n# header\n" + rest)
        for value in others:
            bad += unquoted(name, f, value, names)
        for value in names:  # names: inside literals, identifiers or comments, never operators
            for i, j in occurrences(f.text, value):
                tok = containing_token(f, i, j)
                if tok is None or tok.type not in _LITERAL_TOKENS | {tokenize.NAME, tokenize.COMMENT}:
                    bad.append(f"{name}: name {value!r} in {tok and tokenize.tok_name[tok.type]}")
    for name in ("kunlunc.json", "estimate.json"):
        json.loads(files[name])
    assert not bad, "\n".join(bad[:30])


HOSTILE_FILES = [
    'a"b.yaml', "a'b.yaml", "a\nimport os\n.yaml", "x\rimport os.yaml", "x\r\n__import__('os').system('touch MARKER')",
    "x\x0cimport os", "x\u2028import os", "x\x85y", "\u202eyaml.exe", "x\x00y", "x\udcffy", "\\", "x\\",
    '"""', "'''", "{{ 7*7 }}.yaml", "{% raw %}.yaml", "#.yaml", "x" * 10_000, "dir/../evil\n.yaml", "",
]


@cache
def _tiny_compiled():
    return compile_spec(load_spec(SPECS / "kunlun_tiny.yaml"))


@cache
def _tiny_files() -> dict[str, str]:
    return render(_tiny_compiled(), "kunlun_tiny.yaml")


_HEADER = re.compile(r"# @generated by kunlunc \S+ from spec (.*) \(sha256 [0-9a-f]{16}\)\.\Z")


@pytest.mark.parametrize("spec_file", HOSTILE_FILES, ids=[ascii(v[:20]) for v in HOSTILE_FILES])
def test_spec_file_name_cannot_break_the_header(spec_file):
    files = render(_tiny_compiled(), spec_file)
    base = _tiny_files()
    assert sorted(files) == sorted(base)
    shown = repr(Path(spec_file).name)
    for name, text in files.items():
        if not name.endswith(".py"):
            data = json.loads(text)
            if name == "kunlunc.json":
                assert data["spec"] == Path(spec_file).name
            continue
        text.encode("utf-8")                                   # writable as UTF-8
        ast.parse(text, filename=name)
        first, second, rest = text.split("\n", 2)
        m = _HEADER.match(first)
        assert m and m.group(1) == shown, f"{name}: {first[:200]!r}"
        assert second == "# Do not edit: rebuild with `kunlunc build`.", name
        # the rest is the baseline's, and the header is two comment tokens: the same code
        assert rest == base[name].split("\n", 2)[2], f"{name}: the file name changed more than the header"
        toks = list(tokenize.generate_tokens(io.StringIO(first + "\n" + second + "\n").readline))
        kinds = [(t.type, t.start[0]) for t in toks if t.type not in (tokenize.NL, tokenize.ENDMARKER)]
        assert kinds == [(tokenize.COMMENT, 1), (tokenize.COMMENT, 2)], f"{name}: the header is not 2 comments"


def test_hostile_spec_file_name_in_errors(tmp_path):
    """A spec whose file name holds a newline or a bidi override: one line per issue still."""
    bad = tmp_path / "a\nb\u202ec.yaml"
    bad.write_text(dump({**BASE, "dtype": "x"}), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    text = info.value.render()
    assert len(text.split("\n")) == len(info.value.issues) == 1, text
    assert "\\n" in text


# ---------------------------------------------------------------------------- 3. Jinja

JINJA = ["{{ 7*7 }}", "{% raw %}", "{% endraw %}", "{%- if true %}T{% endif %}", "{# c #}",
         "{{ header }}", "{{ ''.__class__.__mro__ }}", "{{", "}}", "{%"]


@pytest.mark.parametrize("value", JINJA, ids=range(len(JINJA)))
def test_jinja_syntax_in_names_is_rejected(value):
    for slot in NAME_SLOTS:
        with pytest.raises(SpecError) as info:
            load_spec_text(spec_with(slot, value), SPEC_FILE)
        assert_clean_error(info.value, slot.where(value))


def test_values_are_rendered_once(monkeypatch):
    """Values that reach literals are substituted by Jinja once and never re-read as template
    text: with the rules switched off (so `{{` can reach codegen), a task or feature named
    `{{ 7*7 }}` is the string '{{ 7*7 }}' in the package, not 49, exactly where a plain name would be."""
    monkeypatch.setattr("kunlun_compiler.compiler.rules.check", lambda spec: [])
    slots = {"task": ("model", "head", "tasks", 0), "sparse": ("features", "sparse", 2, "name"),
             "item": ("features", "events", "click", "items", 0, "name")}

    def build(values: dict[str, str], spec_file: str) -> dict[str, str]:
        data = copy.deepcopy(BASE)
        for key, path in slots.items():
            _put(path)(data, values[key])
        return render(compile_spec(Spec.model_validate(data, strict=True)), spec_file)

    plain = {k: f"zq{k}q" for k in slots}
    base = build(plain, "spec.yaml")
    for i, payload in enumerate(JINJA):
        values = {k: payload + "\x01" + k for k in slots}   # distinct per slot
        files = build(values, payload + ".yaml")
        for name, text in files.items():
            expected = base[name].replace(repr("spec.yaml"), repr(payload + ".yaml"))
            expected = expected.replace(json.dumps("spec.yaml"), json.dumps(payload + ".yaml"))
            for k in slots:
                expected = expected.replace(repr(plain[k]), repr(values[k]))
                expected = expected.replace(json.dumps(plain[k]), json.dumps(values[k]))
            if name.endswith(".json"):
                assert json.loads(_normal(text)) == json.loads(_normal(expected)), name
            else:
                assert _normal(text) == _normal(expected), f"{name}: {payload!r} was not pasted once, as a literal"
        assert repr(values["task"]) in files["config.py"]


@pytest.mark.parametrize("name", ["\u202egnp.yaml", "a\u200bb.yaml", "a\u2066b\u2069.yaml", "x\x7fy.yaml",
                                  "x\ty.yaml", "x\u00a0y.yaml"], ids=ascii)
def test_hostile_spec_file_name_is_escaped_in_errors(tmp_path, name):
    """A bidi override or zero-width character in the spec's *file name* is escaped in error lines
    too, not only in values (it could reorder or hide what the line says)."""
    path = tmp_path / name
    path.write_text("kunlun: 1\nname: 3\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    escaped = str(path).encode("unicode_escape").decode("ascii") if not str(path).isprintable() else str(path)
    for line in info.value.render().split("\n"):
        assert not {c for c in line if unicodedata.category(c) in _UNSAFE_CATEGORIES}, ascii(line)
        assert line.startswith(escaped + ":"), ascii(line)
    result = subprocess.run([sys.executable, "-m", "kunlun_compiler.cli", "validate", str(path)],
                            capture_output=True, text=True, errors="surrogateescape")
    assert result.returncode == 1 and result.stderr.startswith(escaped + ":"), ascii(result.stderr)
