"""Hardware peaks for estimates, from vendor datasheets (dense, no sparsity), and measured factors.

MFU is always quoted against `peak_bf16` (the datasheet's dense bf16 tensor rate), whatever the
spec's dtype, as kunlun-model.md says. `efficiency` is the fraction of peak an op reaches on this
part, one factor per kind of work (EFFICIENCY_KEYS); `launch_s` is the per-op overhead. Both start
as conservative guesses; `bench/calibrate.py` measures them on a GPU and writes
`calibration/<target>.json`, which overrides the guesses of that target when this module loads.
A bad calibration file stops the import with a CalibrationError that names the file.

`host_s` is the host (CPU) time a training step spends per host op (HOST_MODES: eager, and
torch.compile per block), fitted by `bench/fit_host.py` from measured host-bound steps and kept in
the same file's "host" object. A step cannot run faster than its host can issue it, so the
estimate is max(GPU time, host time). Targets without a fit have no host term.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

# matmul: GEMM-like ops; attention: unfused attention and kernels run as plain torch; memory: the
# fraction of HBM bandwidth that memory-bound ops reach (norms, sums, autocast casts: calibrate.py
# times LayerNorm and the cast at the specs' shapes); one key per Triton kernel (the fused kinds
# of passes/fuse.py).
KERNEL_KEYS = ("gdpa", "window_attention", "seed_pooling")
EFFICIENCY_KEYS = ("matmul", "attention", "memory") + KERNEL_KEYS
MAX_LAUNCH_S = 1e-3
HOST_MODES = ("eager", "compiled")
MAX_HOST_S = 1e-1
CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message starts with the file's path."""


@dataclass(frozen=True)
class Calibration:
    """Where a target's efficiency factors and launch_s came from: one bench/calibrate.py run."""
    file: str
    gpu: str
    date: str
    matmul_shapes: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Hardware:
    name: str
    description: str
    peak_flops: dict = field(repr=False)  # dtype -> FLOP/s (dense)
    mem_bw: float                         # bytes/s, HBM datasheet
    efficiency: dict = field(repr=False)  # EFFICIENCY_KEYS -> fraction of peak, in (0, 1]
    launch_s: float = 4e-6                # per-op overhead floor (kernel launch)
    calibration: Calibration | None = None  # None: the guesses below
    host_s: dict = field(default_factory=dict, repr=False)  # HOST_MODES -> s per host op; {} unknown

    @property
    def matmul_shapes(self) -> dict:
        """(in_features, out_features) -> measured efficiency of a linear of that shape (the
        calibration's samples); other shapes take efficiency["matmul"]. {} when not calibrated."""
        return self.calibration.matmul_shapes if self.calibration is not None else {}

    @property
    def peak_bf16(self) -> float:
        return self.peak_flops["bf16"]

    def peak(self, dtype: str) -> float:
        return self.peak_flops[dtype]

    @property
    def source(self) -> str:
        """One line on where the efficiency factors come from, for `kunlunc inspect`."""
        if self.calibration is None:
            return f"{self.name} datasheet guesses (not calibrated)"
        c = self.calibration
        return f"{self.name} calibrated on {c.gpu} {c.date} ({Path(c.file).name})"


def _efficiency(matmul: float, attention: float, memory: float) -> MappingProxyType:
    """All six factors; the Triton kernels start at the attention guess until calibrated."""
    return MappingProxyType({"matmul": matmul, "attention": attention, "memory": memory,
                             **{k: attention for k in KERNEL_KEYS}})


_DEFAULT_EFF = _efficiency(matmul=0.70, attention=0.45, memory=0.80)

# H100/H200 SXM: 989.4 TFLOP/s bf16/fp16 dense, 66.9 fp32 (non tensor core) — NVIDIA datasheets.
# H100 SXM 3.35 TB/s HBM3, H200 4.8 TB/s HBM3e. B200: 2.25 PFLOP/s dense bf16, 8 TB/s.
# A100 SXM 80GB: 312 TFLOP/s bf16, 19.5 fp32, 2.039 TB/s. "cpu" is a nominal 2-core host so
# that `--target cpu` gives an order of magnitude, not a datasheet figure.
DATASHEET: MappingProxyType = MappingProxyType({
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
                    _efficiency(matmul=0.5, attention=0.3, memory=0.5), 2e-6),
})


# ---- calibration files ------------------------------------------------------------------------

def _number(value, where: str, what: str, low: float, high: float) -> float:
    """A real number in (low, high]; bools, strings, NaN and infinities are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CalibrationError(f"{where}: {what} must be a number in ({low:g}, {high:g}], found {value!r}")
    if not (math.isfinite(value) and low < value <= high):
        raise CalibrationError(f"{where}: {what} must be in ({low:g}, {high:g}], found {value!r}")
    return float(value)


def _text(data: dict, key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CalibrationError(f"{where}: '{key}' must be a non-empty string, found {value!r}")
    return value


def parse_host(data, where: str) -> dict:
    """The optional "host" object -> {mode: seconds per host op} for every HOST_MODES ({} if absent)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CalibrationError(f"{where}: 'host' must be an object, found {type(data).__name__}")
    return {m: _number(data.get(f"{m}_s_per_op"), where, f"host.{m}_s_per_op", 0, MAX_HOST_S)
            for m in HOST_MODES}


