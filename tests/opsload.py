"""Renders templates/ops.py.j2 for a namespace and imports the result, for tests."""
import atexit
import functools
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import jinja2

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def render_ops(namespace: str) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("ops.py.j2").render(namespace=namespace)


def write_ops(namespace: str) -> Path:
    """Writes the rendered module to a fresh temp dir (removed at exit); returns its path."""
    directory = Path(tempfile.mkdtemp(prefix=f"{namespace}_"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = directory / "ops.py"
    path.write_text(render_ops(namespace))
    return path


def import_file(path: Path, module_name: str) -> ModuleType:
    """Imports path as module_name (registered in sys.modules, as a real import would be)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@functools.cache
def load_ops(namespace: str) -> ModuleType:
    """The rendered ops module for namespace, imported once per process."""
    return import_file(write_ops(namespace), f"_kunlunc_ops_{namespace}")
