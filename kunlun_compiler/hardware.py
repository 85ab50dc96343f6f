"""Hardware peaks for estimates, from vendor datasheets (dense, no sparsity).

MFU is always quoted against `peak_bf16` (the datasheet's dense bf16 tensor rate), whatever the
spec's dtype, as kunlun-model.md says. `efficiency` is the fraction of peak a well-written kernel
reaches on this part; it starts at a conservative guess and is meant to be calibrated from
measurements (bench/).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Hardware:
    name: str
    description: str
    peak_flops: dict = field(repr=False)  # dtype -> FLOP/s (dense)
    mem_bw: float                         # bytes/s, HBM datasheet
    # fraction of peak reached by a GEMM-like op / by an attention kernel / of HBM bandwidth
    efficiency: dict = field(repr=False)
    launch_s: float = 4e-6                # per-op overhead floor (kernel launch)

    @property
    def peak_bf16(self) -> float:
        return self.peak_flops["bf16"]

    def peak(self, dtype: str) -> float:
        return self.peak_flops[dtype]


_DEFAULT_EFF = MappingProxyType({"matmul": 0.70, "attention": 0.45, "memory": 0.80})

# H100/H200 SXM: 989.4 TFLOP/s bf16/fp16 dense, 66.9 fp32 (non tensor core) — NVIDIA datasheets.
# H100 SXM 3.35 TB/s HBM3, H200 4.8 TB/s HBM3e. B200: 2.25 PFLOP/s dense bf16, 8 TB/s.
# A100 SXM 80GB: 312 TFLOP/s bf16, 19.5 fp32, 2.039 TB/s. "cpu" is a nominal 2-core host so
# that `--target cpu` gives an order of magnitude, not a datasheet figure.
HARDWARE: MappingProxyType = MappingProxyType({
    "h100": Hardware("h100", "NVIDIA H100 SXM", {"bf16": 989e12, "fp16": 989e12, "fp32": 66.9e12},
                     3.35e12, _DEFAULT_EFF),
    "h200": Hardware("h200", "NVIDIA H200 SXM", {"bf16": 989e12, "fp16": 989e12, "fp32": 66.9e12},
                     4.8e12, _DEFAULT_EFF),
    "b200": Hardware("b200", "NVIDIA B200", {"bf16": 2250e12, "fp16": 2250e12, "fp32": 80e12},
                     8.0e12, _DEFAULT_EFF),
    "a100": Hardware("a100", "NVIDIA A100 SXM", {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12},
                     2.039e12, _DEFAULT_EFF),
    "cpu": Hardware("cpu", "nominal 2-core CPU (fp32 everywhere)",
                    {"bf16": 0.1e12, "fp16": 0.1e12, "fp32": 0.1e12}, 20e9,
                    MappingProxyType({"matmul": 0.5, "attention": 0.3, "memory": 0.5}), 2e-6),
})


def _validate() -> None:
    for key, hw in HARDWARE.items():
        assert key == hw.name, key
        assert set(hw.peak_flops) == {"bf16", "fp16", "fp32"}, key
        assert set(hw.efficiency) == {"matmul", "attention", "memory"}, key
        assert all(0 < v <= 1 for v in hw.efficiency.values()), key


_validate()


def get(name: str) -> Hardware:
    try:
        return HARDWARE[name]
    except KeyError:
        raise KeyError(f"unknown target {name!r}; known: {', '.join(HARDWARE)}") from None
