"""The command line: exit codes, output shapes, atomic and safe builds, the installed wheel."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from genutil import ROOT, SPECS
from kunlun_compiler import cli
from kunlun_compiler.writer import OutputError, write_package

TINY = str(SPECS / "kunlun_tiny.yaml")


def _listing(out: Path) -> list[str]:
    """What a build leaves in OUT, apart from its lock file."""
    return sorted(p.name for p in out.iterdir() if not p.name.endswith(".lock"))


def run(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "kunlun_compiler.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def test_validate_ok_and_bad(tmp_path):
    assert run("validate", TINY).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(TINY).read_text().replace("heads: 2, layers: 2", "heads: true, layers: 2"))
    p = run("validate", str(bad))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert f"{bad}:21:" in p.stderr and "features.events.click.tower.heads" in p.stderr


def test_schema_is_json():
    p = run("schema")
    schema = json.loads(p.stdout)
    assert p.returncode == 0 and "features" in schema["properties"]


def test_inspect_json_keys(capsys):
    assert cli.main(["inspect", TINY, "--json", "--target", "h200", "--batch-size", "32"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("params", "flops_fwd_per_example", "flops_fwd_per_step", "flops_train_per_step",
                "est_step_time_s", "est_mfu", "ops"):
        assert key in out, key
    assert out["batch_size"] == 32 and out["target"] == "h200"
    assert out["flops_fwd_per_step"] == 32 * out["flops_fwd_per_example"]
    assert {"id", "kind", "flops", "bytes", "params", "time_s"} <= set(out["ops"][0])
    assert [p["name"] for p in out["passes"]] == ["compskip", "tower_depth", "prune_readouts", "fuse", "batch_kernels",
                                                  "select_kernels"]
    assert out["stream"] == "fp32"
    assert cli.main(["inspect", TINY, "--json", "--target", "h200", "--batch-size", "32", "--stream", "compute"]) == 0
    half = json.loads(capsys.readouterr().out)
    assert half["stream"] == "compute" and half["est_gpu_time_s"] < out["est_gpu_time_s"]
    assert half["flops_train_per_step"] == out["flops_train_per_step"]
    assert cli.main(["inspect", TINY, "--target", "h200", "--stream", "compute"]) == 0
    assert "the towers' stream in the compute dtype" in capsys.readouterr().out.splitlines()[0]


def test_inspect_fastest_setup(capsys):
    """The line on the fastest measured setup prices the compute stream, compiled, packed, with no
    host time (one CUDA graph), whichever --stream the table itself prices."""
    from kunlun_compiler.cost import estimate
    from kunlun_compiler.report import seconds
    args = ["inspect", TINY, "--target", "h200", "--batch-size", "64"]
    assert cli.main([*args, "--json"]) == 0
    fast = json.loads(capsys.readouterr().out)["fastest_setup"]
    est = estimate(cli._compile(TINY, "h200").graph, "h200", 64, stream="compute")
    assert fast["step_s"] == est.est_gpu_time_compiled_packed_s and fast["stream"] == "compute"
    assert fast["mfu"] == pytest.approx(est.flops_train_per_step / (fast["step_s"] * 989e12), rel=1e-12)
    assert fast["step_s"] < est.est_step_time_compiled_s                 # packed and host-free: faster
    for stream in ("fp32", "compute"):
        assert cli.main([*args, "--stream", stream]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[-1].startswith(f"fastest setup         {seconds(fast['step_s'])} a step, MFU {fast['mfu']:.1%}")
        assert next(x for x in lines if x.startswith("group ")).endswith("fastest")
        gdpa = next(x for x in lines if x.startswith("gdpa "))      # the group row: its last column
        assert gdpa.split()[-2:] == seconds(est.groups()["gdpa"]["time_compiled_packed_s"]).split()
    assert cli.main(["inspect", TINY, "--target", "cpu"]) == 0
    assert "fastest setup" not in capsys.readouterr().out               # no CUDA graph on the CPU


def test_inspect_table(capsys):
    assert cli.main(["inspect", TINY, "-v"]) == 0
    text = capsys.readouterr().out
    assert "estimated MFU" in text and "l0_click_pffn" in text and "gdpa:torch" in text and "compskip" in text
    # two experts of one token count and one Wukong layer: their 6 + 6 matmul-class ops run as 6
    # batched kernels, beside the block's `project`
    interaction = next(line for line in text.splitlines() if line.startswith("l0_interaction "))
    assert "batched: 13 mm in 7" in interaction, interaction


def test_bad_arguments_exit_nonzero(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["inspect", TINY, "--batch-size", "0"])
    assert exc.value.code != 0


def test_build_writes_package(tmp_path, capsys):
    assert cli.main(["build", TINY, "-o", str(tmp_path)]) == 0
    files = sorted(p.name for p in (tmp_path / "kunlun_tiny").iterdir())
    assert files == ["__init__.py", "__main__.py", "bench.py", "config.py", "data.py", "estimate.json", "kernels",
                     "kunlunc.json", "layers.py", "model.py", "ops.py", "triton_ops.py"]
    assert _listing(tmp_path) == ["kunlun_tiny"]                       # no temporary left behind
    head = (tmp_path / "kunlun_tiny" / "model.py").read_text().splitlines()[0]
    assert head.startswith("# @generated by kunlunc")


def test_bad_spec_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kunlun: 1\nname: x\n")
    p = run("build", str(bad), "-o", str(tmp_path / "out"))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()


def test_failed_write_leaves_previous_output(tmp_path):
    assert cli.main(["build", TINY, "-o", str(tmp_path), "-q"]) == 0
    snapshot = lambda: {p: p.read_bytes() for p in (tmp_path / "kunlun_tiny").rglob("*") if p.is_file()}  # noqa: E731
    before = snapshot()
    files = {"a.py": "x = 1\n", "kunlunc.json": "{}", "zz.py": None}    # the third write fails
    with pytest.raises(TypeError):
        write_package(files, tmp_path, "kunlun_tiny")
    assert snapshot() == before
    assert _listing(tmp_path) == ["kunlun_tiny"]


def test_refuses_foreign_directory(tmp_path, capsys):
    foreign = tmp_path / "kunlun_tiny"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert cli.main(["build", TINY, "-o", str(tmp_path)]) == 1
    assert "not written by kunlunc" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "mine"
    assert cli.main(["build", TINY, "-o", str(tmp_path), "--force", "-q"]) == 0
    assert not (foreign / "notes.txt").exists() and (foreign / "kunlunc.json").exists()
    with pytest.raises(OutputError):
        write_package({"a": "b"}, tmp_path / "kunlun_tiny" / "model.py", "x")   # a file as OUT


def test_wheel_ships_templates(tmp_path):
    """`pip install .` (not editable) must carry the templates: build the wheel, run from it."""
    wheels = tmp_path / "wheels"
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0 and "Could not find a version" in p.stderr + p.stdout:
        pytest.skip("no package index reachable to fetch the build backend")
    assert p.returncode == 0, p.stderr
    (wheel,) = wheels.glob("kunlunc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kunlun_compiler/templates/ops.py.j2" in names
    assert "kunlun_compiler/templates/package/model.py.j2" in names
    assert "kunlun_compiler/calibration/README.md" in names            # the calibration folder ships
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import kunlun_compiler; print(kunlun_compiler.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env).stdout
    assert where.startswith(str(site)), where          # the wheel, not the checkout
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-c", "import sys; from kunlun_compiler.cli import main; sys.exit(main(sys.argv[1:]))",
                        "build", TINY, "-o", str(out), "-q"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert (out / "kunlun_tiny" / "model.py").read_text() == (ROOT / "generated" / "kunlun_tiny" / "model.py").read_text()
