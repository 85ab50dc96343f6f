"""bench/gpu_test_split.py: the gpu-marked tests split by file into groups of about equal size, for
`bash bench/gpu_run.sh tests2` (one pytest run a GPU)."""
from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import gpu_test_split  # noqa: E402


def test_split_puts_each_file_in_the_lightest_group():
    counts = {"a.py": 23, "b.py": 22, "c.py": 20, "d.py": 9, "e.py": 3, "f.py": 1}
    assert gpu_test_split.split(counts, 2) == [["a.py", "d.py", "e.py", "f.py"], ["b.py", "c.py"]]
    assert gpu_test_split.split(counts, 1) == [["a.py", "b.py", "c.py", "d.py", "e.py", "f.py"]]
    assert gpu_test_split.split({"x.py": 1}, 3) == [["x.py"], [], []]


def test_collects_the_gpu_tests_of_the_suite_by_file():
    counts = gpu_test_split.collected([str(ROOT / "tests" / "test_triton_gdpa.py"),
                                       str(ROOT / "tests" / "test_benchutil.py")])
    by_name = {path.rsplit("/", 1)[-1]: n for path, n in counts.items()}
    assert set(by_name) == {"test_triton_gdpa.py", "test_benchutil.py"}   # files without gpu tests: none
    assert by_name["test_benchutil.py"] == 1 and by_name["test_triton_gdpa.py"] >= 10
