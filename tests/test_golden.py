"""generated/ holds the current build of every spec in specs/ (golden files)."""
from __future__ import annotations

import difflib

import pytest

from genutil import ROOT, compiled, import_package, spec_paths
from kunlun_compiler.codegen import render

GENERATED = ROOT / "generated"


@pytest.mark.parametrize("path", spec_paths(), ids=lambda p: p.stem)
def test_generated_is_current(path):
    c = compiled(path)
    files = render(c, str(path.relative_to(ROOT)))
    target = GENERATED / c.plan.name
    fix = f"regenerate with: kunlunc build {path.relative_to(ROOT)}"
    assert target.is_dir(), f"{target} is missing; {fix}"
    on_disk = sorted(p.relative_to(target).as_posix() for p in target.rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts)
    assert on_disk == sorted(files), f"{target}: files differ; {fix}"
    for name, text in files.items():
        old = (target / name).read_text(encoding="utf-8")
        if old != text:
            diff = "".join(list(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                                     f"{target.name}/{name} (committed)", f"{name} (rebuilt)"))[:80])
            pytest.fail(f"{target / name} is stale; {fix}\n{diff}")


def test_no_orphan_packages():
    names = {compiled(p).plan.name for p in spec_paths()}
    orphans = [p.name for p in GENERATED.iterdir() if p.is_dir() and p.name not in names and p.name != "__pycache__"]
    assert not orphans, f"generated/ holds builds of no spec in specs/: {orphans}"


def test_build_is_deterministic():
    path = spec_paths()[0]
    assert render(compiled(path), "a.yaml") == render(compiled(path), "a.yaml")


@pytest.mark.parametrize("path", spec_paths(), ids=lambda p: p.stem)
def test_no_parameter_is_a_vector_padded_with_ones(path):
    """No generated parameter is shaped [1, ..., 1, width]: a vector that broadcasts is stored as
    [width]. (kunlun_6g's one-expert LayerNorm affines were [1, 1, 1, 384], and under
    torch.compile on CUDA inductor returned their gradient as [384]: the backward failed,
    pytorch/pytorch#178080.) Built on the meta device: shapes only."""
    import torch
    name = compiled(path).plan.name
    package = import_package(GENERATED / name, f"_kunlunc_golden_{name}")
    with torch.device("meta"):
        model = package.Model()
    padded = [(n, tuple(p.shape)) for n, p in model.named_parameters()
              if p.dim() >= 2 and all(d == 1 for d in p.shape[:-1])]
    assert not padded, padded
