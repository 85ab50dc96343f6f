"""Human-readable tables for `kunlunc inspect`."""
from __future__ import annotations

from . import hardware
from .compiler import Compiled
from .cost import HOST_KINDS, Estimate, is_host_op


def si(x: float, unit: str = "") -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}".rstrip()


def seconds(t: float) -> str:
    if t >= 1:
        return f"{t:.3g} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} us"


def inspect_text(compiled: Compiled, est: Estimate, verbose: bool = False,
                 fastest: Estimate | None = None) -> str:
    """The inspect table. `fastest`: the same spec priced with the towers' stream in the compute
    dtype (est itself when it is), for the line on the fastest way the generated bench runs it."""
    stream = ", the towers' stream in the compute dtype" if est.stream == "compute" else ""
    lines = [f"{est.name}: target {est.target} ({est.dtype}), batch {est.batch_size}{stream}",
             f"cost model: {hardware.get(est.target).source}", ""]
    if verbose:
        lines += ["canonicalize:"] + [f"  {n}" for n in compiled.canonical_notes] + ["", "passes:"]
        for r in compiled.reports:
            lines += [f"  {r.line()}"] + [f"      {n}" for n in r.notes]
        lines.append("")
    lines += [_row("block", "group", "kernel", "fwd/example", "share", "params", "est time")]
    total_flops = est.flops_fwd_per_step or 1
    kernels = _kernels(est)
    for name, b in est.blocks().items():
        share = b["flops_fwd"] / total_flops
        lines.append(_row(name, b["group"], kernels.get(name, "-"), si(b['flops_fwd'] / est.batch_size, "FLOP"),
                          f"{share:6.1%}", si(b["params"]), seconds(b["time_s"])))
    # per group, the eager padded time, and where a CUDA graph applies, the GPU time of the fastest
    # setup (the fastest-setup line below): what the generated bench's per-block timing measures
    fastest = None if est.target == "cpu" else fastest or est      # no CUDA graph on the CPU
    fast = fastest.groups() if fastest else {}
    lines += ["", _row("group", "", "", "fwd/example", "share", "params", "est time", "fastest" if fast else "")]
    for name, g in sorted(est.groups().items(), key=lambda kv: -kv[1]["flops_fwd"]):
        lines.append(_row(name, "", "", si(g['flops_fwd'] / est.batch_size, "FLOP"),
                          f"{g['flops_fwd'] / total_flops:6.1%}", si(g["params"]), seconds(g["time_s"]),
                          seconds(fast[name]["time_compiled_packed_s"]) if fast else ""))
    lines += ["", *_totals(est), *(_fastest(fastest) if fastest else [])]
    return "\n".join(lines)


def _kernels(est: Estimate) -> dict[str, str]:
    """Per block, its fused op's kernel; where matmuls run batched, how many kernels they share."""
    out: dict[str, str] = {}
    batched: dict[str, list[int]] = {}
    for c in est.ops:
        if c.kernel:
            out[c.block] = f"{c.kind}:{c.kernel}"
        if c.kind in HOST_KINDS:
            counts = batched.setdefault(c.block, [0, 0])
            counts[0] += 1
            counts[1] += is_host_op(c)
    for block, (ops, kernels) in batched.items():
        if kernels < ops:
            out.setdefault(block, f"batched: {ops} mm in {kernels}")
    return out


def _row(*cells: str) -> str:
    widths = (24, 16, 24, 12, 7, 10, 10, 10)
    return "  ".join(f"{c:<{w}}" if i < 3 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths))).rstrip()


def _totals(est: Estimate) -> list[str]:
    return [
        f"parameters            {si(est.params)} ({si(est.params_dense)} dense, the rest embedding tables)",
        f"forward FLOPs         {si(est.flops_fwd_per_example, 'FLOP')}/example, {si(est.flops_fwd_per_step, 'FLOP')}/step",
        f"training FLOPs        {si(est.flops_train_per_step, 'FLOP')}/step (fwd + bwd)",
        f"executed fwd FLOPs    {si(est.flops_fwd_exec_per_step, 'FLOP')}/step (padding and dense masks included)",
        f"estimated step time   {seconds(est.est_step_time_s)} eager, "
        f"{seconds(est.est_step_time_compiled_s)} under torch.compile per block (autocast casts fused)",
        f"  GPU / host          {_split(est.est_gpu_time_s, est.est_host_s)} eager, "
        f"{_split(est.est_gpu_time_compiled_s, est.est_host_compiled_s)} compiled ({est.host_ops} host ops)",
        f"estimated MFU         {est.est_mfu:.1%} eager, {est.est_mfu_compiled:.1%} compiled, "
        f"of {si(est.peak_flops, 'FLOP/s')} (bf16 datasheet peak)",
        *_padding(est),
        *_host_bound(est),
    ]


def _padding(est: Estimate) -> list[str]:
    """What the padded layout costs (the compiled GPU time on rows past the lengths), and the step
    on a packed batch, which does not pay it."""
    if not est.est_padding_compiled_s:
        return []
    return [f"padded rows           {seconds(est.est_padding_compiled_s)} of the compiled GPU time "
            f"({est.est_padding_compiled_s / est.est_gpu_time_compiled_s:.0%}) goes to rows past the "
            "lengths: GEMMs, norms and adds run padded, only the Triton kernels skip them",
            f"packed batch          {seconds(est.est_step_time_packed_s)} eager, "
            f"{seconds(est.est_step_time_compiled_packed_s)} compiled, MFU "
            f"{est.est_mfu_compiled_packed:.1%} compiled: events as rows (pack_events), no padding"]


def fastest_setup(est: Estimate) -> dict:
    """The step as the fastest measured setup runs it: compiled per block, a packed batch, the
    towers' stream in the compute dtype (est should be priced so), the whole step replayed as one
    CUDA graph, which leaves no host time: the compiled packed GPU time alone."""
    step = est.est_gpu_time_compiled_packed_s
    return {"step_s": step, "mfu": est.flops_train_per_step / (step * est.peak_flops) if step else 0.0,
            "stream": est.stream,
            "bench": "python -m <package> bench --compile --layout packed --stream compute --cuda-graph"}


def _fastest(est: Estimate) -> list[str]:
    f = fastest_setup(est)
    return [f"fastest setup         {seconds(f['step_s'])} a step, MFU {f['mfu']:.1%}: compiled per block, "
            f"packed, the towers' stream in {est.dtype}, the step in one CUDA graph (no host time; "
            "bench --compile --layout packed --stream compute --cuda-graph)"]


def _split(gpu: float, host: float) -> str:
    return f"{seconds(gpu)} / {seconds(host) if host else 'n/a'}"


def _host_bound(est: Estimate) -> list[str]:
    """A hint when the host, not the GPU, sets the step time (it does not shrink with the batch)."""
    if not est.est_host_s and not est.est_host_compiled_s:
        return [f"host time             not fitted for {est.target} (bench/fit_host.py): "
                "the estimate is GPU time only"]
    if est.est_host_compiled_s > est.est_gpu_time_compiled_s:
        return [f"host-bound            even compiled, the host needs more time than the GPU at batch "
                f"{est.batch_size}: a larger batch costs almost no extra time per step, or compile the "
                "whole model (bench --compile-scope model)"]
    if est.est_host_s > est.est_gpu_time_s:
        return [f"host-bound            eager at batch {est.batch_size}; torch.compile removes it"]
    return []
