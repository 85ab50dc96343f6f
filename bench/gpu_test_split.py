"""The `gpu`-marked tests split into groups of about equal size, by file: one pytest run a GPU.

    python3 bench/gpu_test_split.py [N] [PATH ...]      # N groups (default 2), one line each

pytest collects the tests (no GPU needed to collect them); each file goes whole to the group with
the fewest tests so far, largest file first. `bash bench/gpu_run.sh tests2` runs the two groups on
a two-GPU machine at once.
"""
from __future__ import annotations

import subprocess
import sys
from collections import Counter


def split(counts: dict[str, int], n: int) -> list[list[str]]:
    """Files (with their test counts) into n groups: largest first, each to the lightest group
    (ties: the first); a group's files in the order they were given to it."""
    groups: list[list[str]] = [[] for _ in range(n)]
    sizes = [0] * n
    for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        lightest = sizes.index(min(sizes))
        groups[lightest].append(name)
        sizes[lightest] += count
    return groups


def collected(paths: list[str]) -> dict[str, int]:
    """{test file: its `gpu`-marked tests} as pytest collects them."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "gpu",
                          "-p", "no:cacheprovider", *paths], capture_output=True, text=True)
    ids = [line for line in out.stdout.splitlines() if "::" in line]
    if not ids:
        raise SystemExit(f"gpu_test_split: pytest collected no gpu tests:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return dict(Counter(line.split("::")[0] for line in ids))


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv and argv[0].isdigit() else 2
    paths = argv[1:] if argv and argv[0].isdigit() else argv
    for group in split(collected(paths or ["tests"]), n):
        print(" ".join(group))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
