"""Builds never lose output: kill -9 mid-write, concurrent builds, stale temporaries."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from genutil import ROOT, SPECS, compiled, spec_text
from kunlun_compiler.codegen import render

TINY = (SPECS / "kunlun_tiny.yaml").read_text()

# Runs the real CLI with every fsync slowed down, so a build can be caught mid-write.
SLOW_BUILD = """
import os, sys, time
real_fsync = os.fsync
def slow_fsync(fd):
    real_fsync(fd)
    time.sleep(float(os.environ["FSYNC_DELAY"]))
os.fsync = slow_fsync
from kunlun_compiler import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def _variant(tmp: Path, window: int) -> Path:
    path = tmp / f"tiny_w{window}.yaml"
    path.write_text(TINY.replace("window: 4,", f"window: {window},"))
    return path


def _snapshot(pkg: Path) -> dict[str, bytes]:
    return {p.relative_to(pkg).as_posix(): p.read_bytes() for p in pkg.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def _build(spec: Path, out: Path, delay: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "FSYNC_DELAY": str(delay), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", SLOW_BUILD, "build", str(spec), "-o", str(out), "-q"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _expected(spec: Path) -> dict[str, bytes]:
    return {k: v.encode() for k, v in render(compiled(spec_text(spec.read_text())), str(spec)).items()}


def test_kill_9_mid_write_keeps_previous_output(tmp_path):
    out = tmp_path / "out"
    first, second = _variant(tmp_path, 4), _variant(tmp_path, 9)
    assert _build(first, out).wait(60) == 0
    before = _snapshot(out / "kunlun_tiny")
    proc = _build(second, out, delay=0.5)
    deadline = time.time() + 60
    while time.time() < deadline:                       # wait until it is really writing
        tmps = list(out.glob(".kunlun_tiny.*.tmp"))
        if tmps and sum(1 for p in tmps[0].rglob("*") if p.is_file()) >= 2:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the slow build never started writing")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert _snapshot(out / "kunlun_tiny") == before     # untouched, byte for byte
    assert list(out.glob(".kunlun_tiny.*.tmp"))         # the killed build's leftovers
    assert _build(second, out).wait(60) == 0            # the next build cleans them up
    assert not list(out.glob(".kunlun_tiny.*.tmp"))
    assert _snapshot(out / "kunlun_tiny") == _expected(second)


def test_concurrent_builds_give_one_whole_package(tmp_path):
    out = tmp_path / "out"
    specs = [_variant(tmp_path, w) for w in (4, 5, 6, 7)]
    procs = [_build(s, out, delay=0.01) for s in specs]
    codes = [p.wait(120) for p in procs]
    assert codes == [0, 0, 0, 0], [p.stderr.read() for p in procs]
    result = _snapshot(out / "kunlun_tiny")
    assert any(result == _expected(s) for s in specs)   # exactly one build's files, none mixed
    assert sorted(p.name for p in out.iterdir()) == [".kunlun_tiny.lock", "kunlun_tiny"]
