"""bench/sustained_configs.py's CPU-side parts (the timing itself needs the H200)."""
import sys
from pathlib import Path

import triton

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import sustained_configs as sc  # noqa: E402


def test_arguments_and_labels():
    args = sc.parse_args(["--shape", "1", "--causal", "--warm-s", "0.5"])
    assert (args.shape, args.causal, args.warm_s, args.cool_s) == (1, True, 0.5, 5.0)
    config = triton.Config({"BLOCK_M": 64, "BLOCK_N": 32}, num_warps=4, num_stages=3)
    assert sc.config_label(config) == "64 x 32, 4 warps, 3 stages"


def test_without_a_gpu_it_says_so_and_fails(capsys, monkeypatch):
    monkeypatch.setattr(sc.torch.cuda, "is_available", lambda: False)
    assert sc.main(["--json", ""]) == 1
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_gpu_state_is_empty_without_nvidia_smi(monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError("nvidia-smi")
    monkeypatch.setattr(sc.subprocess, "run", missing)
    assert sc.gpu_state() == {}
