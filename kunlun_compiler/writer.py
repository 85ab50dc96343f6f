"""Atomic package output: write everything to a temporary sibling, then swap it into place.

- A failed, interrupted or killed build leaves the previous package exactly as it was: files are
  written (and fsynced) into `.<name>.<random>.tmp` beside the target, and only a complete tree
  is swapped in. On Linux the swap is one `renameat2(RENAME_EXCHANGE)`, so the target path never
  stops existing; elsewhere it is two renames with a put-back on failure.
- Builds of the same target are serialized by an exclusive lock on `.<name>.lock`, so two builds
  at once give one of the two packages, whole. Stale temporaries of killed builds are removed by
  the next build of that target, under the lock.
- A target that kunlunc did not write (no manifest), or that holds files its manifest does not
  list, is never replaced without `force`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .codegen import MANIFEST


class OutputError(Exception):
    pass


def write_package(files: dict[str, str], out: Path, name: str, force: bool = False) -> Path:
    target = out / name
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {exc.strerror or exc}") from None
    if not out.is_dir():
        raise OutputError(f"{out} is not a directory")
    with _locked(out / f".{name}.lock"):
        _remove_stale(out, name)
        if not force:
            _check_ours(target)
        tmp = _write_tree(files, out, name)
        try:
            _swap(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)   # after a swap, tmp holds the old package
    return target


def _check_ours(target: Path) -> None:
    if not target.exists() and not target.is_symlink():
        return
    manifest = target / MANIFEST
    if target.is_symlink() or not target.is_dir() or not manifest.is_file():
        raise OutputError(f"{target} exists and was not written by kunlunc; pass --force to replace it")
    try:
        listed = set(json.loads(manifest.read_text(encoding="utf-8"))["files"])
        listed.add(MANIFEST)    # older builds did not list the manifest itself
    except (OSError, ValueError, KeyError, TypeError):
        raise OutputError(f"{manifest} is unreadable; pass --force to replace {target}") from None
    foreign = sorted(p.relative_to(target).as_posix() for p in target.rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts
                     and p.relative_to(target).as_posix() not in listed)
    if foreign:
        shown = ", ".join(foreign[:3]) + (" …" if len(foreign) > 3 else "")
        raise OutputError(f"{target} holds files kunlunc did not write ({shown}); pass --force to replace it")


def _write_tree(files: dict[str, str], out: Path, name: str) -> Path:
    try:
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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _remove_stale(out: Path, name: str) -> None:
    """Temporaries left by builds that were killed (we hold the lock: nobody else is writing)."""
    for stale in list(out.glob(f".{name}.*.tmp")) + list(out.glob(f".{name}.*.old")):
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def _locked(path: Path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)   # closing releases the lock


def _swap(tmp: Path, target: Path) -> None:
    """Put tmp at target. Afterwards tmp holds the previous package (or nothing)."""
    if not (target.exists() or target.is_symlink()):
        os.rename(tmp, target)
        return
    if _exchange(tmp, target):
        return
    old = tmp.with_suffix(".old")
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:
        os.rename(old, target)            # put the previous package back
        raise
    os.rename(old, tmp)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths with renameat2(2); False where the system lacks it."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):   # kernel or filesystem says no
        return False
    raise OSError(err, os.strerror(err), str(b))
