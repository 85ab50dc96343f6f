"""The Hopper (Gluon) GDPA backward against the Triton one: checked, then timed.

    python3 bench/gdpa_hopper.py [--json PATH] [--quick | --configs]   # on an H100/H200
    python3 bench/gdpa_hopper.py --compile-only            # anywhere: compile for sm_90, print resources

templates/kernels/gdpa_hopper.py holds the dQ and dK/dV kernels gdpa.gdpa_backward runs on sm_90
(bf16, fp16, D 64 or 128, no window) where its ENABLED table says; KUNLUNC_HOPPER_BWD=0 (here: the
module's _HOPPER_BWD flag) gives the Triton kernels. At each shape (the PFFN's: bench_gdpa.py's at
D 64 with 8 heads and D 128 with 4, and kunlun_60g's click tower; --quick: odd ones, per-head
activations, kv lengths), in three layouts:
  full      padded q [B, H, T, D], every length T
  jagged    padded, lengths uniform in [0, T] (one full, one empty), NaN in every q, dO row past a length
  packed    the jagged batch as packed rows [N, H, D], k and v the heads views of one [B, S, 2·H·D]
            projection and dK, dV written into one such tensor (the layout the models pass)
  packed_hm the same rows head-major ([H, N, D] memory seen as [N, H, D]: each head's rows contiguous,
            as in the padded layout): whether TMA's strided boxes cost the packed rows their speed
it checks both kernels' gradients against the Triton backward's (bf16; relative error, NaN fails)
and against float32 on the first examples, then times each kernel of both backwards by the
profiler's kernel time. Prints a line a row, writes JSON; exit status 1 when a check fails.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from compile_kernels import kernel_module as load  # noqa: E402
from window_hopper import rel_err  # noqa: E402  (NaN or inf read as inf: max() then shows it)

SHAPES = [(1152, 8, 512, 512, 64, "gelu_tanh"), (1152, 8, 1024, 256, 64, "gelu_tanh"),
          (256, 8, 2048, 512, 64, "gelu_tanh"),                       # kunlun_60g's click-tower PFFN
          (1152, 4, 512, 512, 128, "gelu_tanh"), (1152, 4, 1024, 256, 128, "gelu_tanh")]  # (B, H, T, S, D, acts)
QUICK_SHAPES = [(3, 2, 37, 50, 64, "gelu_tanh"), (2, 3, 300, 33, 128, "silu,relu,gelu_tanh"),
                (4, 2, 1, 1, 64, "relu2"), (2, 2, 129, 512, 64, "gelu"), (3, 1, 517, 64, 128, "identity"),
                (2, 4, 200, 96, 64, "silu,relu2,silu,relu2")]
TOLERANCE = 1e-2
# --configs: the Hopper kernels' tiles tried at D 64 (BLOCK_M, BLOCK_N, STAGES, warps), on the models'
# packed layout at kunlun_60g's PFFN shapes (click and impression towers, lengths uniform in [0, T])
SWEEP = {"dq": [(64, 64, 3, 4), (128, 64, 3, 8), (128, 32, 3, 8), (64, 32, 3, 4), (64, 64, 4, 4), (128, 64, 2, 8)],
         "dkdv": [(32, 64, 4, 4), (32, 64, 3, 4), (32, 128, 4, 8), (32, 128, 3, 8), (16, 64, 4, 4), (64, 64, 3, 4)]}
SWEEP_SHAPES = [(256, 8, 2048, 512, 64, "gelu_tanh"), (256, 4, 4096, 512, 64, "gelu_tanh")]
ACTIVATIONS = {"gelu_tanh": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
               "gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu, "relu": torch.relu,
               "relu2": lambda x: torch.relu(x) ** 2, "identity": lambda x: x}


def compile_sm90(kind: str, head_dim: int, packed: bool, act: int = 0, hop=None):
    """The `kind` kernel ("dq" or "dkdv") compiled for sm_90 by the installed Triton, without a GPU."""
    from compile_kernels import compile_gluon_sm90
    hop = hop or load("gdpa_hopper")
    bm, bn, stages, warps = hop.CONFIGS[(kind, head_dim)]
    x = torch.empty(1, 1, 256, head_dim, dtype=torch.bfloat16)
    descs = [hop._descriptor(x, False, rows)[0] for rows in (bm, bn, bn, bm)]
    fn = hop._dq_kernel if kind == "dq" else hop._dkdv_kernel
    constexprs = {"ACT": act, "HAS_KV_LEN": False, "HEAD_TABLE": False, "PACKED": packed, "STAGES": stages,
                  "num_warps": warps}
    return compile_gluon_sm90(fn, descs, constexprs, {"num_warps": warps})


def print_compiled() -> None:
    """Each kernel at D 64 and 128, padded and packed, gelu_tanh: its resources and wgmma groups."""
    from compile_kernels import resource_usage
    from gdpa_gluon import sass_lines
    from gdpa_gluon_bwd import wgmma_waits
    from window_hopper import tile_loops_text
    hop = load("gdpa_hopper")
    for kind in ("dq", "dkdv"):
        for head_dim in (64, 128):
            for packed in (False, True):
                kernel = compile_sm90(kind, head_dim, packed, hop=hop)
                r = resource_usage(kernel.asm["cubin"])
                code = sass_lines(kernel.asm["cubin"])
                instructions = [text for _, text in code]
                hgmma, waits = wgmma_waits(instructions)
                print(f"{kind} D{head_dim} {'packed' if packed else 'padded'}: regs {r['reg']} stack {r['stack']} "
                      f"shared {kernel.metadata.shared} hgmma {hgmma} waits {len(waits)} "
                      f"tanh {sum('MUFU.TANH' in i for i in instructions)} loops {tile_loops_text(code)}", flush=True)


def reference(q, k, v, do, lengths, acts: str, scale: float):
    """(dq, dk, dv) float32 of padded GDPA, NaN past a length read as zero."""
    qf, kf, vf = (x.detach().float().nan_to_num(0.0).requires_grad_() for x in (q, k, v))
    valid = (torch.arange(q.shape[2], device=q.device)[None, :] < lengths[:, None])[:, None, :, None]
    s = (qf * valid) @ kf.mT
    names = [a.strip() for a in acts.split(",")]
    hidden = torch.stack([ACTIVATIONS[names[h % len(names)]](s[:, h]) for h in range(q.shape[1])], 1)
    (hidden @ vf * scale).backward(do.float().nan_to_num(0.0) * valid)
    return qf.grad, kf.grad, vf.grad


def _packed_case(gdpa, shape, gen):
    """(backward, ms) at `shape` on the models' packed layout (lengths uniform in [0, T]; k, v heads
    views of one projection, dK, dV written into one): backward(hopper) runs gdpa_backward with the
    Hopper kernels or Triton's and returns its gradients; ms(hopper) each kernel's profiler time."""
    from benchutil import direct_launch, kernel_ms_by_name
    B, H, T, S, D, acts = shape
    lengths = torch.randint(0, T + 1, (B,), device="cuda", generator=gen)
    N = int(lengths.sum())
    q, do = ((torch.randn(N, H, D, device="cuda", generator=gen) * sd).bfloat16() for sd in (D ** -0.25, 1.0))
    kv = (torch.randn(B, S, 2 * H * D, device="cuda", generator=gen) * D ** -0.25).bfloat16()
    k, v = kv.view(B, S, 2, H, D).permute(2, 0, 3, 1, 4).unbind(0)
    starts = torch.cumsum(lengths, 0) - lengths
    dkv = torch.empty_like(kv)
    grads = (torch.empty_like(q), *dkv.view(B, S, 2, H, D).permute(2, 0, 3, 1, 4).unbind(0))

    def backward(hopper: bool):
        gdpa._HOPPER_BWD = hopper
        with direct_launch():
            return [g.clone() for g in gdpa.gdpa_backward(do, q, k, v, lengths, None, acts, 1.0 / S, q_starts=starts,
                                                           max_len=T, grads=grads)]

    def ms(hopper: bool) -> dict:
        by = kernel_ms_by_name(lambda: backward(hopper), 10)
        return {kind: sum(t for name, t in by.items() if kind in name.lower() and "copy" not in name.lower())
                for kind in ("dkdv", "dq")}
    return backward, ms


def sweep(gdpa, json_path) -> int:
    """SWEEP's configs of each Hopper kernel against the autotuned Triton kernel, packed jagged rows."""
    from benchutil import write_json
    hop = gdpa._hopper_module()
    rows, start, wrong = [], time.time(), 0
    gen = torch.Generator(device="cuda").manual_seed(0)
    for B, H, T, S, D, acts in SWEEP_SHAPES:
        backward, ms = _packed_case(gdpa, (B, H, T, S, D, acts), gen)
        base = backward(False)
        row = {"B": B, "H": H, "T": T, "S": S, "D": D, "triton_ms": ms(False), "configs": []}
        for kind in ("dq", "dkdv"):
            default = hop.CONFIGS[(kind, D)]
            for config in SWEEP[kind]:
                hop.CONFIGS[(kind, D)] = config
                try:
                    got = backward(True)
                    err = max(rel_err(g, b) for g, b in zip(got, base))
                    t = ms(True)[kind]
                except Exception as e:   # a config that does not fit (shared memory, registers)
                    err, t = float("inf"), float("nan")
                    print(f"  {kind} {config}: {type(e).__name__}: {str(e)[:120]}", flush=True)
                wrong += not err <= 5e-3 and t == t
                row["configs"].append({"kind": kind, "config": config, "ms": t, "err_vs_triton": err,
                                       "speedup": row["triton_ms"][kind] / t if t == t else None})
            hop.CONFIGS[(kind, D)] = default
        gdpa._HOPPER_BWD = True
        rows.append(row)
        write_json(json_path, rows)
        print(f"B{B} H{H} T{T} S{S} D{D} packed: triton dK/dV {row['triton_ms']['dkdv']:.3f} dQ "
              f"{row['triton_ms']['dq']:.3f} ms; " + ", ".join(
                  f"{c['kind']} {'x'.join(map(str, c['config']))} {c['ms']:.3f} ({(c['speedup'] or 0):.2f}x"
                  f"{'' if c['err_vs_triton'] <= 5e-3 else ' WRONG'})" for c in row["configs"]), flush=True)
    write_json(json_path, rows, start)
    return 1 if wrong else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=os.path.join(out, "gdpa_hopper.json") if out else None)
    parser.add_argument("--quick", action="store_true", help="small odd shapes: correctness")
    parser.add_argument("--configs", action="store_true",
                        help="time each SWEEP tile config of both kernels on packed rows at SWEEP_SHAPES")
    parser.add_argument("--compile-only", action="store_true",
                        help="compile both kernels for sm_90 (no GPU needed) and print their resources")
    args = parser.parse_args()
    if args.compile_only:
        print_compiled()
        return 0
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("needs an sm_90 GPU", file=sys.stderr)
        return 1
    from benchutil import direct_launch, kernel_ms_by_name, write_json
    gdpa = load("gdpa")
    if args.configs:
        return sweep(gdpa, args.json)
    rows, start, wrong = [], time.time(), 0
    gen = torch.Generator(device="cuda").manual_seed(0)
    for B, H, T, S, D, acts in QUICK_SHAPES if args.quick else SHAPES:
        scale = 1.0 / S
        q, do = ((torch.randn(B, H, T, D, device="cuda", generator=gen) * sd).bfloat16() for sd in (D ** -0.25, 1.0))
        kv = torch.randn(B, S, 2 * H * D, device="cuda", generator=gen)
        kv[..., :H * D] *= D ** -0.25
        kv = kv.bfloat16()
        k, v = kv.view(B, S, 2, H, D).permute(2, 0, 3, 1, 4).unbind(0)       # heads views [B, H, S, D]
        jagged = torch.randint(0, T + 1, (B,), device="cuda", generator=gen)
        jagged[0] = T
        if B > 1:
            jagged[1] = 0
        for layout in ("full", "jagged", "packed", "packed_hm"):
            lengths = torch.full((B,), T, device="cuda") if layout == "full" else jagged
            valid = (torch.arange(T, device="cuda")[None, :] < lengths[:, None])[:, None, :, None]
            qq, dd = (x if layout == "full" else x.masked_fill(~valid, float("nan")) for x in (q, do))
            kw, starts = {}, None
            if layout.startswith("packed"):
                starts = torch.cumsum(lengths, 0) - lengths
                qq, dd = (x.transpose(1, 2)[valid[:, 0, :, 0]].contiguous() for x in (q, do))   # [N, H, D]
                if layout == "packed_hm":   # head-major rows: each head's rows contiguous, as padded ones are
                    qq, dd = (x.transpose(0, 1).contiguous().transpose(0, 1) for x in (qq, dd))
                kw = dict(q_starts=starts, max_len=T)

            def backward(hopper: bool):
                gdpa._HOPPER_BWD = hopper
                grads = None
                if layout.startswith("packed"):
                    dkv = torch.full_like(kv, float("nan"))
                    grads = (torch.empty_like(qq), *dkv.view(B, S, 2, H, D).permute(2, 0, 3, 1, 4).unbind(0))
                with direct_launch():
                    return gdpa.gdpa_backward(dd, qq, k, v, lengths, None, acts, scale, grads=grads, **kw)

            def padded(grads):
                if not layout.startswith("packed"):
                    return grads
                dq = torch.zeros(B, T, H, D, device="cuda", dtype=grads[0].dtype)
                dq[valid[:, 0, :, 0]] = grads[0]
                return (dq.transpose(1, 2), *grads[1:])

            reason = gdpa.hopper_backward_reason({"q": qq, "k": k, "v": v, "grad_out": dd}, layout.startswith("packed"),
                                                 B * H, False)
            row = {"B": B, "H": H, "T": T, "S": S, "D": D, "activations": acts, "layout": layout,
                   "hopper_reason": reason}
            got, base = padded(backward(True)), padded(backward(False))
            n = min(B, 4)
            refs = reference(q[:n], k[:n], v[:n], do[:n], lengths[:n], acts, scale)
            row["err_vs_triton"] = {name: rel_err(g, b) for name, g, b in zip(("dq", "dk", "dv"), got, base)}
            row["err_vs_fp32"] = {name: rel_err(g[:n], r) for name, g, r in zip(("dq", "dk", "dv"), got, refs)}
            row["triton_err_vs_fp32"] = {name: rel_err(b[:n], r) for name, b, r in zip(("dq", "dk", "dv"), base, refs)}
            row["correct"] = all(e <= TOLERANCE for e in (*row["err_vs_fp32"].values(), *row["err_vs_triton"].values()))
            wrong += not row["correct"]
            for name, hopper in (("hopper", True), ("triton", False)):
                by = kernel_ms_by_name(lambda: backward(hopper), 10)
                row[f"{name}_ms"] = {kind: sum(ms for kname, ms in by.items() if kind in kname.lower())
                                     for kind in ("dkdv", "dq")}
                row[f"{name}_ms"]["all"] = sum(by.values())
            gdpa._HOPPER_BWD = True
            row["speedup"] = {kind: row["triton_ms"][kind] / max(row["hopper_ms"][kind], 1e-9)
                              for kind in ("dkdv", "dq", "all")}
            rows.append(row)
            write_json(args.json, rows)
            worst = max(row["err_vs_fp32"].values())
            print(f"B{B} H{H} T{T} S{S} D{D} {acts} {layout}: hopper dK/dV {row['hopper_ms']['dkdv']:.3f} "
                  f"dQ {row['hopper_ms']['dq']:.3f} ms, triton {row['triton_ms']['dkdv']:.3f} / "
                  f"{row['triton_ms']['dq']:.3f} ms, speed-up {row['speedup']['dkdv']:.2f}x / "
                  f"{row['speedup']['dq']:.2f}x, all {row['speedup']['all']:.2f}x; err vs triton "
                  f"{max(row['err_vs_triton'].values()):.1e}, vs fp32 {worst:.1e} (triton "
                  f"{max(row['triton_err_vs_fp32'].values()):.1e}){'' if row['correct'] else ' WRONG'}"
                  f"{'' if reason is None else f' [triton ran: {reason}]'}", flush=True)
    write_json(args.json, rows, start)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
