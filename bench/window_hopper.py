"""The Hopper (Gluon) window-attention backward against the Triton one: checked, then timed.

    python3 bench/window_hopper.py [--json PATH] [--quick]   # on an H100/H200
    python3 bench/window_hopper.py --compile-only            # anywhere: compile for sm_90, print resources

templates/kernels/window_attention_hopper.py holds the dK/dV kernel window_attention_backward runs
on sm_90 (bf16, fp16, D 64 or 128) and a dQ kernel it runs at the head dims HOPPER_DQ names
(--hopper-dq here: at every head dim);
KUNLUNC_HOPPER_BWD=0 (here: the module's _HOPPER_BWD flag) gives the Triton kernels. At each shape of bench_window.py (or --quick's odd ones), both bands, four layouts:
  full      padded [B, H, T, D], every length T
  jagged    padded, lengths uniform in [0, T], NaN in every row past a length (q, k, v, dO, o, lse)
  packed    the jagged batch as packed rows [N, H, D]
  qkv       packed heads views of one [N, 3·H·D] projection, gradients into one [N, 3·H·D] tensor
            (the layout the models pass)
it checks the Hopper gradients against the Triton ones (both bf16; relative error, NaN fails) and
against a float32 reference on the first examples, then times both backwards by the profiler's
kernel time (the dQ kernel, delta included, and the dK/dV kernel). Prints a table, writes JSON;
exit status 1 when a check fails.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

SHAPES = [(64, 4, 2048, 64, 256), (32, 8, 4096, 64, 512), (128, 4, 1024, 128, 128)]   # bench_window.py's
QUICK_SHAPES = [(3, 2, 300, 64, 37), (2, 3, 37, 128, 5), (4, 2, 1, 64, 3), (2, 2, 517, 128, 1000),
                (3, 1, 130, 64, 0)]                                                   # (B, H, T, D, window)
TOLERANCE = 1e-2


def compile_sm90(kind: str, head_dim: int, packed: bool, dtype=torch.bfloat16, hop=None):
    """The `kind` kernel ("dkdv" or "dq") compiled for sm_90 by the installed Triton, without a GPU,
    as VARIANT builds it at this head dim."""
    from compile_kernels import compile_gluon_sm90
    hop = hop or load_hopper()
    bm, bn, stages, warps = hop.CONFIGS[kind]
    x = torch.empty(1, 1, 256, head_dim, dtype=dtype)
    tiles = (bm, bn, bn, bm, bn, bn) if kind == "dkdv" else (bm, bn, bn, bm)   # dK/dV: + dk, dv
    descs = [hop._descriptor(x, False, rows)[0] for rows in tiles]
    if kind == "dkdv":                                                          # + lse, delta
        descs += [hop._stats_descriptor(torch.empty(1, 1, 256), bm) for _ in range(2)]
    fn = hop._dkdv_kernel if kind == "dkdv" else hop._dq_kernel
    options = hop.launch_options(kind, head_dim)
    constexprs = {"PACKED": packed, "STAGES": stages,
                  **{name: options.pop(name) for name in ("PEEL", "EARLY", "TMA_OUT", "SPLIT", "STATS", "num_warps") if name in options}}
    return compile_gluon_sm90(fn, descs, constexprs, {"num_warps": warps, **options},
                              "*bf16" if dtype == torch.bfloat16 else "*fp16")


def print_compiled() -> None:
    """Each kernel as VARIANT builds it (kinds dkdv, dq), and the dK/dV kernel with TMA_OUT switched
    (kind dkdv_tma_out: its stores counted), at D 64 and 128, padded and packed."""
    from compile_kernels import resource_usage
    from gdpa_gluon import sass_lines
    from gdpa_gluon_bwd import wgmma_waits
    hop = load_hopper()
    for kind in ("dkdv", "dq", "dkdv_tma_out"):
        for head_dim in (64, 128):
            for packed in (False, True):
                variant = hop.VARIANT[head_dim]
                default = variant["TMA_OUT"]
                if kind == "dkdv_tma_out":
                    variant["TMA_OUT"] = not default
                try:
                    kernel = compile_sm90(kind[:4] if kind != "dq" else kind, head_dim, packed, hop=hop)
                finally:
                    variant["TMA_OUT"] = default
                r = resource_usage(kernel.asm["cubin"])
                code = sass_lines(kernel.asm["cubin"])
                instructions = [text for _, text in code]
                hgmma, waits = wgmma_waits(instructions)
                print(f"{kind} D{head_dim} {'packed' if packed else 'padded'}: regs {r['reg']} stack {r['stack']} "
                      f"shared {kernel.metadata.shared} hgmma {hgmma} waits {len(waits)} "
                      f"tma_stores {sum('UTMASTG' in i for i in instructions)} loops {tile_loops_text(code)}",
                      flush=True)


def tile_loops(code: list[tuple[int, str]]) -> list[tuple[int, int, int]]:
    """(global loads, selects, CTA barriers) of each innermost loop of the SASS `code`
    (gdpa_gluon.sass_lines) that issues wgmmas, in address order: a walk's loops (edge, interior,
    edge where SPLIT). Selects (SEL, FSEL) are what the band mask costs a score; global loads (LDG)
    what a tile reads besides its TMA tiles; barriers (BAR.SYNC) what Triton's barrier pass puts
    around the ring's refills (one per TMA issue on a stage barrier: BENCHMARKS.md, s26)."""
    import re

    spans = []   # a backward branch closes a loop: [target, branch]
    for address, text in code:
        m = re.search(r"\bBRA (0x[0-9a-f]+)", text)
        if m and int(m.group(1), 16) < address:
            spans.append((int(m.group(1), 16), address))
    innermost = [a for a in spans if not any(b != a and a[0] <= b[0] and b[1] <= a[1] for b in spans)]
    loops = []
    for lo, hi in sorted(innermost):
        body = [re.sub(r"^@!?U?P\w+ ", "", text).split(" ")[0] for address, text in code if lo <= address <= hi]
        if any(op.startswith("HGMMA") for op in body):
            loops.append((sum(op.startswith("LDG") for op in body),
                          sum(op.split(".")[0] in ("SEL", "FSEL") for op in body),
                          sum(op.startswith("BAR.SYNC") for op in body)))
    return loops


