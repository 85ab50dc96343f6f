"""The A/B run in one device call: bench/ab_prepare.sh puts a baseline commit's tree in tmp/base,
and `bash bench/gpu_run.sh ab` refuses to start without one (the GPU part needs a GPU)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("tar") is None,
                                reason="needs git and tar")


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_prepare_puts_the_commits_tree_in_tmp_base(tmp_path):
    repo = tmp_path / "repo"
    (repo / "bench" / "results").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "bench" / "gpu_run.sh").write_text("echo v1\n")
    (repo / "bench" / "results" / "big.log").write_text("old output\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "bench" / "gpu_run.sh").write_text("echo v2\n")
    git(repo, "commit", "-qam", "v2")
    (repo / "tmp" / "base" / "stale").mkdir(parents=True)       # an older baseline: replaced

    out = subprocess.run(["bash", str(BENCH / "ab_prepare.sh"), first], cwd=repo, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    base = repo / "tmp" / "base"
    assert (base / "bench" / "gpu_run.sh").read_text() == "echo v1\n"
    assert (base / ".ab-commit").read_text().strip() == first
    assert not (base / "bench" / "results").exists() and not (base / "stale").exists()
    assert "bench/gpu_run.sh ab" in out.stdout

    bad = subprocess.run(["bash", str(BENCH / "ab_prepare.sh"), "no-such-commit"], cwd=repo,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "no commit no-such-commit" in bad.stderr
    assert (base / ".ab-commit").read_text().strip() == first   # the baseline is left as it was


def test_ab_refuses_without_a_baseline_tree(tmp_path):
    out = subprocess.run(["bash", str(BENCH / "gpu_run.sh"), "ab"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60,
                         env={**os.environ, "OUT": str(tmp_path / "out"),
                              "KUNLUNC_GPU_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 1
    assert "no baseline tree in tmp/base" in out.stdout and "ab_prepare.sh" in out.stdout
