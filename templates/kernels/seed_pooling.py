"""Seed pooling (the pooling step of Hierarchical Seed Pooling) in Triton: forward and backward.

Math. Learned seeds Q [H, S, D] are shared by the batch; k, v [B, H, T, D]; key j of example b
exists iff j < lengths[b]. Per (b, h), over existing keys only:
    s   = (Q · Kᵀ) · scale                         [S, T]
    lse = log Σ_j exp(s)                            [S]   (-inf for an empty sequence)
    P   = exp(s - lse),  O = P · V                  [S, D] (0 for an empty sequence, never NaN)
Backward, with Δ = rowsum(dO ⊙ O):
    dV = Pᵀ dO,  dS = P ⊙ (dO Vᵀ - Δ) · scale,  dK = dSᵀ Q,  dQ = Σ_b dS K.

Why a kernel. S seeds over T keys is S·T·D multiply-adds per (b, h) against T·D elements read:
with S = 64 about 128 FLOP per byte in bf16, so the cost is reading K and V, and the job is to
read them exactly once. Each program takes one (b, h) (and one block of seeds, normally all of
them), streams K/V in tiles of BLOCK_T keys, and runs every seed against the tile while it is on
chip (online softmax, exp2 with log2(e) folded into the scale). In the model K and V are the
same tensor (K = V = the sequence): then one load feeds both matmuls and HBM traffic halves.
Tiles at or past an example's length are never loaded.

TMA. Launched eagerly on a Hopper GPU, the forward reads each chunk's whole key tiles by TMA
(host descriptors of K/V seen as [rows, columns], _tma_view; their box set per config by
_tma_blocks) with no masks or address arithmetic in the loop, and only the partial last tile by
masked loads: K/V at 74-77% of the copy bandwidth against 67% with pointer loads at
bench_seed_pooling.py's first shape, 1.07-1.11x faster, jagged rows 1.04-1.08x (BENCHMARKS.md,
seed pooling, twenty-fourth session). Traced (torch.compile, make_fx) it keeps the pointer loads:
torch traces host descriptors only where dynamo itself traces the launch, and making the op
opaque instead cost kunlun_60g's compiled step 11.6 ms of host time (191.0 against 179.4 ms, the
same GPU time). Small K (_TMA_MIN_BYTES: the descriptors cost host time at every call) and layouts
TMA cannot read so (D under its power-of-two block, a batch stride that is not T rows, unaligned
rows) keep the pointer loads too. The backward measured 0.95-0.99x with TMA loads and has none.

Split T. With few (b, h) pairs the grid cannot fill 132 SMs, so T is cut into chunks, each program
writes a partial (max, sum, unnormalized acc) in fp32, and a tiny kernel combines them. Chunks are
multiples of _CHUNK_MULTIPLE so every autotuned BLOCK_T tiles them exactly.

Backward. One program per (group of examples, head, T chunk) recomputes P from the saved lse and
writes dK, dV tiles (zeros past the length, without reading anything there). dQ is a sum over the
batch: each program accumulates it in registers over its group of examples and writes one fp32
partial, summed by torch afterwards. Deterministic (no atomics, so autotuning's repeated launches
are harmless too), and grouping examples keeps the partials to a few percent of the traffic.

Seed blocks. All seeds of a head sit in one block of BLOCK_S = next_pow2(max(S, 16)) rows (tl.dot
needs 16) while BLOCK_S·BLOCK_D <= _SEED_TILE; beyond that the forward gives each seed block its
own program (K/V re-read, mostly from L2) and the backward loops over seed blocks, adding into dK/dV.
The backward's seed block is also an autotune choice: where one block's dQ accumulator would spill
registers, smaller blocks are offered beside it (_bwd_configs).

Precision: fp32 accumulation always; fp32 inputs use input_precision="ieee" (no tf32) so fp32
reaches ~1e-6; fp16/bf16 round P and dS to the input dtype for the tensor cores, as FlashAttention.
"""
import functools
import hashlib
import importlib.util
import inspect
import math
import os
import sys
from pathlib import Path

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

__all__ = [
    "seed_pooling_backward",
    "seed_pooling_backward_shared_kv",
    "seed_pooling_forward",
    "unsupported",
]

# torch.compile's AOTAutograd cache keys a graph's Triton ops by their kernels' source and the
# globals those read, not by the autotuner's config lists or the host code that launches them
# (torch 2.11-2.13): after an edit of this file a warm cache would run the graph compiled before,
# with the old configs and its old pick (BENCHMARKS.md, seed pooling, twenty-first session). Every
# kernel here reads this digest of the whole file, which puts the file into that key.
try:
    _FILE_DIGEST = tl.constexpr(int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:15], 16))
except OSError:  # no file to read (imported from a zip, say): keyed as torch keys it without this
    _FILE_DIGEST = tl.constexpr(0)

# Autotune timings are kept on disk (Triton's cache dir, keyed by the kernel source, the configs,
# the tuning key's values and the GPU), so a new process reuses them instead of timing every config
# of every kernel again at its first steps; the benchmarks always ran so (TRITON_CACHE_AUTOTUNING=1
# in bench/gpu_run.sh). Triton >= 3.3; older versions tune in every process as before.
_AUTOTUNE_CACHE = ({"cache_results": True}
                   if "cache_results" in inspect.signature(triton.autotune).parameters else {})

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
# KUNLUNC_AUTOTUNE=0: launch each kernel's first (default) config untuned. Autotuning compiles
# every config for every new shape (kunlun_60g's first training step: 31 s on the H200); tests
# and quick runs can skip it at some cost in kernel speed.
_AUTOTUNE = os.environ.get("KUNLUNC_AUTOTUNE", "1") != "0"
_LOG2E = math.log2(math.e)
_LN2_C = tl.constexpr(math.log(2.0))
_LOG2E_C = tl.constexpr(_LOG2E)
_CHUNK_MULTIPLE = 256  # every BLOCK_T below divides it, so T chunks tile exactly
_SEED_TILE = 256 * 64  # largest BLOCK_S·BLOCK_D kept in registers (fp32 accumulators)
_MAX_HEAD_DIM = 256
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _beside(filename: str):
    """The kernel module in `filename` beside this file (kernel files are loaded by path, standalone).
    Inside a package (a generated model's kernels) it is the sibling module's own name, so that
    every kernel file's import of it shares one module."""
    package, dot, _ = __name__.rpartition(".")
    name = f"{package}.{Path(filename).stem}" if dot else f"{__name__}_{Path(filename).stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(filename))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    return sys.modules[name]


_BOUND_LAUNCH: dict = {}