def tile_loops_text(code: list[tuple[int, str]]) -> str:
    """tile_loops(code) as --compile-only prints it: L<loads>/S<selects>/B<barriers> a loop."""
    return " ".join(f"L{loads}/S{selects}/B{bars}" for loads, selects, bars in tile_loops(code))


def load_hopper():
    from compile_kernels import kernel_module
    return kernel_module("window_attention_hopper")


def reference(q, k, v, do, lengths, window: int, causal: bool, scale: float):
    """(dq, dk, dv) float32 of window attention on padded [B, H, T, D] (zeros past a length)."""
    T = q.shape[2]
    qf, kf, vf = (x.detach().float().nan_to_num(0.0).requires_grad_() for x in (q, k, v))
    i = torch.arange(T, device=q.device)
    rel = i[None, :] - i[:, None]                        # [query i, key j]: j - i
    band = (rel >= -min(window, T)) & (rel <= (0 if causal else min(window, T)))
    valid = i[None, :] < lengths[:, None]                # [B, T]
    allowed = band[None, None] & valid[:, None, None, :] & valid[:, None, :, None]
    s = (qf @ kf.mT * scale).masked_fill(~allowed, float("-inf"))
    p = torch.softmax(s, -1).nan_to_num(0.0)
    o = p @ vf
    o.backward(do.float().nan_to_num(0.0) * valid[:, None, :, None])
    return qf.grad, kf.grad, vf.grad


