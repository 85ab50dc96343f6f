"""Located spec errors: one `Issue` per problem, rendered one line each.

Everything a user sees about a bad spec goes through `SpecError.render`, so this is the single place
that guarantees one line per issue (no raw newlines, no megabyte values) whatever the input was.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Union

PathElem = Union[str, int]
Path = tuple[PathElem, ...]

MAX_SHOWN = 60
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Issue:
    path: Path
    message: str
    expected: str | None = None
    found: str | None = None
    hint: str | None = None
    line: int | None = None
    col: int | None = None
    at_key: bool = False  # the problem is the key itself (a name, an unknown key), not its value

    @classmethod
    def mismatch(cls, path: Path, expected: str, found: str, fix: str | None = None,
                 hint: str | None = None, at_key: bool = False) -> "Issue":
        """The common shape: 'expected X, found Y', optionally followed by how to fix it."""
        message = f"expected {expected}, found {found}" + (f"; {fix}" if fix else "")
        return cls(tuple(path), message, expected, found, hint, at_key=at_key)

    def render(self, file: str) -> str:
        where = file if self.line is None else f"{file}:{self.line}:{self.col or 1}"
        parts = [where]
        if self.path:
            parts.append(format_path(self.path))
        text = ": ".join(parts) + ": " + self.message
        if self.hint:
            text += f" ({self.hint})"
        return one_line(text)


class SpecError(Exception):
    """A spec that cannot be built; carries every issue found, not just the first."""

    def __init__(self, file: str, issues: list[Issue]):
        self.file = file
        self.issues = list(issues)
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(issue.render(self.file) for issue in self.issues)


def format_path(path: Path) -> str:
    out = ""
    for elem in path:
        if isinstance(elem, int):
            out += f"[{elem}]"
        elif _PLAIN_KEY.match(elem):
            out += f".{clip(elem)}" if out else clip(elem)
        else:
            out += f"[{clip(repr(elem))}]"
    return out


def show(value: Any) -> str:
    """How a found value is printed: YAML spelling for scalars, a kind for containers."""
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if value is None:
        return "null"
    if isinstance(value, int):
        # str() of a >4300-digit int raises ValueError in Python 3.11, so describe big ones.
        if value.bit_length() > 190:
            return f"an integer of {_digits(value)} digits"
        return str(value)
    if isinstance(value, float):
        if value != value:
            return ".nan"
        return {float("inf"): ".inf", float("-inf"): "-.inf"}.get(value, repr(value))
    if isinstance(value, str):
        return clip(repr(value))
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item{'s' * (len(value) != 1)}"
    if isinstance(value, dict):
        return "a mapping"
    return clip(repr(value))


def _digits(value: int) -> str:
    try:
        return str(len(str(abs(value))))
    except ValueError:
        return f"about {int(value.bit_length() * 0.30103) + 1}"


def did_you_mean(word: str, choices) -> str | None:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else None


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str) -> str:
    """text with every character that is not printable (controls, line separators, bidi overrides,
    zero-width and other format characters, surrogates, unassigned) written as an escape, so an
    error stays one line and reads as what it is, whatever the file name or value held."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