def parse_matmul_shapes(samples, where: str) -> dict:
    """{(in_features, out_features): efficiency} from the "matmul" samples (FLOP-weighted mean
    where a shape was measured more than once); {} without samples."""
    if samples is None:
        return {}
    if not isinstance(samples, list):
        raise CalibrationError(f"{where}: 'samples' must be a list, found {type(samples).__name__}")
    total: dict = {}
    for n, sample in enumerate(samples):
        if not isinstance(sample, dict) or sample.get("measure") != "matmul":
            continue
        what = f"samples[{n}]"
        shape = tuple(int(_number(sample.get(k), where, f"{what}.{k}", 0, 1 << 30))
                      for k in ("in_features", "out_features"))
        eff = _number(sample.get("efficiency"), where, f"{what}.efficiency", 0, 1)
        weight = _number(sample.get("weight_flops", 1.0), where, f"{what}.weight_flops", 0, math.inf)
        acc = total.setdefault(shape, [0.0, 0.0])
        acc[0] += eff * weight
        acc[1] += weight
    return {shape: num / den for shape, (num, den) in total.items()}


def parse_calibration(data, where: str) -> tuple[str, dict, float, dict, Calibration]:
    """Checks a calibration object (bench/calibrate.py's JSON) -> (target, efficiency, launch_s,
    host_s, info); info carries the per-shape matmul factors of the samples.

    `where` names the file in every error. Of the samples only the "matmul" ones are read (a
    factor per linear shape); the other keys (torch, command, ...) are records for people."""
    if not isinstance(data, dict):
        raise CalibrationError(f"{where}: expected a JSON object, found {type(data).__name__}")
    target = data.get("target")
    if target not in DATASHEET:
        raise CalibrationError(f"{where}: unknown target {target!r}; known: {', '.join(DATASHEET)}")
    eff = data.get("efficiency")
    if not isinstance(eff, dict):
        raise CalibrationError(f"{where}: 'efficiency' must be an object with keys {', '.join(EFFICIENCY_KEYS)}")
    missing = [k for k in EFFICIENCY_KEYS if k not in eff]
    unknown = sorted(set(eff) - set(EFFICIENCY_KEYS))
    if missing or unknown:
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
                   ([f"unknown {', '.join(unknown)}"] if unknown else [])
        raise CalibrationError(f"{where}: efficiency keys: {'; '.join(problems)} "
                               f"(expected exactly {', '.join(EFFICIENCY_KEYS)})")
    factors = {k: _number(eff[k], where, f"efficiency.{k}", 0, 1) for k in EFFICIENCY_KEYS}
    launch_s = _number(data.get("launch_s"), where, "launch_s", 0, MAX_LAUNCH_S)
    host = parse_host(data.get("host"), where)
    info = Calibration(where, _text(data, "gpu", where), _text(data, "date", where),
                       MappingProxyType(parse_matmul_shapes(data.get("samples"), where)))
    return target, factors, launch_s, host, info


def read_calibration(path: Path) -> tuple[str, dict, float, dict, Calibration]:
    """parse_calibration of a file, which must be named after its target (`h200.json`)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CalibrationError(f"{path}: cannot read calibration JSON: {exc}") from None
    target, factors, launch_s, host, info = parse_calibration(data, str(path))
    if path.stem != target:
        raise CalibrationError(f"{path}: holds target {target!r}, so it must be named {target}.json")
    return target, factors, launch_s, host, info


def calibrated(hw: Hardware, factors: dict, launch_s: float, host: dict, info: Calibration) -> Hardware:
    return replace(hw, efficiency=MappingProxyType(dict(factors)), launch_s=launch_s,
                   host_s=MappingProxyType(dict(host)), calibration=info)


def load_table(directory: Path | None = CALIBRATION_DIR) -> MappingProxyType:
    """The datasheet table with every `<target>.json` of `directory` applied (none, if it is absent)."""
    table = dict(DATASHEET)
    files = sorted(Path(directory).glob("*.json")) if directory is not None and Path(directory).is_dir() else []
    for path in files:
        target, factors, launch_s, host, info = read_calibration(path)
        table[target] = calibrated(table[target], factors, launch_s, host, info)
    return MappingProxyType(table)


def _validate(table) -> None:
    for key, hw in table.items():
        assert key == hw.name, key
        assert set(hw.peak_flops) == {"bf16", "fp16", "fp32"}, key
        assert set(hw.efficiency) == set(EFFICIENCY_KEYS), key
        assert all(0 < v <= 1 for v in hw.efficiency.values()), key
        assert 0 < hw.launch_s <= MAX_LAUNCH_S, key
        assert set(hw.host_s) in (set(), set(HOST_MODES)), key


_validate(DATASHEET)
HARDWARE: MappingProxyType = load_table()
_validate(HARDWARE)


def get(name: str) -> Hardware:
    try:
        return HARDWARE[name]
    except KeyError:
        raise KeyError(f"unknown target {name!r}; known: {', '.join(HARDWARE)}") from None
