"""bench/gpu_run.sh's compile-cache carry: SAVE_CACHE=1 packs the caches into $OUT/cache.part*
without compiled binaries; .gpucache/cache.part* in the working directory is unpacked first.
Runs the script's cache block alone (the GPU runs need a GPU), in temporary directories."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_run.sh"


def cache_block() -> str:
    lines = SCRIPT.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("CACHE="))
    end = next(i for i, line in enumerate(lines) if line.startswith("trap save_cache EXIT"))
    return "\n".join(["set -uo pipefail", *lines[start:end + 1], 'echo "body ran"']) + "\n"


def run(block: str, cwd: Path, env: dict) -> str:
    out = subprocess.run(["bash", "-c", block], cwd=cwd, env={**os.environ, **env},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


TOOLS = ("bash", "tar", "split", "ls", "wc", "du", "tail", "cut", "head", "od", "tr", "cat", "mkdir", "rm",
         "gzip", "sort")
MAGIC = {"xz": b"\xfd7zXZ", "gzip": b"\x1f\x8b"}


def without_xz(tmp_path: Path) -> str:
    """A PATH with the tools the cache block uses, xz left out (a machine without it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    return str(bin_dir)


@pytest.mark.skipif(shutil.which("tar") is None or shutil.which("split") is None, reason="needs tar and split")
@pytest.mark.parametrize("packer", ["xz", "gzip"])
def test_caches_round_trip_without_binaries(tmp_path, packer):
    """Packed with xz where the machine has it, else gzip; unpacked by the parts' magic bytes."""
    if packer == "xz" and shutil.which("xz") is None:
        pytest.skip("needs xz")
    cache, out, work = tmp_path / "cache", tmp_path / "out", tmp_path / "work"
    (cache / "inductor" / "ab").mkdir(parents=True)
    (cache / "triton" / "xy").mkdir(parents=True)
    out.mkdir()
    (work / ".gpucache").mkdir(parents=True)
    (cache / "inductor" / "ab" / "kernel.best_config").write_text('{"XBLOCK": 128}')
    (cache / "triton" / "xy" / "kernel.autotune.json").write_text('{"BLOCK_M": 64}')
    (cache / "triton" / "xy" / "kernel.cubin").write_bytes(os.urandom(4096))
    env = {"KUNLUNC_GPU_CACHE": str(cache), "OUT": str(out)}
    if packer == "gzip":
        env["PATH"] = without_xz(tmp_path)
    block = cache_block()

    assert "saved" not in run(block, work, env)           # without SAVE_CACHE nothing is packed
    assert not list(out.glob("cache.part*"))
    log = run(block, work, {**env, "SAVE_CACHE": "1"})
    assert "compile caches saved" in log and "body ran" in log
    parts = sorted(out.glob("cache.part*"))
    assert len(parts) == 1 and parts[0].read_bytes().startswith(MAGIC[packer])
    for part in parts:
        shutil.copy(part, work / ".gpucache" / part.name)

    shutil.rmtree(cache)
    log = run(block, work, env)
    assert "compile caches restored" in log
    assert (cache / "inductor" / "ab" / "kernel.best_config").read_text() == '{"XBLOCK": 128}'
    assert (cache / "triton" / "xy" / "kernel.autotune.json").read_text() == '{"BLOCK_M": 64}'
    assert not (cache / "triton" / "xy" / "kernel.cubin").exists()    # binaries are rebuilt there


def test_each_tree_gets_its_own_cache(tmp_path):
    """Without KUNLUNC_GPU_CACHE the cache directory follows the tree the script runs in: an A/B's
    two trees must not share torch.compile's caches, which key a traced Triton op by kernel source
    only (BENCHMARKS.md, seed pooling, twenty-first session)."""
    line = next(line for line in SCRIPT.read_text().splitlines() if line.startswith("CACHE="))
    env = {k: v for k, v in os.environ.items() if k != "KUNLUNC_GPU_CACHE"}

    def cache_of(tree: Path) -> str:
        tree.mkdir(exist_ok=True)
        out = subprocess.run(["bash", "-c", f'{line}\necho "$CACHE"'], cwd=tree, env=env,
                             capture_output=True, text=True, timeout=30, check=True)
        return out.stdout.strip()

    a, b = cache_of(tmp_path / "a"), cache_of(tmp_path / "b")
    assert a.startswith("/tmp/kunlunc-cache/tree-") and len(a) > len("/tmp/kunlunc-cache/tree-")
    assert a != b and cache_of(tmp_path / "a") == a
