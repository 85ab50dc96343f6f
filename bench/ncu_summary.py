"""One markdown row a kernel from Nsight Compute's text output of bench/ncu_kernels.py.

    python3 bench/ncu_summary.py NCU_TXT [NCU_STALLS_TXT]

NCU_TXT is `ncu --section ...` output (bash bench/gpu_run.sh ncu writes it as $OUT/ncu.txt);
NCU_STALLS_TXT, if given, the run with the stall-reason metrics ($OUT/ncu_stalls.txt), whose
kernels are matched to the first file's in launch order. Prints the table BENCHMARKS.md's "What
the kernels wait on" shows: duration, SM clock, registers and achieved occupancy, issue slots
busy, the busiest pipe as ncu names it, DRAM and L2 throughput, and the largest stall reasons in
cycles an issued instruction. Kernels shorter than --min-us (the dQ partials' sum, casts) are left
out.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HEADER = re.compile(r"^  (\S.*?) \((\d+), (\d+), (\d+)\)x\((\d+), (\d+), (\d+)\), Context", re.M)
STALL = re.compile(r"smsp__average_warps_issue_stalled_(\w+?)_per_issue_active\.ratio\s+(?:\S+\s+)?([\d.,]+)")
PIPE = re.compile(r"(\w[\w ]*?) is the highest-utilized pipeline \(([\d.]+)%\)")


def kernels(text: str) -> list[tuple[str, str]]:
    """(name with its grid, the block of text that follows it) per profiled kernel, in order."""
    heads = list(HEADER.finditer(text))
    return [(f"{h.group(1).split('<')[0].strip()} ({h.group(2)}, {h.group(3)}, {h.group(4)})",
             text[h.end():heads[i + 1].start() if i + 1 < len(heads) else len(text)])
            for i, h in enumerate(heads)]


def metric(block: str, name: str) -> tuple[float, str] | None:
    """(value, unit) of a section row `name  unit  value`, or None."""
    m = re.search(r"\n\s+" + re.escape(name) + r"\s+(?:(\S+)\s+)?([\d.,]+)\s*\n", block)
    if m is None:
        return None
    return float(m.group(2).replace(",", "")), m.group(1) or ""


def duration_us(block: str) -> float | None:
    d = metric(block, "Duration")
    if d is None:
        return None
    value, unit = d
    return value * {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}.get(unit, 1.0)


def stalls(block: str) -> dict[str, float]:
    return {name: float(v.replace(",", "")) for name, v in STALL.findall(block)}


def row(name: str, block: str, us: float, stall_block: str | None) -> str:
    def pct(label):
        m = metric(block, label)
        return f"{m[0]:.0f}%" if m else "?"

    clock = metric(block, "SM Frequency")
    regs = metric(block, "Registers Per Thread")
    pipe = PIPE.search(" ".join(block.split()))
    cells = [name, f"{us:,.0f}", f"{clock[0]:.2f}" if clock else "?",
             f"{regs[0]:.0f}, {pct('Achieved Occupancy')}" if regs else "?", pct("Issue Slots Busy"),
             f"{pipe.group(1).split()[-1]} {float(pipe.group(2)):.0f}%" if pipe else "?",
             f"{pct('DRAM Throughput')} / {pct('L2 Cache Throughput')}"]
    if stall_block is not None:
        st = stalls(stall_block)
        top = sorted(((v, k) for k, v in st.items() if k != "selected"), reverse=True)[:4]
        cells.append(f"{sum(st.values()):.2f}: " + ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for v, k in top))
    return "| " + " | ".join(cells) + " |"


def summary(ncu_text: str, stalls_text: str | None = None, min_us: float = 50.0) -> list[str]:
    found = kernels(ncu_text)
    stall_blocks = [b for _, b in kernels(stalls_text)] if stalls_text else None
    if stall_blocks is not None and len(stall_blocks) != len(found):
        raise ValueError(f"{len(found)} kernels in the sections' run, {len(stall_blocks)} in the stalls' run")
    head = ["kernel (grid)", "µs", "SM GHz", "regs, occupancy", "issue slots busy", "busiest pipe",
            "DRAM / L2"] + (["stall cycles an issued instruction (largest)"] if stall_blocks else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, (name, block) in enumerate(found):
        us = duration_us(block)
        if us is None or us < min_us:
            continue
        lines.append(row(name, block, us, stall_blocks[i] if stall_blocks else None))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ncu_txt", type=Path)
    p.add_argument("stalls_txt", type=Path, nargs="?")
    p.add_argument("--min-us", type=float, default=50.0, help="leave out kernels shorter than this")
    args = p.parse_args(argv)
    for path in filter(None, (args.ncu_txt, args.stalls_txt)):
        if not path.is_file():
            p.error(f"no file {path}")
    try:
        lines = summary(args.ncu_txt.read_text(), args.stalls_txt.read_text() if args.stalls_txt else None,
                        args.min_us)
    except ValueError as exc:
        p.error(str(exc))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
