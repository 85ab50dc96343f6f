"""Helpers for tests: compile specs, build packages into temp dirs, import them."""
from __future__ import annotations

import importlib
import importlib.util
import itertools
import sys
from pathlib import Path

from kunlun_compiler.codegen import render
from kunlun_compiler.compiler import compile_spec
from kunlun_compiler.cost import estimate
from kunlun_compiler.loader import load_spec, load_spec_text
from kunlun_compiler.writer import write_package

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
_counter = itertools.count()


def spec_paths() -> list[Path]:
    return sorted(SPECS.glob("*.yaml"))


def compiled(path_or_spec):
    spec = load_spec(path_or_spec) if isinstance(path_or_spec, (str, Path)) else path_or_spec
    return compile_spec(spec, verify="each")      # the IR is checked after every pass


def build_and_import(spec, out_dir: Path, spec_file: str = "spec.yaml"):
    """Render and write the package for `spec` under out_dir, import it under a unique name."""
    c = compiled(spec)
    target = write_package(render(c, spec_file), Path(out_dir), c.plan.name)
    return import_package(target, f"_kunlunc_test_{c.plan.name}_{next(_counter)}"), c


def import_package(directory: Path, name: str):
    """Imports the generated package in `directory` as module `name` (registered in sys.modules,
    its relative imports resolved inside directory): not under its own name, which other tests
    import from elsewhere."""
    mod_spec = importlib.util.spec_from_file_location(name, directory / "__init__.py",
                                                      submodule_search_locations=[str(directory)])
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = module
    mod_spec.loader.exec_module(module)
    return module


def tiny_package(tmp_path: Path, monkeypatch, name: str):
    """kunlun_tiny's package written under tmp_path as `name` and importable for the test (its
    own name, so that its modules import as a user's would): (the package, its bench module)."""
    c = compiled(SPECS / "kunlun_tiny.yaml")
    write_package(render(c, "kunlun_tiny.yaml"), tmp_path, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(name), importlib.import_module(f"{name}.bench")


def full_length(spec):
    """The same spec with every avg_len at max_len (what a full=True batch runs)."""
    events = {name: ev.model_copy(update={"avg_len": ev.max_len}) for name, ev in spec.features.events.items()}
    features = spec.features.model_copy(update={"events": events})
    return spec.model_copy(update={"features": features})


def spec_text(text: str):
    return load_spec_text(text, "test.yaml")


__all__ = ["spec_paths", "compiled", "build_and_import", "import_package", "tiny_package", "full_length", "estimate",
           "load_spec", "spec_text"]
