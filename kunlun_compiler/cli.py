"""The `kunlunc` command line: validate, schema, inspect, build.

Any bad spec gets its located error lines on stderr and exit status 1, never a traceback;
nothing is written unless the whole build succeeded.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
from pathlib import Path

from . import __version__
from .errors import SpecError
from .hardware import HARDWARE


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with _few_collections():
            return args.run(args)
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except BuildError as exc:
        print(f"kunlunc: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


@contextlib.contextmanager
def _few_collections():
    """A build allocates ~10^5 small objects (ops, cost rows) that all live until it returns and
    form no garbage cycles worth finding; at the default thresholds the cyclic GC rescans them
    hundreds of times (a quarter of a large build, more inside a process that holds much else).
    Collect rarely while a command runs, as mypy does; restore the caller's thresholds after."""
    old = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)


class BuildError(Exception):
    """A build that cannot proceed for a reason outside the spec (e.g. the output directory)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kunlunc", description="Compile Kunlun model specs into PyTorch packages.")
    p.add_argument("--version", action="version", version=f"kunlunc {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check a spec; print nothing but errors")
    v.add_argument("spec")
    v.set_defaults(run=_validate)

    s = sub.add_parser("schema", help="print the spec's JSON Schema (for editors)")
    s.set_defaults(run=_schema)

    i = sub.add_parser("inspect", help="FLOPs, parameters, estimated time and MFU per block")
    i.add_argument("spec")
    i.add_argument("--target", choices=sorted(HARDWARE), help="hardware (default: the spec's compile.target)")
    i.add_argument("--batch-size", type=_positive, help="examples per step (default: the spec's batch_size)")
    i.add_argument("--stream", choices=("fp32", "compute"), default="fp32",
                   help="price the generated Model(stream=...): the towers' residual stream in fp32 "
                        "(default) or in the compute dtype")
    i.add_argument("--json", action="store_true", help="one JSON object, with every op")
    i.add_argument("-v", "--verbose", action="store_true", help="also show what each pass changed")
    i.set_defaults(run=_inspect)

    b = sub.add_parser("build", help="generate the model package OUT/<name>/")
    b.add_argument("spec")
    b.add_argument("-o", "--out", default="generated", help="output directory (default: generated)")
    b.add_argument("--force", action="store_true", help="replace OUT/<name> even if kunlunc did not write it")
    b.add_argument("-q", "--quiet", action="store_true")
    b.set_defaults(run=_build)
    return p


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {n}")
    return n


def _compile(path: str, target: str | None = None):
    from .compiler import compile_spec
    from .loader import load_spec
    return compile_spec(load_spec(path), target)


def _validate(args) -> int:
    from .loader import load_spec
    load_spec(args.spec)
    return 0


def _schema(args) -> int:
    from .spec import json_schema
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0


def _inspect(args) -> int:
    from .cost import estimate
    from .report import fastest_setup, inspect_text
    compiled = _compile(args.spec, args.target)
    est = estimate(compiled.graph, args.target, args.batch_size, stream=args.stream)
    fastest = est if args.stream == "compute" else estimate(compiled.graph, args.target, args.batch_size,
                                                            stream="compute")
    if args.json:
        out = est.to_json()
        out["fastest_setup"] = fastest_setup(fastest)
        out["passes"] = [{"name": r.name, "changed": r.changed, "stats": r.stats, "notes": list(r.notes)}
                         for r in compiled.reports]
        out["canonical"] = list(compiled.canonical_notes)
        out["hardware"] = _hardware_json(est.target)
        print(json.dumps(out, indent=1, sort_keys=True))
    else:
        print(inspect_text(compiled, est, verbose=args.verbose, fastest=fastest))
    return 0


def _hardware_json(target: str) -> dict:
    """The factors the estimate used and where they come from (a calibration file or guesses)."""
    from .hardware import get
    hw = get(target)
    calibration = None if hw.calibration is None else \
        {"file": hw.calibration.file, "gpu": hw.calibration.gpu, "date": hw.calibration.date}
    return {"source": hw.source, "efficiency": dict(hw.efficiency), "launch_s": hw.launch_s,
            "host_s": dict(hw.host_s),
            "matmul_shapes": [{"in_features": i, "out_features": o, "efficiency": e}
                              for (i, o), e in sorted(hw.matmul_shapes.items())],
            "calibration": calibration}


def _build(args) -> int:
    from .codegen import render
    from .writer import OutputError, write_package
    compiled = _compile(args.spec)
    files = render(compiled, args.spec)
    try:
        target = write_package(files, Path(args.out), compiled.plan.name, force=args.force)
    except OutputError as exc:
        raise BuildError(str(exc)) from None
    if not args.quiet:
        print(f"wrote {target}/ ({len(files)} files): import it as `{compiled.plan.name}` with {Path(args.out)} on sys.path")
    return 0


if __name__ == "__main__":
    sys.exit(main())
