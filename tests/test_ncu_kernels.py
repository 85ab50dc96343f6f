"""bench/ncu_kernels.py on the CPU (Triton's interpreter, tiny shapes, no profiler range): every
case builds from its kernel file's host function and runs, and a bad --only is an argparse error."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import ncu_kernels  # noqa: E402

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU run is the profiled one")


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("case", ncu_kernels.CASES)
def test_each_case_runs_its_kernels(case, packed):
    out = ncu_kernels.build(case, ncu_kernels.CPU_SHAPES, "cpu", torch.float32, packed=packed)()
    tensors = [t for t in (out if isinstance(out, tuple) else (out,)) if isinstance(t, torch.Tensor)]
    assert tensors and all(torch.isfinite(t[t > float("-inf")]).all() for t in tensors)
    family = case.split("_")[0]
    s = ncu_kernels.CPU_SHAPES[family]
    if case.endswith("_bwd") and family != "seed":
        dq = tensors[0]                                                              # shaped like q
        assert dq.shape[-2:] == (s["H"], s["D"]) if packed else dq.shape == (s["B"], s["H"], s["T"], s["D"])
        if packed:
            assert 0 < dq.shape[0] < s["B"] * s["T"]                                 # jagged rows


def test_main_and_its_errors(capsys):
    assert ncu_kernels.main(["--only", "seed_fwd,window_fwd", "--warmup", "1", "--layout", "packed"]) == 0
    out = capsys.readouterr().out
    assert "warmed up seed_fwd" in out and "profiled: seed_fwd, window_fwd" in out
    with pytest.raises(SystemExit) as exit_:
        ncu_kernels.main(["--only", "seed_fwd,nope"])
    assert exit_.value.code == 2 and "unknown case(s) nope" in capsys.readouterr().err
