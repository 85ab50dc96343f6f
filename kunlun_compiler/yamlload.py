"""Safe YAML loading that remembers where every value came from.

We compose a node graph with PyYAML's safe machinery and build plain data ourselves instead of
using a constructor: no tag can instantiate anything, duplicate keys are caught (PyYAML keeps the
last one), aliases are expanded under a node budget (billion laughs), and every value and key gets
its (line, column) so later errors can point at it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import Issue, Path, SpecError, show

MAX_NODES = 100_000
MAX_DEPTH = 64
MAX_BYTES = 4 * 1024 * 1024
Pos = tuple[int, int]

_T = "tag:yaml.org,2002:"
_MERGE = _T + "merge"
# Implicitly resolved YAML 1.1 types that a spec never needs: kept as the text the user wrote.
_AS_TEXT = {_T + "str", _T + "timestamp", _T + "value", _T + "merge"}
_SCALARS = _AS_TEXT | {_T + "int", _T + "float", _T + "bool", _T + "null"}


@dataclass(frozen=True)
class Loaded:
    data: dict
    values: dict[Path, Pos] = field(default_factory=dict)  # path -> where its value starts
    keys: dict[Path, Pos] = field(default_factory=dict)  # path -> where its key is written

    def position(self, path: Path, key: bool = False) -> Pos | None:
        """Where `path` is written, else its nearest written ancestor (defaults have no place)."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        while path and path not in self.values:
            path = path[:-1]
        return self.values.get(path)


def load_file(path: str | os.PathLike) -> Loaded:
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            raw = f.read(MAX_BYTES + 1)  # bounded: the path may be a pipe or /dev/zero
    except IsADirectoryError:
        _fail(name, "is a directory, not a spec file")
    except FileNotFoundError:
        _fail(name, "no such file")
    except OSError as exc:
        _fail(name, f"cannot read the file: {exc.strerror or exc}")
    return load_text(raw, name)


def load_text(text: str | bytes, filename: str) -> Loaded:
    if len(text) > MAX_BYTES:
        _fail(filename, f"the file is larger than {MAX_BYTES // 2**20} MiB; a spec is a few KiB")
    text = _decode(text, filename)
    root = _compose(text, filename)
    if root is None or (isinstance(root, ScalarNode) and root.tag == _T + "null"):
        _fail(filename, "the file is empty; a spec is a mapping starting with `kunlun: 1`", (1, 1))
    builder = _Builder(filename)
    data = builder.build(root, (), 0)
    if not isinstance(data, dict):
        _fail(filename, "expected a mapping at the top of the file (kunlun: 1, name: ..., ...), "
              f"found {show(data)}", _pos(root))
    return Loaded(data, builder.values, builder.keys)


def _fail(filename: str, message: str, pos: Pos | None = None, hint: str | None = None,
          path: Path = ()):
    line, col = pos if pos else (None, None)
    raise SpecError(filename, [Issue(path, message, hint=hint, line=line, col=col)])


def _pos(node: Node) -> Pos:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _decode(text: str | bytes, filename: str) -> str:
    if isinstance(text, str):
        return text.removeprefix("\ufeff")
    raw = bytes(text).removeprefix(b"\xef\xbb\xbf")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        pos = (raw.count(b"\n", 0, exc.start) + 1, exc.start - line_start + 1)
        _fail(filename, f"the file is not UTF-8: byte 0x{raw[exc.start]:02x} at offset "
              f"{exc.start} cannot be decoded", pos, "save the spec as UTF-8")


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer refuses to nest deeper than MAX_DEPTH.

    PyYAML composes recursively; without this, `[[[[...` thousands deep is a RecursionError.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"values are nested more than {MAX_DEPTH} levels deep", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _compose(text: str, filename: str) -> Node | None:
    try:
        loader = _Loader(text)
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "unreadable"
        if exc.context and exc.problem and not exc.context.startswith("while"):
            problem = f"{exc.context}, {exc.problem}"  # e.g. "expected a single document, but..."
        hint = "indent with spaces; YAML does not allow tabs" if "\\t" in problem else None
        _fail(filename, f"invalid YAML: {problem}", (mark.line + 1, mark.column + 1), hint)
    except yaml.reader.ReaderError as exc:
        _fail(filename, f"invalid character U+{exc.character:04X} (not allowed in YAML)",
              _offset_pos(text, exc.position))
    except yaml.YAMLError as exc:
        _fail(filename, f"invalid YAML: {exc}")


