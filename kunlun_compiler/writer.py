"""Atomic package output: write everything to a temporary sibling, then swap it into place.

A failed or interrupted build leaves the previous package as it was; a directory kunlunc did
not write (no manifest) is never replaced without `force`.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .codegen import MANIFEST


class OutputError(Exception):
    pass


def write_package(files: dict[str, str], out: Path, name: str, force: bool = False) -> Path:
    target = out / name
    if target.exists() and not force:
        if not target.is_dir() or not (target / MANIFEST).is_file():
            raise OutputError(f"{target} exists and was not written by kunlunc; pass --force to replace it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out))
    except OSError as exc:
        raise OutputError(f"cannot write to {out}: {exc.strerror or exc}") from None
    try:
        for rel, text in sorted(files.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        _swap(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _swap(tmp: Path, target: Path) -> None:
    """Rename the new tree into place; the old one is moved aside first and removed last."""
    old = None
    if target.exists() or target.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.rename(target, old / "pkg")
    try:
        os.rename(tmp, target)
    except OSError:
        if old is not None:
            os.rename(old / "pkg", target)   # put the previous package back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