def unpack(x, lengths, starts, T: int):
    """Packed rows [N, H, D] -> [B, H, T, D] float32, zeros past each length."""
    out = torch.zeros(lengths.shape[0], x.shape[1], T, x.shape[2], device=x.device)
    for b, (n, s) in enumerate(zip(lengths.tolist(), starts.tolist())):
        out[b, :, :n] = x[s:s + n].transpose(0, 1).float()
    return out


def rel_err(x, ref, natural: float = 0.0) -> float:
    """||x - ref|| / ||ref||; against `natural` instead where ref is all zero (and natural given)."""
    scale = ref.float().norm().item() or natural or 1e-30
    err = (x.float() - ref.float()).norm().item() / scale
    return err if math.isfinite(err) else float("inf")


# --variants: each build is the head dim's production VARIANT with one of these overrides (the
# twenty-sixth session timed TXBARS off and on here: bench/results/2026-12-01-h200-s26/call2)
VARIANTS = [dict(STATS=False), dict()]


def variants(json_path) -> int:
    """Each VARIANTS build of the Hopper kernels at bench_window.py's shapes, full (padded) and
    jagged packed: its kernel ms, its gradients against the Triton backward's; the Triton kernels'
    ms, and (full) the serial Gluon control of bench/window_gluon_bwd.py at the same tiles."""
    from bench_window import pack_jagged, wa
    from benchutil import kernel_ms_by_name, write_json
    import window_gluon_bwd as wg
    hop = wa._hopper_module()
    rows, start, wrong = [], time.time(), 0
    gen = torch.Generator(device="cuda").manual_seed(0)
    for (B, H, T, D, window), causal in [(s, c) for s in SHAPES for c in (True, False)]:
        scale = 1 / math.sqrt(D)
        q, k, v, do = (torch.randn(B, H, T, D, device="cuda", generator=gen).bfloat16() for _ in range(4))
        for layout in ("full", "packed"):
            kw, args = {}, (q, k, v, do)
            lengths = torch.full((B,), T, device="cuda")
            if layout == "packed":
                lengths = torch.randint(0, T + 1, (B,), device="cuda", generator=gen)
                *args, lengths, starts, _ = pack_jagged((q, k, v, do), lengths)
                kw = dict(starts=starts, max_len=T)
            qq, kk, vv, dd = args
            o, lse = wa.window_attention_forward(qq, kk, vv, lengths, window, causal, scale, **kw)

            def backward(hopper: bool):
                wa._HOPPER_BWD = hopper
                return wa.window_attention_backward(dd, qq, kk, vv, o, lse, lengths, window, causal, scale, **kw)

            def ms(fn) -> dict:
                by = kernel_ms_by_name(fn, 10)
                return {kind: sum(t for name, t in by.items() if kind in name) for kind in ("dkdv", "dq")}

            row = {"B": B, "H": H, "T": T, "D": D, "window": window, "causal": causal, "layout": layout,
                   "triton_ms": ms(lambda: backward(False)), "variants": []}
            base = backward(False)
            defaults, dq_defaults = dict(hop.VARIANT[D]), hop.HOPPER_DQ
            hop.HOPPER_DQ = {d: True for d in dq_defaults}
            for override in VARIANTS:
                variant = {**defaults, **override}
                hop.VARIANT[D].update(variant)
                got = backward(True)
                err = max(rel_err(g, b) for g, b in zip(got, base))
                t = ms(lambda: backward(True))
                wrong += not err <= 5e-3
                row["variants"].append({**variant, "ms": t, "err_vs_triton": err,
                                        "speedup": {kind: row["triton_ms"][kind] / t[kind] for kind in t}})
            hop.VARIANT[D].update(defaults)
            hop.HOPPER_DQ = dq_defaults
            if layout == "full":
                delta = (dd.float() * o.float()).sum(-1)
                row["control_ms"] = {kind: kernel_ms_by_name(lambda: wg.window_bwd_overlap(
                    kind, dd, qq, kk, vv, lse, delta, window, causal, scale, *cfg, 3, 4, overlap=False), 10)
                    for kind, cfg in (("dkdv", (32, 64)), ("dq", (64, 32)))}
                row["control_ms"] = {kind: sum(by.values()) for kind, by in row["control_ms"].items()}
            wa._HOPPER_BWD = True
            rows.append(row)
            write_json(json_path, rows)
            control = row.get("control_ms")
            print(f"B{B} H{H} T{T} D{D} W{window} {'causal' if causal else 'bidir'} {layout}: triton dK/dV "
                  f"{row['triton_ms']['dkdv']:.3f} dQ {row['triton_ms']['dq']:.3f} ms"
                  + (f"; control {control['dkdv']:.3f} / {control['dq']:.3f}" if control else "") + "; "
                  + ", ".join(f"P{int(x['PEEL'])}E{int(x['EARLY'])}R{int(x['MAXNREG'])}S{int(x['TMA_OUT'])}X{int(bool(x['SPLIT']))}L{int(x['STATS'])} {x['ms']['dkdv']:.3f} / "
                              f"{x['ms']['dq']:.3f} ({x['speedup']['dkdv']:.2f}x / {x['speedup']['dq']:.2f}x"
                              f"{'' if x['err_vs_triton'] <= 5e-3 else ' WRONG'})" for x in row["variants"]),
                  flush=True)
    write_json(json_path, rows, start)
    return 1 if wrong else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, "window_hopper.json") if out else None)
    parser.add_argument("--quick", action="store_true", help="small odd shapes: correctness")
    parser.add_argument("--hopper-dq", action="store_true",
                        help="the Hopper dQ kernel at every head dim (window_attention_hopper.HOPPER_DQ: off by default)")
    parser.add_argument("--variants", action="store_true",
                        help="time each build of the kernels (window_attention_hopper.VARIANT) at the full and "
                             "packed layouts, beside the Triton backward and bench/window_gluon_bwd.py's control")
    parser.add_argument("--compile-only", action="store_true",
                        help="compile both kernels for sm_90 (no GPU needed) and print their resources")
    args = parser.parse_args()
    if args.compile_only:
        print_compiled()
        return 0
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("needs an sm_90 GPU", file=sys.stderr)
        return 1
    from bench_window import pack_jagged, wa
    from benchutil import kernel_ms_by_name, write_json
    if args.variants:
        return variants(args.json)
    if args.hopper_dq:
        hop = wa._hopper_module()
        hop.HOPPER_DQ = {d: True for d in hop.HOPPER_DQ}
    rows, start, wrong = [], time.time(), 0
    gen = torch.Generator(device="cuda").manual_seed(0)
    for (B, H, T, D, window), causal in [(s, c) for s in (QUICK_SHAPES if args.quick else SHAPES)
                                         for c in (True, False)]:
        scale = 1 / math.sqrt(D)
        q, k, v, do = (torch.randn(B, H, T, D, device="cuda", generator=gen).bfloat16() for _ in range(4))
        jagged = torch.randint(0, T + 1, (B,), device="cuda", generator=gen)
        jagged[0] = T                                    # one full example, and (B > 1) an empty one
        if B > 1:
            jagged[1] = 0
        for layout in ("full", "jagged", "packed", "qkv"):
            lengths = torch.full((B,), T, device="cuda") if layout == "full" else jagged
            valid = (torch.arange(T, device="cuda")[None, :] < lengths[:, None])[:, None, :, None]
            qq, kk, vv, dd = (x if layout == "full" else x.masked_fill(~valid, float("nan")) for x in (q, k, v, do))
            kw = {}
            if layout in ("packed", "qkv"):
                qq, kk, vv, dd, _, starts, _ = pack_jagged((q, k, v, do), lengths)
                kw = dict(starts=starts, max_len=T)
                if layout == "qkv":
                    N = qq.shape[0]
                    qkv = torch.stack((qq, kk, vv), 1).reshape(N, 3 * H * D)
                    qq, kk, vv = qkv.view(N, 3, H, D).unbind(1)
            o, lse = wa.window_attention_forward(qq, kk, vv, lengths, window, causal, scale, **kw)
            if layout == "jagged":
                o = o.masked_fill(~valid, float("nan"))
                lse = lse.masked_fill(~valid[..., 0], float("nan"))

            def backward(hopper: bool):
                wa._HOPPER_BWD = hopper
                grads = None
                if layout == "qkv":
                    dqkv = torch.full((qq.shape[0], 3 * H * D), float("nan"), device="cuda", dtype=qq.dtype)
                    grads = dqkv.view(-1, 3, H, D).unbind(1)
                return wa.window_attention_backward(dd, qq, kk, vv, o, lse, lengths, window, causal, scale,
                                                    grads=grads, **kw)

            reason = wa.hopper_backward_reason({"q": qq, "k": kk, "v": vv, "grad_out": dd, "o": o},
                                               layout in ("packed", "qkv"), B, H)
            row = {"B": B, "H": H, "T": T, "D": D, "window": window, "causal": causal, "layout": layout,
                   "hopper_reason": reason}
            got, base = backward(True), backward(False)
            if layout in ("packed", "qkv"):               # compare as padded rows, zeros elsewhere
                got, base = (tuple(unpack(x, lengths, starts, T) for x in g) for g in (got, base))
            n = min(B, 4)
            refs = reference(q[:n], k[:n], v[:n], do[:n], lengths[:n], window, causal, scale)
            row["err_vs_triton"] = max(rel_err(g, b) for g, b in zip(got, base))
            # an all-zero reference (T = 1, window 0: dQ, dK cancel exactly) is measured against the
            # gradients' natural size ||dO||·||K||·scale instead (as tests/test_triton_window.py does)
            natural = (do[:n].float().nan_to_num().norm() * k[:n].float().nan_to_num().norm() * scale).item()
            row["err_vs_fp32"] = max(rel_err(g[:n], r, natural) for g, r in zip(got, refs))
            row["triton_err_vs_fp32"] = max(rel_err(b[:n], r, natural) for b, r in zip(base, refs))
            row["correct"] = row["err_vs_fp32"] <= TOLERANCE and row["err_vs_triton"] <= TOLERANCE
            wrong += not row["correct"]
            for name, hopper in (("hopper", True), ("triton", False)):
                by = kernel_ms_by_name(lambda: backward(hopper), 10)
                row[f"{name}_ms"] = {kind: sum(ms for kname, ms in by.items() if kind in kname)
                                     for kind in ("dkdv", "dq")}
                row[f"{name}_ms"]["all"] = sum(by.values())
            wa._HOPPER_BWD = True
            row["speedup"] = {kind: row["triton_ms"][kind] / max(row["hopper_ms"][kind], 1e-9)
                              for kind in ("dkdv", "dq", "all")}
            rows.append(row)
            write_json(args.json, rows)
            print(f"B{B} H{H} T{T} D{D} W{window} {'causal' if causal else 'bidir'} {layout}: "
                  f"hopper dK/dV {row['hopper_ms']['dkdv']:.3f} dQ {row['hopper_ms']['dq']:.3f} ms, "
                  f"triton {row['triton_ms']['dkdv']:.3f} / {row['triton_ms']['dq']:.3f} ms, "
                  f"speed-up {row['speedup']['dkdv']:.2f}x / {row['speedup']['dq']:.2f}x, all "
                  f"{row['speedup']['all']:.2f}x; err vs triton {row['err_vs_triton']:.1e}, vs fp32 "
                  f"{row['err_vs_fp32']:.1e} (triton {row['triton_err_vs_fp32']:.1e})"
                  f"{'' if row['correct'] else ' WRONG'}{'' if reason is None else f' [triton ran: {reason}]'}",
                  flush=True)
    write_json(args.json, rows, start)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