def _offset_pos(text: str, offset: int) -> Pos:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


class _Builder:
    """Turns a composed node graph into plain data, recording positions as it goes."""

    def __init__(self, filename: str):
        self.filename = filename
        self.values: dict[Path, Pos] = {}
        self.keys: dict[Path, Pos] = {}
        self.count = 0
        self.active: set[int] = set()  # node ids being built: an alias to one of them is a cycle
        self.scalars = yaml.constructor.SafeConstructor()

    def error(self, node: Node, message: str, hint: str | None = None, path: Path = ()):
        _fail(self.filename, message, _pos(node), hint, path)

    def tick(self, node: Node, path: Path = ()) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            self.error(node, f"the document expands to more than {MAX_NODES} values "
                       "(aliases are expanded); a spec needs far fewer", path=path)

    def build(self, node: Node, path: Path, depth: int):
        self.tick(node, path)
        if depth > MAX_DEPTH or id(node) in self.active:
            self.error(node, "an alias refers to a value that contains it (a cycle)"
                       if id(node) in self.active else f"nested more than {MAX_DEPTH} levels deep",
                       path=path)
        self.values[path] = _pos(node)
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode) and node.tag == _T + "seq":
                items = enumerate(node.value)
                return [self.build(item, path + (i,), depth + 1) for i, item in items]
            if isinstance(node, MappingNode) and node.tag == _T + "map":
                return self.mapping(node, path, depth)
            self.refuse_tag(node, path)
        finally:
            self.active.discard(id(node))

    def refuse_tag(self, node: Node, path: Path):
        tag = "!!" + node.tag[len(_T):] if node.tag.startswith(_T) else node.tag
        self.error(node, f"expected a plain value, found the tag {tag[:60]!r}",
                   "a spec holds only strings, numbers, booleans, null, lists and mappings", path)

    def scalar(self, node: ScalarNode, path: Path):
        if node.tag not in _SCALARS:
            self.refuse_tag(node, path)
        if node.tag in _AS_TEXT:
            return node.value
        try:
            return self.scalars.construct_object(node, deep=True)
        except (ValueError, KeyError, IndexError, OverflowError, TypeError):
            digits = f" with {len(node.value)} digits" if len(node.value) > 4000 else ""
            self.error(node, f"expected a valid {node.tag[len(_T):]}, found "
                       f"{node.value[:40]!r}{digits}", path=path)

    def mapping(self, node: MappingNode, path: Path, depth: int) -> dict:
        out: dict = {}
        for key_node, value_node, explicit in self.pairs(node, depth):
            key = self.key(key_node, path)
            if key in out:
                if not explicit:
                    continue  # a merged (`<<`) key never overrides one written in the mapping
                self.error(key_node, f"duplicate key {key!r} in this mapping",
                           f"first written at line {self.keys[path + (key,)][0]}", path + (key,))
            self.keys[path + (key,)] = _pos(key_node)
            out[key] = self.build(value_node, path + (key,), depth + 1)
        return out

    def pairs(self, node: MappingNode, depth: int):
        """Own pairs first, then those of `<<` merge sources (YAML 1.1 merge keys)."""
        merges = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merges.append(value_node)
            else:
                yield key_node, value_node, True
        for source in merges:
            sources = source.value if isinstance(source, SequenceNode) else [source]
            for src in sources:
                if not isinstance(src, MappingNode) or depth > MAX_DEPTH or src is node:
                    self.error(src, "a `<<` merge key needs a mapping or a list of mappings, "
                               "without cycles")
                for key_node, value_node, _ in self.pairs(src, depth + 1):
                    self.tick(key_node)  # skipped merged keys cost too, or merges could bomb
                    yield key_node, value_node, False

    def key(self, node: Node, path: Path) -> str:
        if isinstance(node, ScalarNode) and node.tag in _AS_TEXT:
            try:
                node.value.encode("utf-8")
            except UnicodeEncodeError:   # a lone surrogate from a "\uDCFF" escape: not text
                self.error(node, f"expected a key of text, found {show(node.value)} (not valid Unicode)",
                           path=path + (node.value,))
            return node.value
        if not isinstance(node, ScalarNode):
            self.error(node, "expected a string key, found a list or mapping as a key", path=path)
        value = self.scalar(node, path)
        kind = {int: " (an integer)", float: " (a number)"}.get(type(value), "")
        self.error(node, f"expected a string key, found {show(value)}{kind}",
                   f"quote it to use it as a name: '{node.value[:40]}':", path)
