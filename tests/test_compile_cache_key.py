"""The compile caches' key covers each kernel file, host code and autotune configs included.

torch.compile's AOTAutograd cache keys a graph's Triton ops by the source of the kernels they
launch and the globals those read (torch's user_defined_triton_kernel_transitive_closure_source_code),
not by the autotuner's config lists or the host code around the kernels. On the H200 (twenty-first
session, BENCHMARKS.md) a warm cache ran the seed-pooling backward with a config the edited file no
longer offered, 1.6x slower. Each kernel now reads _FILE_DIGEST, a digest of its whole file.
"""
import re
import sys
from pathlib import Path

import pytest

from opsload import import_file

pytest.importorskip("torch._inductor.codegen.wrapper")
from torch._inductor.codegen.wrapper import (  # noqa: E402
    user_defined_triton_kernel_transitive_closure_source_code as _closure,
)

KERNELS = Path(__file__).resolve().parent.parent / "templates" / "kernels"
LAUNCHED = {"gdpa.py": ["_gdpa_fwd_kernel", "_gdpa_bwd_dkdv_kernel", "_gdpa_bwd_dq_kernel"],
            "window_attention.py": ["_fwd_kernel", "_bwd_dkdv_kernel", "_bwd_dq_kernel"],
            "seed_pooling.py": ["_fwd_kernel", "_combine_kernel", "_bwd_kernel"]}


@pytest.fixture
def gpu_build(monkeypatch):
    """Kernel files load as compiled for a GPU (JITFunctions, not the interpreter's, whose kernels
    torch.compile never caches); nothing is launched."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


@pytest.mark.parametrize("file", sorted(LAUNCHED))
def test_every_launched_kernel_reads_the_digest(file, gpu_build):
    """Every @triton.jit kernel the host code launches (a def named *_kernel) reads _FILE_DIGEST,
    and the source torch keys its cache by carries the digest's value."""
    code = (KERNELS / file).read_text()
    defined = re.findall(r"@triton\.jit(?:\(.*\))?\ndef (_\w*kernel)\(", code)
    assert sorted(defined) == sorted(LAUNCHED[file]), "a new kernel: add it here and make it read _FILE_DIGEST"
    module = import_file(KERNELS / file, f"_cache_key_{file[:-3]}")
    for name in defined:
        text = _closure(getattr(module, name))
        assert f"_FILE_DIGEST = tl.constexpr({module._FILE_DIGEST.value!r})" in text, name


def test_an_edit_of_the_config_lists_changes_the_key(tmp_path, gpu_build):
    """Two copies of seed_pooling.py differing only in the backward's config list: the same kernel
    source, different keys."""
    code = (KERNELS / "seed_pooling.py").read_text()
    triples = re.search(r"^_BWD_TRIPLES = .*$", code, re.M).group(0)
    edited = code.replace(triples, "_BWD_TRIPLES = [(32, 8, 2), (32, 4, 2)]")
    assert edited != code
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "seed_pooling.py").write_text(code)
    (tmp_path / "b" / "seed_pooling.py").write_text(edited)
    a = import_file(tmp_path / "a" / "seed_pooling.py", "_cache_key_a")
    b = import_file(tmp_path / "b" / "seed_pooling.py", "_cache_key_b")
    assert a._bwd_kernel.src == b._bwd_kernel.src                  # what torch's key used to see
    assert _closure(a._bwd_kernel) != _closure(b._bwd_kernel)      # what it sees now
    assert _closure(a._fwd_kernel) != _closure(b._fwd_kernel)
    same = import_file(KERNELS / "seed_pooling.py", "_cache_key_same")   # and an unedited file keeps its key
    assert _closure(same._bwd_kernel) == _closure(a._bwd_kernel)


def test_a_kernel_file_without_a_readable_file_still_imports(gpu_build):
    """Imported from somewhere its __file__ cannot be read (a zip, say), a kernel file keys the
    caches as torch would without the digest (0) instead of failing to import."""
    import linecache
    import types

    path = "/nonexistent/kunlunc/seed_pooling.py"
    code = (KERNELS / "seed_pooling.py").read_text()
    lines = code.splitlines(keepends=True)
    linecache.cache[path] = (len(code), None, lines, path)   # Triton's JIT reads kernel source so
    module = types.ModuleType("_cache_key_zipped")
    module.__file__ = path
    sys.modules[module.__name__] = module
    try:
        exec(compile(code, path, "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
        linecache.cache.pop(path, None)
    assert module._FILE_DIGEST.value == 0


def test_generated_kernel_files_name_the_ops_code_that_launches_them(monkeypatch):
    """A generated package's kernel files carry the digest of its ops.py and triton_ops.py, so
    their _FILE_DIGEST (and torch.compile's key) changes when a rebuild changes that host code,
    which the caches do not see otherwise; an edit of triton_ops.py's template alone changes
    every kernel file of the package."""
    sys.path.insert(0, str(KERNELS.parent.parent / "tests"))
    from genutil import compiled, spec_paths
    from kunlun_compiler import codegen

    path = next(p for p in spec_paths() if p.stem == "kunlun_tiny")
    files = codegen.render(compiled(path), "kunlun_tiny.yaml")
    glue = codegen.glue_digest(*(files[n].split("\n", 2)[2] for n in ("ops.py", "triton_ops.py")))
    kernel_files = [n for n in files if n.startswith("kernels/") and n != "kernels/__init__.py"]
    assert len(kernel_files) == 6           # the five kernel files and bound_launch.py
    for name in kernel_files:
        assert f"(sha256 {glue})" in files[name].splitlines()[2], name

    edited = codegen.environment().from_string((KERNELS.parent / "triton_ops.py.j2").read_text() + "\n# edited\n")
    real_environment = codegen.environment

    def patched():
        e = real_environment()
        original = e.get_template
        e.get_template = lambda name: edited if name == "triton_ops.py.j2" else original(name)
        return e

    monkeypatch.setattr(codegen, "environment", patched)
    rebuilt = codegen.render(compiled(path), "kunlun_tiny.yaml")
    assert rebuilt["triton_ops.py"] != files["triton_ops.py"]
    assert all(rebuilt[n] != files[n] for n in kernel_files)