def _bound_launch():
    """bound_launch.py beside this file (eager launches bound once: _launch), loaded on first use;
    None where it is not there (this file copied or imported alone): Triton's own launch then."""
    if "module" not in _BOUND_LAUNCH:
        try:
            _BOUND_LAUNCH["module"] = _beside("bound_launch.py")
        except (ImportError, OSError):
            _BOUND_LAUNCH["module"] = None
    return _BOUND_LAUNCH["module"]


# ----------------------------------------------------------------------------- autotuning

def _fits(config, budget: int, tiles, bs: int, bd: int, kv_shared: bool, ieee: bool) -> bool:
    """False when the config's fp32 tiles need more than `budget` registers per thread (they
    would spill) or its K/V pipeline overflows shared memory. A config's own BLOCK_S (the
    backward's) takes the place of the launch's."""
    kv_tiles = 1 if kv_shared else 2
    elt = 4 if ieee else 2
    bt = config.kwargs["BLOCK_T"]
    bs = config.kwargs.get("BLOCK_S", bs)
    return (tiles(bs, bd, bt) <= budget * 32 * config.num_warps
            and config.num_stages * kv_tiles * bt * bd * elt <= 160 * 1024)


def _tuned(kernel, candidates, key, budget: int, tiles):
    """kernel -> get(NUM_SEEDS, BLOCK_S, BLOCK_D, KV_SHARED, IEEE): one autotuner per tile family,
    over the configs of `candidates(NUM_SEEDS, BLOCK_S)` that fit it, made once.

    The configs are filtered here rather than through `prune_configs_by`: torch's wrap_triton
    runs an early_config_prune itself on every eager call and wraps the survivors in a *new*
    autotuner with an empty cache, so every call re-benchmarked every config (measured on the
    H200, 2026-11-29: 490 ms per forward call instead of ~0.2 ms)."""
    @functools.cache
    def get(num_seeds: int, bs: int, bd: int, kv_shared: bool, ieee: bool):
        configs = candidates(num_seeds, bs, bd)
        if _INTERPRET:  # one small config: the interpreter runs numpy per op, nothing to tune
            configs = [triton.Config({**configs[0].kwargs, "BLOCK_T": 32}, num_warps=4, num_stages=1,
                                     pre_hook=configs[0].pre_hook)]
        else:
            fit = [c for c in configs if _fits(c, budget, tiles, bs, bd, kv_shared, ieee)]
            configs = fit or [min(configs, key=lambda c: c.kwargs["BLOCK_T"] * 8 // c.num_warps)]
            configs = configs if _AUTOTUNE else configs[:1]
        return triton.autotune(configs=configs, key=key, **_AUTOTUNE_CACHE)(kernel)
    return get


# (BLOCK_T, num_warps, num_stages): Hopper candidates; pruning keeps the ones that fit.
# Few on purpose: each config of each key costs a compile of a few seconds on the first call.
# (64, 8, 3): two warpgroups of 64 seeds each where a head has 128 (128 registers a thread against
# 235 at 4 warps, sm_90); the forward at bench_seed_pooling.py's second shape 1.04x with it
# (BENCHMARKS.md, seed pooling, twenty-fourth session); at 64 seeds the 4-warp configs stay faster.
_FWD_TRIPLES = [(64, 4, 3), (128, 4, 3), (128, 8, 3), (256, 8, 2), (64, 8, 3)]
# Where a head's seeds fit a block of 32 rows or fewer (a second level of 8 or 16 seeds over the
# first's outputs, PMA's few seeds), a program's tiles are small: 1 and 2 warps keep more programs
# on an SM (each mostly waits on one short read), offered to the autotuner beside the list above.
_SMALL_SEED_BLOCK = 32
_SMALL_FWD_TRIPLES = [(64, 2, 3), (64, 1, 3), (32, 1, 3)]
# The backward holds dQ, the seeds and a score tile per program. Its dK/dV GEMMs run transposed
# under 64 rows (_bwd_tile). Measured on the H200 (bench/seed_pooling_configs.py, BENCHMARKS.md,
# seed pooling, twentieth session), three stages beat two for every tile and warp count, by
# 1.2-1.7x, and the fastest configs are 4-warp ones that ptxas makes spill (on sm_90 with Triton
# 3.6, `bench/compile_kernels.py --resources --only seed_pooling.bwd`: (64, 4, 3) spills 320 bytes
# a thread at D 64 with 128 seeds and is still the fastest there, 1.75 ms against the 2-stage
# list's best 2.90): two programs an SM hide more than the spill costs. So spilling is a cost the
# autotuner weighs by time, not a reason to leave a config out. The register budget of _bwd_tuned
# (a rough count of fp32 tile elements a thread, not ptxas's) drops only the largest tiles:
# (128, 4, 3) at D 64 with 128 seeds and at D 128 (584-1480 bytes of spill), and at D 128 with 128
# seeds (64, 4, 3) and (128, 8, 3) too (624 and 320 bytes). The first triple is
# the untuned default (KUNLUNC_AUTOTUNE=0): it spills at no head dim or seed count.
# Compiled, the model gains as much: kunlun_60g's seed-pooling backward 8.5 -> 5.5 ms a step at
# batch 256 (BENCHMARKS.md, twenty-first session; an earlier A/B that showed no change had shared
# one compile cache between its two trees, see _FILE_DIGEST).
_BWD_TRIPLES = [(32, 8, 2), (64, 4, 3), (128, 8, 3), (128, 4, 3), (64, 8, 3), (32, 4, 3)]
# Where one seed block's dQ accumulator (BLOCK_S x BLOCK_D fp32) passes this many elements, the
# 8-warp, short-tile triples are also offered over smaller seed blocks (32 x 128: 158-162
# registers): each extra block re-reads K/V and reads back dK/dV, against more registers and the
# 4-warp triples' spills over the whole block, and the autotuner chooses by time. (The eighth
# session's tables, compiled without a launch's specialization, had every triple spilling there.)
_SMALL_SEED_TILE = 32 * 128


def _bwd_configs(num_seeds: int, block_s: int, block_d: int) -> list[tuple[int, int, int, int]]:
    """(BLOCK_T, num_warps, num_stages, BLOCK_S) of the backward's candidates, the untuned default
    first: the small seed blocks (where offered) before the launch's own."""
    small = block_s
    while small > 16 and small * block_d > _SMALL_SEED_TILE:
        small //= 2
    own = [(t, w, st, block_s) for t, w, st in _BWD_TRIPLES]
    if small == block_s:
        return own
    # 32-row T tiles first: the untuned default then spills in no layout (16 rows over a 32-seed
    # block hold only 128 registers and spill 24 bytes a thread at D = 128)
    return sorted(((t, w, st, small) for t, w, st in _BWD_TRIPLES if w == 8 and t <= 32), reverse=True) + own


def _tma_blocks(nargs: dict) -> None:
    """A forward config's pre-hook: the TMA descriptors' box is one key tile, [BLOCK_T, BLOCK_D].
    (Triton keeps no on-disk autotune result for configs with a pre-hook, so the forward re-times
    its configs once a shape in each new process; the backward's results stay on disk.)"""
    for name in ("K_DESC", "V_DESC"):
        if isinstance(nargs[name], TensorDescriptor):
            nargs[name].block_shape = [nargs["BLOCK_T"], nargs["BLOCK_D"]]


def _fwd_candidates(num_seeds: int, block_s: int, block_d: int, pre_hook=None) -> list:
    """The forward's configs (the small-block triples too where the seed block is small); the TMA
    kernel's each carry _tma_blocks as their pre-hook."""
    triples = _FWD_TRIPLES + (_SMALL_FWD_TRIPLES if block_s <= _SMALL_SEED_BLOCK else [])
    return [triton.Config({"BLOCK_T": t}, num_warps=w, num_stages=st, pre_hook=pre_hook)
            for t, w, st in triples]


def _bwd_candidates(num_seeds: int, block_s: int, block_d: int) -> list:
    return [triton.Config({"BLOCK_T": t, "BLOCK_S": bs, "N_SBLK": triton.cdiv(num_seeds, bs)},
                          num_warps=w, num_stages=st)
            for t, w, st, bs in _bwd_configs(num_seeds, block_s, block_d)]


# chunk (T rounded up to 256 when not split) buckets T, so a new length rarely retunes.
_KEY = ["chunk", "NUM_SEEDS", "HEAD_D", "KV_SHARED", "PACKED"]  # (as window_attention)


# ----------------------------------------------------------------------------- kernel helpers

@triton.jit
def _dot(a, b, IEEE: tl.constexpr):
    """tl.dot with fp32 accumulation; IEEE (fp32 inputs) avoids tf32's 1e-3 error."""
    if IEEE:
        out = tl.dot(a, b, input_precision="ieee")
    else:
        out = tl.dot(a, b)
    return out


@triton.jit
def _tile_mask(rows_ok, offs_d, HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr):
    """[R, BLOCK_D] mask; no column test when D is a power of two (keeps loads vectorized)."""
    if BLOCK_D == HEAD_D:
        mask = rows_ok[:, None] & (offs_d < BLOCK_D)[None, :]
    else:
        mask = rows_ok[:, None] & (offs_d < HEAD_D)[None, :]
    return mask


@triton.jit
def _store_result(O, LSE, bh, offs_s, s_ok, offs_d, m, l, acc,
                  NUM_SEEDS: tl.constexpr, HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr):
    """Normalizes acc by l and writes O [B·H, S, D] and lse (natural log); an empty row
    (l == 0, acc == 0) gives O = 0 and lse = -inf instead of 0/0."""
    row = bh.to(tl.int64) * NUM_SEEDS + offs_s
    nonempty = l > 0
    l_safe = tl.where(nonempty, l, 1.0)
    o = acc / l_safe[:, None]
    lse = tl.where(nonempty, (m + tl.log2(l_safe)) * _LN2_C, float("-inf"))
    mask = _tile_mask(s_ok, offs_d, HEAD_D, BLOCK_D)
    tl.store(O + row[:, None] * HEAD_D + offs_d[None, :], o.to(O.dtype.element_ty), mask=mask)
    tl.store(LSE + row, lse, mask=s_ok)


@triton.jit
def _load_seeds(Q, h, offs_s, s_ok, offs_d, sq_h, sq_s, sq_d,
                HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr):
    ptrs = Q + h * sq_h + offs_s[:, None] * sq_s + offs_d[None, :] * sq_d
    return tl.load(ptrs, mask=_tile_mask(s_ok, offs_d, HEAD_D, BLOCK_D), other=0.0)


# ----------------------------------------------------------------------------- forward kernels

@triton.jit
def _online_step(q, kt, vt, m, l, acc, qk_scale, t_ok, MASKED: tl.constexpr, IEEE: tl.constexpr):
    """One key tile of the online softmax: (m, l, acc) updated. MASKED: keys where t_ok is false
    get no weight (their rows were loaded as zeros)."""
    s = _dot(q, tl.trans(kt), IEEE) * qk_scale
    if MASKED:
        s = tl.where(t_ok[None, :], s, float("-inf"))
    # The first tile always holds a valid key, so m_new is finite and no inf - inf occurs.
    m_new = tl.maximum(m, tl.max(s, 1))
    alpha = tl.exp2(m - m_new)
    p = tl.exp2(s - m_new[:, None])
    l = l * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + _dot(p.to(vt.dtype), vt, IEEE)
    return m_new, l, acc


@triton.jit
def _fwd_kernel(
    Q, K, V, K_DESC, V_DESC, LENGTHS, STARTS, O, LSE, M_PART, L_PART, ACC_PART,
    H, T, chunk,
    sq_h, sq_s, sq_d, sk_b, sk_h, sk_t, sk_d, sv_b, sv_h, sv_t, sv_d,
    qk_scale,
    NUM_SEEDS: tl.constexpr, HEAD_D: tl.constexpr, KV_SHARED: tl.constexpr, SPLIT: tl.constexpr,
    PACKED: tl.constexpr, TMA: tl.constexpr,
    IEEE: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr,
):
    """Grid (B·H, T chunks, seed blocks): online softmax of one seed block over one T chunk.

    TMA: K_DESC, V_DESC are TMA descriptors of K, V seen as [rows, columns] (_tma_view): key t of
    example b is row r0 + t (r0 = b·T padded, STARTS[b] packed), head h's columns start at h·sk_h.
    The chunk's whole tiles are then read by TMA, unmasked; its partial last tile (or, without
    TMA, every tile) by masked loads."""
    tl.static_assert(_FILE_DIGEST >= 0)  # keys torch.compile's caches to this file
    qk_scale = tl.cast(qk_scale, tl.float32)  # torch.compile passes Python floats as fp64
    bh = tl.program_id(0)
    b = bh // H
    h = bh % H
    offs_s = tl.program_id(2) * BLOCK_S + tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, BLOCK_D)
    offs_t = tl.arange(0, BLOCK_T)
    s_ok = offs_s < NUM_SEEDS
    q = _load_seeds(Q, h, offs_s, s_ok, offs_d, sq_h, sq_s, sq_d, HEAD_D, BLOCK_D)

    length = tl.minimum(tl.maximum(tl.load(LENGTHS + b).to(tl.int32), 0), T)
    t_lo = tl.program_id(1) * chunk
    t_hi = tl.minimum(t_lo + chunk, length)  # tiles past the length are never touched
    # First row of example b: STARTS[b] packed ([N, H, D]), 0 padded ([B, H, T, D]). Loaded here,
    # not in a helper given STARTS: torch.compile's analysis of a kernel counts every pointer
    # given to a helper whose result feeds a store address as written, and would copy the
    # caller's starts back after each launch (tests/test_kernel_mutation.py).
    row0 = tl.load(STARTS + b).to(tl.int64) if PACKED else b.to(tl.int64) * 0
    k_base = K + b.to(tl.int64) * sk_b + h * sk_h + row0 * sk_t
    v_base = V + b.to(tl.int64) * sv_b + h * sv_h + row0 * sv_t

    m = tl.full([BLOCK_S], float("-inf"), tl.float32)  # running max, log2 domain
    l = tl.zeros([BLOCK_S], tl.float32)  # running sum of exp2(s - m)
    acc = tl.zeros([BLOCK_S, BLOCK_D], tl.float32)
    t_masked = t_lo  # the first key read by masked loads
    if TMA:
        r0 = (row0 if PACKED else b.to(tl.int64) * T).to(tl.int32)  # (_tma_view: rows < 2^31)
        t_masked = t_lo + (t_hi - t_lo) // BLOCK_T * BLOCK_T
        for t0 in range(t_lo, t_masked, BLOCK_T):
            kt = K_DESC.load([r0 + t0, h * sk_h])
            vt = kt if KV_SHARED else V_DESC.load([r0 + t0, h * sv_h])
            m, l, acc = _online_step(q, kt, vt, m, l, acc, qk_scale, offs_t, False, IEEE)
    for t0 in range(t_masked, t_hi, BLOCK_T):
        t = t0 + offs_t
        t_ok = t < t_hi
        mask = _tile_mask(t_ok, offs_d, HEAD_D, BLOCK_D)
        kt = tl.load(k_base + t[:, None] * sk_t + offs_d[None, :] * sk_d, mask=mask, other=0.0)
        if KV_SHARED:
            vt = kt  # K = V: one read feeds both matmuls
        else:
            vt = tl.load(v_base + t[:, None] * sv_t + offs_d[None, :] * sv_d, mask=mask, other=0.0)
        m, l, acc = _online_step(q, kt, vt, m, l, acc, qk_scale, t_ok, True, IEEE)

    if SPLIT:
        row = (tl.program_id(1) * tl.num_programs(0) + bh).to(tl.int64) * NUM_SEEDS + offs_s
        tl.store(M_PART + row, m, mask=s_ok)
        tl.store(L_PART + row, l, mask=s_ok)
        mask = _tile_mask(s_ok, offs_d, HEAD_D, BLOCK_D)
        tl.store(ACC_PART + row[:, None] * HEAD_D + offs_d[None, :], acc, mask=mask)
    else:
        _store_result(O, LSE, bh, offs_s, s_ok, offs_d, m, l, acc, NUM_SEEDS, HEAD_D, BLOCK_D)


@triton.jit
def _combine_kernel(
    M_PART, L_PART, ACC_PART, O, LSE, n_split,
    NUM_SEEDS: tl.constexpr, HEAD_D: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Grid (B·H, seed blocks): merges the per-chunk (max, sum, acc) partials of split T."""
    tl.static_assert(_FILE_DIGEST >= 0)  # keys torch.compile's caches to this file
    bh = tl.program_id(0)
    n_bh = tl.num_programs(0)
    offs_s = tl.program_id(1) * BLOCK_S + tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, BLOCK_D)
    s_ok = offs_s < NUM_SEEDS
    mask = _tile_mask(s_ok, offs_d, HEAD_D, BLOCK_D)

    m_max = tl.full([BLOCK_S], float("-inf"), tl.float32)
    for i in range(n_split):
        row = (i * n_bh + bh).to(tl.int64) * NUM_SEEDS + offs_s
        m_max = tl.maximum(m_max, tl.load(M_PART + row, mask=s_ok, other=float("-inf")))
    m_ref = tl.where(m_max == float("-inf"), 0.0, m_max)  # all chunks empty: weights exp2(-inf) = 0

    l = tl.zeros([BLOCK_S], tl.float32)
    acc = tl.zeros([BLOCK_S, BLOCK_D], tl.float32)
    for i in range(n_split):
        row = (i * n_bh + bh).to(tl.int64) * NUM_SEEDS + offs_s
        w = tl.exp2(tl.load(M_PART + row, mask=s_ok, other=float("-inf")) - m_ref)
        l += w * tl.load(L_PART + row, mask=s_ok, other=0.0)
        part = tl.load(ACC_PART + row[:, None] * HEAD_D + offs_d[None, :], mask=mask, other=0.0)
        acc += w[:, None] * part
    _store_result(O, LSE, bh, offs_s, s_ok, offs_d, m_ref, l, acc, NUM_SEEDS, HEAD_D, BLOCK_D)


# ----------------------------------------------------------------------------- backward kernel

@triton.jit
def _bwd_tile(q, kt, vt, do, lse2, delta, t_ok, qk_scale, IEEE: tl.constexpr, BLOCK_T: tl.constexpr):
    """One K/V tile: (dQ contribution, dK tile, dV tile), dS without its factor `scale`.

    Under 64 rows a tile, dK and dV [BLOCK_T, D] are computed transposed, as [D, S]·[S, BLOCK_T],
    and transposed back: Hopper's wgmma takes a GEMM's rows 64 at a time, and [BLOCK_T, S]·[S, D]
    at BLOCK_T = 32 or 16 ran on the older mma.sync path instead (HMMA against HGMMA in the SASS,
    `bench/compile_kernels.py`; with D >= 64 the transposed GEMMs qualify). At 64 rows the plain
    form is already wgmma, and the transposes would only cost registers."""
    s = _dot(q, tl.trans(kt), IEEE) * qk_scale
    p = tl.where(t_ok[None, :], tl.exp2(s - lse2[:, None]), 0.0)  # padded seeds: lse2 = +inf
    if BLOCK_T < 64:
        dv = tl.trans(_dot(tl.trans(do), p.to(do.dtype), IEEE))
    else:
        dv = _dot(tl.trans(p.to(do.dtype)), do, IEEE)
    dp = _dot(do, tl.trans(vt), IEEE)
    ds = (p * (dp - delta[:, None])).to(q.dtype)
    if BLOCK_T < 64:
        dk = tl.trans(_dot(tl.trans(q), ds, IEEE))
    else:
        dk = _dot(tl.trans(ds), q, IEEE)
    return _dot(ds, kt, IEEE), dk, dv


@triton.jit
def _bwd_kernel(
    Q, K, V, LENGTHS, STARTS, DO, O, LSE, DQ_PART, DK, DV,
    B, H, T, chunk, n_split, per_prog,
    sq_h, sq_s, sq_d, sk_b, sk_h, sk_t, sk_d, sv_b, sv_h, sv_t, sv_d,
    sdo_b, sdo_h, sdo_s, sdo_d, so_b, so_h, so_s, so_d,
    sdk_b, sdk_h, sdk_t, sdk_d, sdv_b, sdv_h, sdv_t, sdv_d,
    scale, qk_scale,
    NUM_SEEDS: tl.constexpr, HEAD_D: tl.constexpr, KV_SHARED: tl.constexpr, SUM_KV: tl.constexpr,
    IEEE: tl.constexpr, N_SBLK: tl.constexpr, PACKED: tl.constexpr,
    BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr,
):
    """Grid (example groups · T chunks, H). Seed blocks outermost (normally one), so dQ of a block
    stays in registers over all examples of the group; later blocks add into dK/dV."""
    tl.static_assert(_FILE_DIGEST >= 0)  # keys torch.compile's caches to this file
    # torch.compile passes Python floats as fp64: compute in fp32 as eager launches do
    scale, qk_scale = tl.cast(scale, tl.float32), tl.cast(qk_scale, tl.float32)
    pid = tl.program_id(0)
    h = tl.program_id(1)
    t_lo = (pid % n_split) * chunk
    t_end = tl.minimum(t_lo + chunk, T)
    offs_d = tl.arange(0, BLOCK_D)
    offs_t = tl.arange(0, BLOCK_T)
    for sb in range(N_SBLK):
        offs_s = sb * BLOCK_S + tl.arange(0, BLOCK_S)
        s_ok = offs_s < NUM_SEEDS
        q = _load_seeds(Q, h, offs_s, s_ok, offs_d, sq_h, sq_s, sq_d, HEAD_D, BLOCK_D)
        dq = tl.zeros([BLOCK_S, BLOCK_D], tl.float32)
        for i in range(per_prog):
            b = (pid // n_split) * per_prog + i
            # A group's tail past B: clamp the index for the loads, and length 0 skips all work.
            b_ok = b < B
            b64 = tl.minimum(b, B - 1).to(tl.int64)
            length = tl.where(b_ok, tl.load(LENGTHS + b64).to(tl.int32), 0)
            t_hi = tl.minimum(tl.maximum(length, 0), t_end)
            rows_mask = _tile_mask(s_ok, offs_d, HEAD_D, BLOCK_D)
            do = tl.load(DO + b64 * sdo_b + h * sdo_h + offs_s[:, None] * sdo_s
                         + offs_d[None, :] * sdo_d, mask=rows_mask, other=0.0)
            o = tl.load(O + b64 * so_b + h * so_h + offs_s[:, None] * so_s
                        + offs_d[None, :] * so_d, mask=rows_mask, other=0.0)
            delta = tl.sum(do.to(tl.float32) * o.to(tl.float32), 1)
            lse_ptrs = LSE + (b64 * H + h) * NUM_SEEDS + offs_s
            lse2 = tl.load(lse_ptrs, mask=s_ok, other=float("inf")) * _LOG2E_C

            row0 = tl.load(STARTS + b64).to(tl.int64) if PACKED else b64 * 0  # (see _fwd_kernel)
            k_base = K + b64 * sk_b + h * sk_h + row0 * sk_t
            v_base = V + b64 * sv_b + h * sv_h + row0 * sv_t
            dk_base = DK + b64 * sdk_b + h * sdk_h + row0 * sdk_t
            dv_base = DV + b64 * sdv_b + h * sdv_h + row0 * sdv_t
            # Padded: stores cover whole tiles below T (rows past the length get zeros). Packed:
            # rows past the length are the next example's, so nothing there is written.
            store_end = t_hi if PACKED else t_end
            for t0 in range(t_lo, t_hi, BLOCK_T):
                t = t0 + offs_t
                t_ok = t < t_hi
                mask = _tile_mask(t_ok, offs_d, HEAD_D, BLOCK_D)
                kt = tl.load(k_base + t[:, None] * sk_t + offs_d[None, :] * sk_d,
                             mask=mask, other=0.0)
                if KV_SHARED:
                    vt = kt
                else:
                    vt = tl.load(v_base + t[:, None] * sv_t + offs_d[None, :] * sv_d,
                                 mask=mask, other=0.0)
                dq_t, dk, dv = _bwd_tile(q, kt, vt, do, lse2, delta, t_ok, qk_scale, IEEE, BLOCK_T)
                dq += dq_t
                dk = dk * scale
                out_mask = _tile_mask(t < store_end, offs_d, HEAD_D, BLOCK_D)
                dk_ptrs = dk_base + t[:, None] * sdk_t + offs_d[None, :] * sdk_d
                dv_ptrs = dv_base + t[:, None] * sdv_t + offs_d[None, :] * sdv_d
                if SUM_KV:
                    dk += dv
                if N_SBLK > 1:
                    if sb > 0:
                        dk += tl.load(dk_ptrs, mask=out_mask, other=0.0).to(tl.float32)
                        if not SUM_KV:
                            dv += tl.load(dv_ptrs, mask=out_mask, other=0.0).to(tl.float32)
                tl.store(dk_ptrs, dk.to(DK.dtype.element_ty), mask=out_mask)
                if not SUM_KV:
                    tl.store(dv_ptrs, dv.to(DV.dtype.element_ty), mask=out_mask)

            # Whole tiles past the length: write zeros, read nothing (first seed block only).
            z_lo = t_lo + tl.cdiv(tl.maximum(t_hi - t_lo, 0), BLOCK_T) * BLOCK_T
            if PACKED:  # no padded rows exist
                z_hi = t_lo * 0
            else:
                z_hi = tl.where(b_ok & (sb == 0), t_end, 0)
            zeros = tl.zeros([BLOCK_T, BLOCK_D], tl.float32)
            for t0 in range(z_lo, z_hi, BLOCK_T):
                t = t0 + offs_t
                out_mask = _tile_mask(t < t_end, offs_d, HEAD_D, BLOCK_D)
                tl.store(dk_base + t[:, None] * sdk_t + offs_d[None, :] * sdk_d,
                         zeros.to(DK.dtype.element_ty), mask=out_mask)
                if not SUM_KV:
                    tl.store(dv_base + t[:, None] * sdv_t + offs_d[None, :] * sdv_d,
                             zeros.to(DV.dtype.element_ty), mask=out_mask)

        row = (pid * H + h).to(tl.int64) * NUM_SEEDS + offs_s
        tl.store(DQ_PART + row[:, None] * HEAD_D + offs_d[None, :], dq * scale,
                 mask=_tile_mask(s_ok, offs_d, HEAD_D, BLOCK_D))
        if N_SBLK > 1:
            tl.debug_barrier()  # the next seed block reads back the dK/dV tiles stored above


def _fwd_tiles(bs: int, bd: int, bt: int) -> int:
    """fp32 tile elements a forward program holds: scores [S, T] and acc [S, D]."""
    return bs * bt + bs * bd


_fwd_tuned = _tuned(_fwd_kernel, _fwd_candidates, _KEY, budget=128, tiles=_fwd_tiles)
# The TMA forward's own autotuner: wrap_triton refuses configs with a pre-hook, so the two are kept
# apart (each tunes for itself; Triton keeps no on-disk result for a pre-hook's configs).
_fwd_tma_tuned = _tuned(_fwd_kernel, functools.partial(_fwd_candidates, pre_hook=_tma_blocks), _KEY,
                        budget=128, tiles=_fwd_tiles)


def _bwd_tiles(bs: int, bd: int, bt: int) -> int:
    """fp32 tile elements a backward program holds: scores and dP [S, T], dK and dV [T, D], dQ [S, D]."""
    return 2 * bs * bt + 2 * bt * bd + bs * bd


_BWD_BUDGET = 288   # registers a thread by that count (see _BWD_TRIPLES)
_bwd_tuned = _tuned(_bwd_kernel, _bwd_candidates, _KEY + ["SUM_KV"], budget=_BWD_BUDGET, tiles=_bwd_tiles)


def _tuned_kernel(get, meta: dict):
    return get(meta["NUM_SEEDS"], meta["BLOCK_S"], meta["BLOCK_D"], meta["KV_SHARED"], meta["IEEE"])


# ----------------------------------------------------------------------------- host side

def unsupported(seeds: torch.Tensor, k: torch.Tensor, v: torch.Tensor, packed: bool = False) -> str | None:
    """None when the kernels handle these inputs, else a one-line reason. `packed`: k, v are
    [N, H, D], the batch's rows back to back."""
    kv_dims, kv_shape = (3, "[N, H, D]") if packed else (4, "[B, H, T, D]")
    if seeds.dim() != 3 or k.dim() != kv_dims or v.dim() != kv_dims:
        return (f"expected seeds [H, S, D] and k, v {kv_shape}, "
                f"got {seeds.dim()}, {k.dim()}, {v.dim()} dims")
    if k.shape != v.shape:
        return f"k and v must have one shape, got {tuple(k.shape)} and {tuple(v.shape)}"
    H, S, D = seeds.shape
    if k.shape[1] != H or k.shape[-1] != D:
        return f"seeds {tuple(seeds.shape)} do not match k {tuple(k.shape)} in heads or head dim"
    if not seeds.dtype == k.dtype == v.dtype or k.dtype not in _DTYPES:
        return (f"seeds, k, v must share one of float32/float16/bfloat16, "
                f"got {seeds.dtype}, {k.dtype}, {v.dtype}")
    if D > _MAX_HEAD_DIM:
        return f"head dim {D} > {_MAX_HEAD_DIM}"
    if not seeds.device == k.device == v.device:
        return "seeds, k, v are on different devices"
    if k.device.type != "cuda" and not (_INTERPRET and k.device.type == "cpu"):
        return f"needs CUDA tensors (or CPU with TRITON_INTERPRET=1), got {k.device.type}"
    return None


def _check(seeds, k, v, lengths, starts=None, max_len=None) -> tuple[int, int]:
    """(B, T) of valid inputs: padded k, v [B, H, T, D], or packed [N, H, D] with starts [B]."""
    packed = starts is not None
    reason = unsupported(seeds, k, v, packed)
    if reason is not None:
        raise ValueError(f"seed_pooling: {reason}")
    if lengths.dim() != 1 or lengths.dtype not in (torch.int32, torch.int64) or (
            not packed and lengths.shape[0] != k.shape[0]):
        raise ValueError(f"seed_pooling: lengths must be int32/int64 [B], "
                         f"got {lengths.dtype} {tuple(lengths.shape)}")
    if not packed:
        return k.shape[0], k.shape[2]
    if starts.shape != lengths.shape or starts.device != k.device:
        raise ValueError(f"seed_pooling: starts must be [B] = [{lengths.shape[0]}] on {k.device}, "
                         f"got {tuple(starts.shape)} on {starts.device}")
    if max_len is None or max_len < 0:
        raise ValueError("seed_pooling: packed k, v need max_len, a bound on every length")
    return lengths.shape[0], int(max_len)


def _same_tensor(k: torch.Tensor, v: torch.Tensor) -> bool:
    """k and v view the same memory the same way (then K/V is read once)."""
    if k is v:
        return True
    try:
        return k.data_ptr() == v.data_ptr() and k.stride() == v.stride() and k.shape == v.shape
    except RuntimeError:  # fake tensors while tracing have no data
        return False


@functools.cache
def _num_sms(device: torch.device) -> int:
    if device.type != "cuda":
        return 132  # interpreter: pretend to be an H200 so tests take the same paths
    return torch.cuda.get_device_properties(device).multi_processor_count


# Host arithmetic on plain ints: triton.cdiv and triton.next_power_of_2 are constexpr functions whose
# every host call goes through Triton's wrapper (a few microseconds each; bench/host_python.py).
def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _next_power_of_2(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 0 else 0


def _seed_blocks(S: int, D: int) -> tuple[int, int, int]:
    """(BLOCK_S, BLOCK_D, number of seed blocks). tl.dot needs every dim >= 16."""
    block_d = max(16, _next_power_of_2(D))
    block_s = min(max(16, _next_power_of_2(S)), max(16, _SEED_TILE // block_d))
    return block_s, block_d, _cdiv(S, block_s)


def _chunk(T: int, programs: int, n_sm: int) -> int:
    """T chunk per program: all of T, unless `programs` cannot fill the GPU twice over."""
    whole = max(_CHUNK_MULTIPLE, _cdiv(T, _CHUNK_MULTIPLE) * _CHUNK_MULTIPLE)
    if programs >= 2 * n_sm:
        return whole
    want = _cdiv(2 * n_sm, programs)  # splits per program to reach ~2 waves
    chunk = _cdiv(_cdiv(T, want), _CHUNK_MULTIPLE) * _CHUNK_MULTIPLE
    return max(_CHUNK_MULTIPLE, chunk)


def _strides(x: torch.Tensor, packed: bool = False) -> tuple[int, ...]:
    """Strides as the kernels take them; packed [N, H, D] as (b, h, t, d) with no batch stride."""
    if packed:
        return 0, x.stride(1), x.stride(0), x.stride(2)
    return tuple(x.stride())


def _meta(seeds, k, v, scale) -> tuple[dict, int]:
    """Kernel constexprs shared by forward and backward, and the number of seed blocks. The seed
    count and head dim are made plain ints: under torch.compile with dynamic shapes they arrive as
    SymInts, which the tuned-kernel cache cannot hash (int() specializes the graph on them, as the
    kernel, compiled per constexpr, must be)."""
    S, D = int(seeds.shape[1]), int(seeds.shape[2])
    block_s, block_d, n_sblk = _seed_blocks(S, D)
    return dict(NUM_SEEDS=S, HEAD_D=D, KV_SHARED=_same_tensor(k, v),
                IEEE=k.dtype == torch.float32, BLOCK_S=block_s, BLOCK_D=block_d), n_sblk


def seed_pooling_forward(seeds: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                         lengths: torch.Tensor, scale: float, starts: torch.Tensor | None = None,
                         max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """o [B, H, S, D] (input dtype) and lse [B, H, S] (float32, natural log, -inf if empty).

    k, v padded [B, H, T, D]; or packed (starts given) [N, H, D], example b's lengths[b] rows
    from row starts[b] (CSR offsets[:-1]), max_len bounding every length."""
    return _forward(seeds, k, v, lengths, scale, starts=starts, max_len=max_len)


def _tma_view(x: torch.Tensor, packed: bool, block_d: int) -> TensorDescriptor | None:
    """A TMA descriptor of x (padded [B, H, T, D] or packed [N, H, D]) as a 2-D tensor [rows, W]:
    row b·T + t (padded) or n (packed), columns h·stride_h + d. None where TMA cannot read x so:
    D below its block (the box would take the next head's columns), a batch stride that is not
    T rows, heads that overlap or pass the row, unaligned rows (TMA needs 16-byte strides and
    base), no rows, or 2^31 rows or more (TMA's coordinates are int32). Its box is set per config
    (_tma_blocks)."""
    D = x.shape[-1]
    if x.stride(-1) != 1 or D != block_d or x.data_ptr() % 16:
        return None
    if packed:
        rows, pitch = x.shape[0], x.stride(0)
    else:
        B, _, T, _ = x.shape
        rows, pitch = B * T, x.stride(2)
        if B > 1 and x.stride(0) != T * pitch:
            return None
    heads, head_stride = x.shape[1], x.stride(1)
    width = (heads - 1) * head_stride + D
    if (rows == 0 or rows >= 2 ** 31 or (heads > 1 and head_stride < D) or width > pitch
            or (pitch * x.element_size()) % 16):
        return None
    return TensorDescriptor(x, [rows, width], [pitch, 1], [16, block_d])


# Below this many bytes of K (padded: all rows; packed: the rows given) the forward keeps its
# pointer loads: a TMA launch costs more host time (the descriptors are built and encoded at every
# call: 88 -> 103 µs and 122 -> 196 µs a call in host-bound loops on the H200, BENCHMARKS.md, seed
# pooling, twenty-fourth session) and what it saves is a tenth of a kernel that reads 64 MiB in
# about 20 µs. The models' level-1 poolings read hundreds of MB; their level-2 ones about 30.
_TMA_MIN_BYTES = 64 << 20


@functools.cache
def _has_tma(device: torch.device) -> bool:
    """A Hopper or newer GPU (asked once a device: the query costs microseconds a call)."""
    return torch.cuda.get_device_capability(device)[0] >= 9


def _plain_eager(x: torch.Tensor) -> bool:
    """True when running eagerly on plain tensors: not traced by torch.compile, make_fx or any
    dispatch-mode tracer (they get the pointer-load kernel through wrap_triton)."""
    return (type(x) is torch.Tensor and not torch.compiler.is_compiling()
            and torch._C._len_torch_dispatch_stack() == 0)


def _direct(x: torch.Tensor) -> bool:
    """A launch can skip Triton's per-launch work (bound_launch): an eager call on plain CUDA
    tensors. Traced calls go through wrap_triton, interpreted ones through Triton."""
    return x.device.type == "cuda" and not _INTERPRET and _plain_eager(x)


def _launch(kernel, grid: tuple, args: tuple, constexprs: dict, how: str, tuned: bool = False) -> None:
    """kernel[grid](*args, **constexprs), `how`: "bound" (_direct calls) through bound_launch
    (launch_tuned for an autotuned kernel) where it is beside this file; "plain", Triton's own
    launch (the TMA forward in the interpreter; "bound" without bound_launch); "traced", through
    wrap_triton, which traces it under torch.compile."""
    bound = _bound_launch() if how == "bound" else None
    if bound is not None:
        (bound.launch_tuned if tuned else bound.launch)(kernel, grid, args, constexprs)
    elif how != "traced":
        kernel[grid](*args, **constexprs)
    else:
        torch.library.wrap_triton(kernel)[grid](*args, **constexprs)


def _tma_views(k, v, packed: bool, block_d: int, tma: bool | None):
    """(K_DESC, V_DESC) for the forward: TMA descriptors where `tma` (None: an eager launch on
    plain tensors of a Hopper or newer GPU, not interpreted, K of _TMA_MIN_BYTES or more) and the
    layout allows, else k and v themselves (unused)."""
    if tma is None:
        tma = (k.device.type == "cuda" and not _INTERPRET and _plain_eager(k)
               and k.numel() * k.element_size() >= _TMA_MIN_BYTES and _has_tma(k.device))
    if not tma:
        return k, v
    kd = _tma_view(k, packed, block_d)
    vd = kd if _same_tensor(k, v) else _tma_view(v, packed, block_d)
    return (kd, vd) if kd is not None and vd is not None else (k, v)


def _forward(seeds, k, v, lengths, scale, chunk: int | None = None, starts=None, max_len=None,
             tma: bool | None = None):
    """seed_pooling_forward; `chunk` (a multiple of 256) overrides the split-T heuristic; `tma`
    forces whole key tiles by TMA on (where the layout allows; the interpreter reads descriptors
    too; launched directly, so not for traced calls) or off (None: _tma_views decides)."""
    B, T = _check(seeds, k, v, lengths, starts, max_len)
    packed = starts is not None
    H, D = k.shape[1], k.shape[-1]
    S = seeds.shape[1]
    o = k.new_empty(B, H, S, D)
    lse = torch.empty(B, H, S, dtype=torch.float32, device=k.device)
    if o.numel() == 0:
        return o, lse
    meta, n_sblk = _meta(seeds, k, v, scale)
    chunk = chunk or _chunk(T, B * H * n_sblk, _num_sms(k.device))
    n_split = _cdiv(max(T, 1), chunk)
    args = (H, T, chunk, *_strides(seeds), *_strides(k, packed), *_strides(v, packed), scale * _LOG2E)
    starts = starts if packed else lengths        # (read only when PACKED)
    k_desc, v_desc = _tma_views(k, v, packed, meta["BLOCK_D"], tma)
    inputs = (seeds, k, v, k_desc, v_desc, lengths, starts)
    use_tma = isinstance(k_desc, TensorDescriptor)
    # The TMA kernel is launched directly: torch traces a host descriptor only where dynamo itself
    # traces the launch (torch 2.11-2.13), and the eager path is the only one that takes it.
    tuner = _tuned_kernel(_fwd_tma_tuned if use_tma else _fwd_tuned, meta)
    how = "bound" if _direct(k) else "plain" if use_tma else "traced"
    if n_split == 1:
        _launch(tuner, (B * H, 1, n_sblk), (*inputs, o, lse, lse, lse, lse, *args),
                dict(SPLIT=False, PACKED=packed, TMA=use_tma, **meta), how, tuned=True)
        return o, lse
    m_part = torch.empty(n_split, B, H, S, dtype=torch.float32, device=k.device)
    l_part = torch.empty_like(m_part)
    acc_part = torch.empty(n_split, B, H, S, D, dtype=torch.float32, device=k.device)
    _launch(tuner, (B * H, n_split, n_sblk), (*inputs, o, lse, m_part, l_part, acc_part, *args),
            dict(SPLIT=True, PACKED=packed, TMA=use_tma, **meta), how, tuned=True)
    # no launch options for the combine kernel: see _tuned
    _launch(_combine_kernel, (B * H, n_sblk), (m_part, l_part, acc_part, o, lse, n_split),
            dict(NUM_SEEDS=S, HEAD_D=D, BLOCK_S=meta["BLOCK_S"], BLOCK_D=meta["BLOCK_D"]),
            how if how == "bound" else "traced")
    return o, lse


def seed_pooling_backward(grad_out, seeds, k, v, o, lse, lengths, scale: float, starts=None,
                          max_len: int | None = None):
    """(dseeds [H, S, D], dk, dv like k, v), zero past each length (packed: rows outside every
    example's rows are left as allocated). When k is v the caller's gradient for the shared
    tensor is dk + dv (autograd adds them); see the _shared_kv variant."""
    return _backward(grad_out, seeds, k, v, o, lse, lengths, scale, starts=starts, max_len=max_len)


def seed_pooling_backward_shared_kv(grad_out, seeds, kv, o, lse, lengths, scale: float, starts=None,
                                    max_len: int | None = None):
    """For K = V = kv: (dseeds, dkv) with dkv = dk + dv summed in the kernel, written once
    (half the gradient writes of the pair, and no separate add)."""
    dseeds, dkv, _ = _backward(grad_out, seeds, kv, kv, o, lse, lengths, scale, sum_kv=True,
                               starts=starts, max_len=max_len)
    return dseeds, dkv


_DQ_PARTS_BYTES = 256 << 20   # the fp32 dQ partials' bound, past which examples share programs


def _examples_per_program(B: int, H: int, S: int, D: int, n_sm: int) -> int:
    """Examples one backward program takes in turn (their dQ summed in its registers): one, so
    that the B·H programs fill the GPU in many waves, unless there are more than 32 an SM or their
    dQ partials ([B·H, S, D] fp32 before the final sum) would pass _DQ_PARTS_BYTES. Folding
    examples only to leave 4 programs an SM, as before, left a partial last wave: bench shape 1
    (B 1024, H 4) ran 2.2 waves of 7-example programs, and one example a program made the level-1
    forward+backward 1.18x faster there and 1.15x at shape 2 (BENCHMARKS.md, seed pooling,
    twenty-third session; the Nsight Compute counters showed the backward issuing in 32% of its
    cycles at 12% occupancy)."""
    by_programs = (B * H) // (32 * n_sm)
    by_bytes = _cdiv(B * H * S * D * 4, _DQ_PARTS_BYTES)
    return max(1, min(8, by_programs), by_bytes)


def _backward(grad_out, seeds, k, v, o, lse, lengths, scale, sum_kv=False,
              chunk: int | None = None, per_prog: int | None = None, starts=None, max_len=None):
    """`chunk` and `per_prog` (examples per program) override the partition heuristic."""
    B, T = _check(seeds, k, v, lengths, starts, max_len)
    packed = starts is not None
    H, D = k.shape[1], k.shape[-1]
    S = seeds.shape[1]
    if B * H * T * S == 0 or k.numel() == 0:
        dk = torch.zeros_like(k)
        return torch.zeros_like(seeds), dk, dk if sum_kv else torch.zeros_like(v)
    meta, _ = _meta(seeds, k, v, scale)
    kernel = _tuned_kernel(_bwd_tuned, meta)
    del meta["BLOCK_S"]   # the backward's seed block is a tuned choice (its configs carry it and N_SBLK)
    dk = torch.empty_like(k)  # keeps k's layout (e.g. a transposed [B, T, H·D] view)
    dv = dk if sum_kv else torch.empty_like(v)
    n_sm = _num_sms(k.device)
    if per_prog is None:
        per_prog = _examples_per_program(B, H, S, D, n_sm)
    n_groups = _cdiv(B, per_prog)
    chunk = chunk or _chunk(T, n_groups * H, n_sm)
    n_split = _cdiv(T, chunk)
    dq_part = torch.empty(n_groups * n_split, H, S, D, dtype=torch.float32, device=k.device)
    _launch(kernel, (n_groups * n_split, H),
            (seeds, k, v, lengths, starts if packed else lengths, grad_out, o, lse, dq_part, dk, dv,
             B, H, T, chunk, n_split, per_prog,
             *_strides(seeds), *_strides(k, packed), *_strides(v, packed), *_strides(grad_out), *_strides(o),
             *_strides(dk, packed), *_strides(dv, packed), scale, scale * _LOG2E),
            dict(SUM_KV=sum_kv, PACKED=packed, **meta), "bound" if _direct(k) else "traced", tuned=True)
    return dq_part.sum(0).to(seeds.dtype), dk, dv
