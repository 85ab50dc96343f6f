"""bench/first_step_check.py: the option parsing it does before it needs a GPU."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import first_step_check as fsc  # noqa: E402


def test_inductor_options_parse():
    assert fsc._option("triton.autotune_pointwise=False") == ("triton.autotune_pointwise", False)
    assert fsc._option("max_autotune=True") == ("max_autotune", True)
    assert fsc._option("triton.num_configs=-3") == ("triton.num_configs", -3)
    assert fsc._option("mode=x=y") == ("mode", "x=y")
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        fsc._option("triton.autotune_pointwise")


def test_functorch_options_are_set_and_checked():
    import torch._functorch.config as functorch_config
    before = functorch_config.donated_buffer
    # torch's config.patch restores the option; pytest's monkeypatch (9.2+) would delete it from a
    # config module on undo (the value lives outside the module's __dict__), breaking later tests
    with functorch_config.patch(donated_buffer=True):
        assert fsc.set_functorch_options(["donated_buffer=False"]) == {"donated_buffer": False}
        assert functorch_config.donated_buffer is False
        with pytest.raises(SystemExit, match="no option 'donated_bufer'"):
            fsc.set_functorch_options(["donated_bufer=False"])
    assert functorch_config.donated_buffer == before
