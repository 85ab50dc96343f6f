"""The Triton seed-pooling kernels (templates/kernels/seed_pooling.py) against the plain-torch
reference of the ops module, in float64.

On CPU the kernels run in Triton's interpreter (conftest sets TRITON_INTERPRET=1), in fp32 and fp16
(the interpreter's bf16 is wrong on the CI machine); bf16 is checked by the `gpu` tests. Errors are
norm-wise, ||x - ref|| / ||ref||, with per-dtype bounds that real bugs exceed by orders of magnitude.
"""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from opsload import load_ops
from packing import pack_rows, reversed_starts, unpack_rows

KERNEL = Path(__file__).resolve().parent.parent / "templates" / "kernels" / "seed_pooling.py"


def _load_kernels():
    spec = importlib.util.spec_from_file_location("_kunlunc_kernels_seed_pooling", KERNEL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sp = _load_kernels()
ops = load_ops("kunlunc_test_triton_seed")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BOUND = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def rel_err(x: torch.Tensor, ref: torch.Tensor, floor: float = 1e-30) -> float:
    """||x - ref|| / max(||ref||, floor); NaN anywhere gives NaN, which fails every bound."""
    x, ref = x.detach().double().cpu(), ref.detach().double().cpu()
    return ((x - ref).norm() / max(ref.norm().item(), floor)).item()


def make_lengths(B: int, T: int, gen: torch.Generator) -> torch.Tensor:
    """Full, empty, one key, then random lengths (one past T, which counts as full)."""
    pattern = [T, 0, min(1, T)]
    rand = torch.randint(0, T + 1, (max(B - 3, 0),), generator=gen).tolist()
    if B >= 5:
        rand[-1] = T + 3
    return torch.tensor((pattern + rand)[:B], dtype=torch.int64, device=DEVICE)


def make_inputs(B, H, T, D, S, dtype, shared, seed=0):
    gen = torch.Generator().manual_seed(seed)
    seeds = torch.randn(H, S, D, generator=gen).to(DEVICE, dtype)
    # The model's layout: a [B, T, H·D] sequence viewed as [B, H, T, D] (not contiguous).
    k = torch.randn(B, T, H * D, generator=gen).to(DEVICE, dtype).view(B, T, H, D).transpose(1, 2)
    v = k if shared else torch.randn(B, H, T, D, generator=gen).to(DEVICE, dtype)
    return seeds, k, v, make_lengths(B, T, gen), gen


def reference(seeds, k, v, lengths, scale, grad_out, shared):
    """float64 output and gradients; for k is v the one gradient of the shared tensor."""
    s64 = seeds.detach().double().cpu().requires_grad_()
    k64 = k.detach().double().cpu().requires_grad_()
    v64 = k64 if shared else v.detach().double().cpu().requires_grad_()
    out = ops.seed_pooling_reference(s64, k64, v64, lengths.cpu(), scale)
    out.backward(grad_out.double().cpu())
    grads = [x.grad if x.grad is not None else torch.zeros_like(x) for x in (s64, k64, v64)]
    return out, grads[0], grads[1], (None if shared else grads[2])  # T = 0: no graph, zeros


def check(seeds, k, v, lengths, gen, dtype, shared, forward=sp._forward, backward=sp._backward,
          scale=None):
    scale = seeds.shape[-1] ** -0.5 if scale is None else scale
    o, lse = forward(seeds, k, v, lengths, scale)
    assert o.dtype == dtype and lse.dtype == torch.float32
    assert o.shape == (k.shape[0], k.shape[1], seeds.shape[1], k.shape[3])
    grad_out = torch.randn(o.shape, generator=gen).to(DEVICE, dtype)
    dseeds, dk, dv = backward(grad_out, seeds, k, v, o, lse, lengths, scale)
    ref_o, ref_ds, ref_dk, ref_dv = reference(seeds, k, v, lengths, scale, grad_out, shared)

    # Softmax over one key is constant: with every length <= 1 the exact dseeds and dk are 0 and
    # only rounding is left, so measure them against the size of the gradient that is not 0.
    trivial = lengths.numel() == 0 or int(lengths.clamp(max=k.shape[2]).max()) <= 1
    floor = max((ref_dk if shared else ref_dv).norm().item(), 1e-30) if trivial else 1e-30
    errors = {"o": rel_err(o, ref_o), "dseeds": rel_err(dseeds, ref_ds, floor)}
    if shared:
        errors["dk+dv"] = rel_err(dk.double() + dv.double(), ref_dk)
    else:
        errors["dk"], errors["dv"] = rel_err(dk, ref_dk, floor), rel_err(dv, ref_dv)
    bad = {name: err for name, err in errors.items() if not err <= BOUND[dtype]}
    assert not bad, f"relative errors over {BOUND[dtype]:g}: {bad}"
    return o, lse, dk, dv


# (B, H, T, D, S, shared): T = 0, 1, 37 (one or two tiles), 300 (several tiles, and two T chunks
# because B·H is small); D and S off powers of two; B = 0.
CASES = [
    (3, 3, 0, 16, 5, True),
    (3, 1, 1, 16, 1, False),
    (4, 3, 37, 48, 5, True),
    (3, 1, 37, 64, 16, False),
    (4, 3, 300, 64, 40, True),
    (3, 1, 300, 48, 16, False),
    (5, 1, 300, 16, 5, True),
    (0, 3, 37, 16, 5, True),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("B,H,T,D,S,shared", CASES, ids=lambda x: str(x))
def test_forward_and_gradients(B, H, T, D, S, shared, dtype):
    seeds, k, v, lengths, gen = make_inputs(B, H, T, D, S, dtype, shared)
    check(seeds, k, v, lengths, gen, dtype, shared)


@pytest.mark.parametrize("chunk", [None, 256], ids=["one pass", "split T"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("B,H,T,D,S,shared", CASES, ids=lambda x: str(x))
def test_forward_with_tma(B, H, T, D, S, shared, dtype, chunk):
    """The forward as it runs on a Hopper GPU: the whole key tiles of each chunk through TMA
    descriptors, the partial last one by masked loads (the interpreter reads descriptors too);
    D 48 has no descriptor (its box would take the next head's columns) and runs as before."""
    seeds, k, v, lengths, gen = make_inputs(B, H, T, D, S, dtype, shared)
    forward = lambda *a: sp._forward(*a, chunk=chunk, tma=True)
    assert (sp._tma_views(k, v, False, sp._seed_blocks(S, D)[1], True)[0] is not k) == (D != 48 and B * T > 0)
    check(seeds, k, v, lengths, gen, dtype, shared, forward=forward)


def test_tma_forward_reads_its_descriptors(monkeypatch):
    """The TMA path does read K/V through the descriptors (given descriptors of zeros, whole
    tiles weigh as zero keys) and only for whole tiles (an example shorter than one tile is
    unchanged)."""
    seeds, k, _, _, _ = make_inputs(3, 2, 100, 16, 5, torch.float32, True)
    lengths = torch.tensor([100, 20, 64], device=DEVICE)       # the interpreter's BLOCK_T is 32
    views = sp._tma_views

    def zeros(k, v, packed, block_d, tma):
        kd, _ = views(k, v, packed, block_d, tma)
        kd = sp.TensorDescriptor(torch.zeros_like(kd.base), kd.shape, kd.strides, kd.block_shape)
        return kd, kd
    o, _ = sp._forward(seeds, k, k, lengths, 0.25, tma=True)
    monkeypatch.setattr(sp, "_tma_views", zeros)
    o_zeros, _ = sp._forward(seeds, k, k, lengths, 0.25, tma=True)
    assert rel_err(o_zeros[0], o[0]) > 0.1 and rel_err(o_zeros[2], o[2]) > 0.1
    assert torch.equal(o_zeros[1], o[1])


def test_tma_view_of_each_layout():
    """_tma_view: the models' layouts as 2-D [rows, columns] views; None where TMA cannot read."""
    x = torch.zeros(3, 40, 4 * 64, device=DEVICE)
    d = sp._tma_view(x.view(3, 40, 4, 64).transpose(1, 2), False, 64)          # [B, T, H·D] seen as [B, H, T, D]
    assert (d.shape, d.strides) == ([120, 256], [256, 1])
    wide = torch.zeros(3, 40, 5 * 64, device=DEVICE)[..., 64:]                  # heads of a wider projection
    d = sp._tma_view(wide.view(3, 40, 4, 64).transpose(1, 2), False, 64)
    assert (d.shape, d.strides, d.base.data_ptr()) == ([120, 256], [320, 1], wide.data_ptr())
    d = sp._tma_view(torch.zeros(50, 4, 64, device=DEVICE), True, 64)          # packed rows [N, H, D]
    assert (d.shape, d.strides) == ([50, 256], [256, 1])
    assert sp._tma_view(torch.zeros(3, 4, 40, 64, device=DEVICE), False, 64) is None      # contiguous [B, H, T, D]
    assert sp._tma_view(torch.zeros(3, 40, 4 * 48, device=DEVICE).view(3, 40, 4, 48).transpose(1, 2),
                        False, 64) is None                                                  # D under its block
    assert sp._tma_view(torch.zeros(3, 0, 4 * 64, device=DEVICE).view(3, 0, 4, 64).transpose(1, 2),
                        False, 64) is None                                                  # no rows
    odd = torch.zeros(3 * 40 * 4 * 64 + 1, device=DEVICE)[1:].view(3, 40, 4, 64).transpose(1, 2)
    assert sp._tma_view(odd, False, 64) is None                                             # base not 16-byte aligned
    assert sp._tma_views(x, x, False, 64, False) == (x, x)                                  # off: k and v themselves
    assert sp._tma_views(x, x, False, 64, None) == (x, x)      # the CPU, or too small for TMA to pay


@pytest.mark.gpu
def test_tma_only_where_it_pays():
    """On a Hopper GPU an eager forward takes TMA by itself for K of 64 MiB or more, not below, and
    never where it is traced (under a dispatch mode, as torch.compile and make_fx trace it)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Passthrough(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("needs a Hopper GPU (TMA)")
    big = torch.zeros(256, 1024, 2 * 64, device=DEVICE, dtype=torch.bfloat16).view(256, 1024, 2, 64).transpose(1, 2)
    assert big.numel() * 2 == sp._TMA_MIN_BYTES
    assert isinstance(sp._tma_views(big, big, False, 64, None)[0], sp.TensorDescriptor)
    small = big[:255]
    assert sp._tma_views(small, small, False, 64, None) == (small, small)
    with Passthrough():
        assert sp._tma_views(big, big, False, 64, None) == (big, big)


def test_head_dim_128():
    seeds, k, v, lengths, gen = make_inputs(4, 1, 37, 128, 5, torch.float32, False)
    check(seeds, k, v, lengths, gen, torch.float32, False)


@pytest.mark.parametrize("scale", [0.3, -0.3, 0.0])
def test_any_scale_and_whole_tiles(scale):
    """Any scale: 0 (uniform weights: a masked key must weigh 0, not NaN) and below 0 as well as
    above, with lengths at, one under and one over the key tile's multiples (the interpreter's
    BLOCK_T is 32), an empty example and a one-key one. (The twenty-second session wrote it for
    an FMA-scaled forward with unmasked whole tiles, measured and dropped; the forward it checks
    scales every score and masks every tile.)"""
    seeds, k, v, _, gen = make_inputs(8, 2, 100, 16, 5, torch.float32, True)
    lengths = torch.tensor([64, 32, 33, 31, 96, 100, 0, 1], device=DEVICE)
    check(seeds, k, v, lengths, gen, torch.float32, True, scale=scale)


def test_split_and_unsplit_agree():
    """At T = 300 both the one-pass forward (chunk 512) and split T (two chunks + combine), and
    the backward with examples grouped per program (5 examples in groups of 2, tail past B)."""
    seeds, k, v, lengths, gen = make_inputs(5, 2, 300, 16, 5, torch.float32, True)
    unsplit = lambda *a: sp._forward(*a, chunk=512)
    grouped = lambda *a: sp._backward(*a, chunk=256, per_prog=2)
    o1, lse1, dk1, _ = check(seeds, k, v, lengths, gen, torch.float32, True, unsplit, grouped)
    o2, lse2 = sp._forward(seeds, k, v, lengths, seeds.shape[-1] ** -0.5, chunk=256)
    assert rel_err(o1, o2) <= 1e-6
    torch.testing.assert_close(lse1, lse2)


def test_backward_takes_one_example_a_program_until_the_partials_grow():
    """The backward's examples per program: one at the benchmark's and the presets' shapes (their
    B·H programs fill an H200 in many waves); several only past 32 programs an SM (capped at 8) or
    where the fp32 dQ partials [B·H, S, D] would pass 256 MB, which they then stay under."""
    n_sm = 132
    for B, H, S, D in ((1024, 4, 64, 64), (512, 8, 128, 64), (256, 8, 128, 64), (256, 6, 64, 64),
                       (64, 8, 128, 64), (1, 1, 1, 16)):
        assert sp._examples_per_program(B, H, S, D, n_sm) == 1, (B, H, S, D)
    assert sp._examples_per_program(2048, 8, 16, 16, n_sm) == 3          # 16,384 programs: 3 a program
    assert sp._examples_per_program(100_000, 8, 16, 16, n_sm) == 8      # the programs' cap
    assert sp._examples_per_program(16384, 8, 128, 64, n_sm) == 16      # the partials' bound
    for B, H, S, D in ((16384, 8, 128, 64), (4096, 8, 128, 128), (100_000, 8, 16, 16)):
        per_prog = sp._examples_per_program(B, H, S, D, n_sm)
        assert -(-B // per_prog) * H * S * D * 4 <= sp._DQ_PARTS_BYTES + per_prog * H * S * D * 4


def test_several_seed_blocks(monkeypatch):
    """S beyond one register tile: forward programs per seed block, backward adding into dK/dV."""
    monkeypatch.setattr(sp, "_SEED_TILE", 16 * 16)  # D 16 -> blocks of 16 seeds: 40 = 3 blocks
    for shared in (True, False):
        seeds, k, v, lengths, gen = make_inputs(3, 2, 70, 16, 40, torch.float32, shared)
        check(seeds, k, v, lengths, gen, torch.float32, shared)


def test_backward_over_smaller_seed_blocks_than_the_forward(monkeypatch):
    """The backward's seed block is a tuned choice: offered blocks smaller than the forward's (the
    interpreter runs the first, the smallest) loop over seeds adding into dK/dV, and still match."""
    monkeypatch.setattr(sp, "_SMALL_SEED_TILE", 16 * 16)   # 40 seeds, D 16: blocks of 64 -> 16
    sp._bwd_tuned.cache_clear()
    try:
        block_s, block_d, n_sblk = sp._seed_blocks(40, 16)
        configs = sp._bwd_configs(40, block_s, block_d)
        assert (block_s, n_sblk) == (64, 1) and configs[0][3] == 16
        assert {c[3] for c in configs} == {16, 64}
        for shared in (True, False):
            seeds, k, v, lengths, gen = make_inputs(3, 2, 70, 16, 40, torch.float32, shared)
            check(seeds, k, v, lengths, gen, torch.float32, shared)
    finally:
        sp._bwd_tuned.cache_clear()


def test_small_seed_blocks_only_where_one_block_is_large():
    """64 seeds at D 128 and 128 at D 64 (a dQ block past 32 x 128) get 32- and 64-row
    alternatives (8 warps, short tiles), the untuned default first: 32-row T tiles, which spill in
    no layout (16-row ones spill 24 bytes at D 128); 64 seeds at D 64 keep their one family."""
    assert sp._bwd_configs(64, 64, 128)[0] == (32, 8, 2, 32)
    assert sp._bwd_configs(128, 128, 64)[0] == (32, 8, 2, 64)
    assert {c[3] for c in sp._bwd_configs(64, 64, 128)} == {32, 64}
    assert {c[3] for c in sp._bwd_configs(128, 128, 64)} == {64, 128}
    assert {c[3] for c in sp._bwd_configs(64, 64, 64)} == {64}
    assert all(w == 8 and t <= 32 for t, w, _, bs in sp._bwd_configs(64, 64, 128) if bs == 32)


@pytest.mark.parametrize("seeds, head_dim, small", [(8, 64, True), (16, 64, True), (32, 128, True),
                                                    (33, 64, False), (64, 64, False), (128, 64, False)])
def test_forward_offers_one_and_two_warp_configs_only_over_small_seed_blocks(seeds, head_dim, small):
    """A seed block of 32 rows or fewer (a second level's 8 or 16 seeds) is also offered the 1- and
    2-warp triples; larger ones keep the list, and every forward's untuned default (first) stays."""
    bs, bd, _ = sp._seed_blocks(seeds, head_dim)
    offered = [(c.kwargs["BLOCK_T"], c.num_warps, c.num_stages) for c in sp._fwd_candidates(seeds, bs, bd)]
    assert offered[0] == sp._FWD_TRIPLES[0]
    assert (set(sp._SMALL_FWD_TRIPLES) <= set(offered)) == small
    assert any(w <= 2 for _, w, _ in offered) == small
    # the register budget keeps them where the tiles are small (a 16-row block at D 64), and drops
    # the one-warp ones where they are not (32 rows at D 128: 6144 fp32 elements for 32 threads)
    fits = {(c.kwargs["BLOCK_T"], c.num_warps): sp._fits(c, 128, sp._fwd_tiles, bs, bd, True, False)
            for c in sp._fwd_candidates(seeds, bs, bd) if c.num_warps <= 2}
    if small and bs <= 16 and bd == 64:
        assert all(fits.values()), fits
    if (seeds, head_dim) == (32, 128):
        assert fits == {(64, 2): True, (64, 1): False, (32, 1): False}


@pytest.mark.parametrize("head_dim, seeds", [(64, 64), (64, 128), (128, 64)])
def test_backward_offers_the_three_stage_configs(head_dim, seeds):
    """The 3-stage triples the H200 measured 1.2-1.7x faster than the 2-stage ones (BENCHMARKS.md,
    seed pooling, twentieth session) pass the backward's register budget at the presets' head dims
    and seed counts, though ptxas makes some of them spill; the largest tile does not pass at 128
    seeds or D 128 (584-1480 bytes of spill)."""
    bs, bd, _ = sp._seed_blocks(seeds, head_dim)
    offered = {(c.kwargs["BLOCK_T"], c.num_warps, c.num_stages) for c in sp._bwd_candidates(seeds, bs, bd)
               if c.kwargs["BLOCK_S"] == bs
               and sp._fits(c, sp._BWD_BUDGET, sp._bwd_tiles, bs, bd, True, False)}
    assert {(64, 4, 3), (128, 8, 3), (64, 8, 3), (32, 4, 3), (32, 8, 2)} <= offered
    assert ((128, 4, 3) in offered) == (head_dim == 64 and seeds == 64)
    assert sp._bwd_configs(seeds, bs, bd)[0][:3] == (32, 8, 2)   # the untuned default spills nowhere


def test_non_contiguous_inputs():
    """Strided seeds, k, v and grad_out (slices and transposes), D not a power of two."""
    gen = torch.Generator().manual_seed(1)
    B, H, T, D, S = 4, 2, 45, 24, 7
    seeds = torch.randn(S, H, 2 * D, generator=gen)[:, :, ::2].transpose(0, 1)
    k = torch.randn(B, T, H, D + 3, generator=gen)[..., 3:].transpose(1, 2)
    v = torch.randn(H, B, T, D, generator=gen).transpose(0, 1)
    lengths = make_lengths(B, T, gen)
    assert not (seeds.is_contiguous() or k.is_contiguous() or v.is_contiguous())
    seeds, k, v = (x.to(DEVICE) for x in (seeds, k, v))

    def backward(grad_out, *args):
        return sp._backward(grad_out.transpose(2, 3).contiguous().transpose(2, 3), *args)

    check(seeds, k, v, lengths, gen, torch.float32, False, backward=backward)


def test_padding_is_ignored():
    """NaN and garbage past each length change no output and no gradient; gradients there are 0;
    an empty sequence gives o = 0 and lse = -inf."""
    seeds, k, v, lengths, gen = make_inputs(4, 2, 80, 16, 5, torch.float32, False)
    scale = 0.25
    valid = torch.arange(80, device=DEVICE) < lengths[:, None]  # [B, T]
    pad = ~valid[:, None, :, None]
    k_bad = k.masked_fill(pad, float("nan"))
    v_bad = v.masked_fill(pad, 1e30)
    o, lse = sp.seed_pooling_forward(seeds, k, v, lengths, scale)
    o_bad, lse_bad = sp.seed_pooling_forward(seeds, k_bad, v_bad, lengths, scale)
    assert torch.equal(o, o_bad) and torch.equal(lse, lse_bad)
    assert torch.equal(o[1], torch.zeros_like(o[1])) and bool((lse[1] == float("-inf")).all())

    grad_out = torch.randn(o.shape, generator=gen).to(DEVICE)
    grads = sp.seed_pooling_backward(grad_out, seeds, k, v, o, lse, lengths, scale)
    grads_bad = sp.seed_pooling_backward(
        grad_out, seeds, k_bad, v_bad, o_bad, lse_bad, lengths, scale)
    for g, g_bad in zip(grads, grads_bad):
        assert torch.equal(g, g_bad)
    for g in grads[1:]:
        assert bool((g.masked_select(pad) == 0).all())


def test_shared_kv_backward_sums_in_kernel():
    seeds, k, _, lengths, gen = make_inputs(4, 3, 100, 32, 9, torch.float32, True)
    scale = 32 ** -0.5
    o, lse = sp.seed_pooling_forward(seeds, k, k, lengths, scale)
    grad_out = torch.randn(o.shape, generator=gen).to(DEVICE)
    dseeds, dk, dv = sp.seed_pooling_backward(grad_out, seeds, k, k, o, lse, lengths, scale)
    dseeds2, dkv = sp.seed_pooling_backward_shared_kv(grad_out, seeds, k, o, lse, lengths, scale)
    assert dkv.stride() == k.stride()  # the gradient keeps the sequence's layout
    assert rel_err(dseeds2, dseeds) <= 1e-6 and rel_err(dkv, dk + dv) <= 1e-6


def test_unsupported_reasons():
    seeds = torch.zeros(2, 4, 16, device=DEVICE)
    k = torch.zeros(3, 2, 10, 16, device=DEVICE)
    assert sp.unsupported(seeds, k, k) is None
    assert "float16" in sp.unsupported(seeds.double(), k.double(), k.double())
    assert "heads" in sp.unsupported(seeds[:1], k, k)
    assert "shape" in sp.unsupported(seeds, k, k[:, :, :5])
    big = torch.zeros(2, 4, 300, device=DEVICE)
    assert "head dim" in sp.unsupported(big, k.new_zeros(3, 2, 10, 300), k.new_zeros(3, 2, 10, 300))
    with pytest.raises(ValueError, match="lengths"):
        sp.seed_pooling_forward(seeds, k, k, torch.zeros(3, device=DEVICE), 1.0)


# ----------------------------------------------------------------------------- GPU only

@pytest.mark.gpu
@pytest.mark.parametrize("T", [0, 1, 37, 300])
@pytest.mark.parametrize("D", [16, 48, 64, 128])
def test_bf16_on_gpu(T, D):
    seeds, k, v, lengths, gen = make_inputs(6, 2, T, D, 40, torch.bfloat16, True)
    check(seeds, k, v, lengths, gen, torch.bfloat16, True)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16],
                         ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("shared", [True, False])
def test_gpu_large_batch(dtype, shared):
    """Many (b, h): one pass per example, examples grouped in the backward; S = 64 as in HSP."""
    seeds, k, v, lengths, gen = make_inputs(600, 2, 200, 64, 64, dtype, shared)
    lengths = torch.randint(0, 201, (600,), generator=gen).to(DEVICE)
    lengths[:3] = torch.tensor([0, 1, 200])
    check(seeds, k, v, lengths, gen, dtype, shared)


@pytest.mark.parametrize("tma", [False, True], ids=["loads", "tma"])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("chunk, per_prog", [(None, None), (256, 2)])
def test_packed_kv_matches_padded(shared, chunk, per_prog, tma):
    """Packed K/V rows ([N, H, D], no padding) give the padded kernels' output and gradients,
    split over T chunks and with several examples per backward program too. Examples are laid
    out last to first, so a store past a length would overwrite a finished example; the row after
    the last one is a NaN sentinel that no valid result may read."""
    B, H, T, D, S = 6, 2, 300, 16, 12
    seeds, k, v, lengths, gen = make_inputs(B, H, T, D, S, torch.float32, shared, seed=4)
    lengths = lengths.clamp(max=T)
    starts, row = reversed_starts(lengths)
    pk = pack_rows(k, lengths, starts, row + 1)
    pv = pk if shared else pack_rows(v, lengths, starts, row + 1)
    scale = D ** -0.5
    o_ref, lse_ref = sp._forward(seeds, k, v, lengths, scale, chunk=chunk, tma=False)
    o, lse = sp._forward(seeds, pk, pv, lengths, scale, chunk=chunk, starts=starts, max_len=T, tma=tma)
    assert rel_err(o, o_ref) <= 1e-6 and torch.equal(torch.isinf(lse), torch.isinf(lse_ref))
    assert rel_err(lse[~torch.isinf(lse)], lse_ref[~torch.isinf(lse_ref)]) <= 1e-6
    grad_out = torch.randn(o.shape, generator=gen).to(DEVICE)
    kw = dict(chunk=chunk, per_prog=per_prog, sum_kv=shared)
    ds_ref, dk_ref, dv_ref = sp._backward(grad_out, seeds, k, v, o_ref, lse_ref, lengths, scale, **kw)
    ds, dk, dv = sp._backward(grad_out, seeds, pk, pv, o, lse, lengths, scale, starts=starts,
                              max_len=T, **kw)
    assert rel_err(ds, ds_ref) <= 1e-6
    assert rel_err(unpack_rows(dk, lengths, starts, T), dk_ref) <= 1e-6
    assert rel_err(unpack_rows(dv, lengths, starts, T), dv_ref) <= 1e-6
    ref_o, ref_ds, ref_dk, ref_dv = reference(seeds, k, v, lengths, scale, grad_out, shared)
    assert rel_err(o, ref_o) <= BOUND[torch.float32]
    assert rel_err(unpack_rows(dk, lengths, starts, T), ref_dk) <= BOUND[torch.float32]


def test_packed_kv_errors():
    seeds = torch.zeros(2, 4, 16, device=DEVICE)
    kv = torch.zeros(9, 2, 16, device=DEVICE)
    lengths, starts = torch.tensor([4, 5], device=DEVICE), torch.tensor([0, 4], device=DEVICE)
    with pytest.raises(ValueError, match="need max_len"):
        sp.seed_pooling_forward(seeds, kv, kv, lengths, 1.0, starts=starts)
    with pytest.raises(ValueError, match=r"starts must be \[B\] = \[2\]"):
        sp.seed_pooling_forward(seeds, kv, kv, lengths, 1.0, starts=starts[:1], max_len=5)
    assert sp.unsupported(seeds, kv, kv, packed=True) is None
    assert "[N, H, D]" in sp.unsupported(seeds, kv[None], kv[None], packed=True)


def test_eager_launches_go_through_bound_launch(monkeypatch):
    """Where a call is eager on CUDA tensors (_direct), the forward's, combine's and backward's
    launches go to bound_launch (launch_tuned for the autotuned kernels, with the launch's
    constexprs); traced and interpreted calls keep wrap_triton (here: the interpreter's)."""
    calls = []

    class Stub:
        @staticmethod
        def launch_tuned(kernel, grid, args, constexprs):
            calls.append(("tuned", kernel, grid, constexprs))

        @staticmethod
        def launch(kernel, grid, args, constexprs):
            calls.append(("plain", kernel, grid, constexprs))

    monkeypatch.setattr(sp, "_direct", lambda x: True)
    monkeypatch.setattr(sp, "_BOUND_LAUNCH", {"module": Stub})
    seeds, k, v, lengths, gen = make_inputs(3, 2, 40, 16, 5, torch.float32, True)
    o, lse = sp._forward(seeds, k, v, lengths, 0.25, chunk=256)
    sp._forward(seeds, k, v, lengths, 0.25, chunk=16)                      # split: forward, then combine
    sp._backward(torch.randn_like(o), seeds, k, v, o, lse, lengths, 0.25, sum_kv=True)
    kinds = [(kind, grid) for kind, _, grid, _ in calls]
    assert kinds == [("tuned", (6, 1, 1)), ("tuned", (6, 3, 1)), ("plain", (6, 1)), ("tuned", kinds[3][1])]
    assert calls[0][3]["SPLIT"] is False and calls[1][3]["SPLIT"] is True and calls[3][3]["SUM_KV"] is True
    assert calls[2][1] is sp._combine_kernel


def test_eager_launches_without_bound_launch_beside_run_tritons_own(monkeypatch):
    """A kernel file without bound_launch.py beside it (copied alone) launches eager calls through
    Triton itself, with the same results."""
    seeds, k, v, lengths, gen = make_inputs(4, 2, 37, 16, 7, torch.float32, True)
    expected = sp._forward(seeds, k, v, lengths, 0.25, chunk=16)
    monkeypatch.setattr(sp, "_direct", lambda x: True)
    monkeypatch.setattr(sp, "_BOUND_LAUNCH", {"module": None})
    got = sp._forward(seeds, k, v, lengths, 0.25, chunk=16)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_host_arithmetic_matches_tritons():
    """The host code's plain-int cdiv and next_power_of_2 (Triton's are constexpr functions, slow
    to call from Python) give Triton's values."""
    import triton
    for n in [*range(0, 1100), 2**20, 2**20 + 1, 2**31 - 1]:
        assert sp._next_power_of_2(n) == triton.next_power_of_2(n), n
        for d in (1, 3, 16, 256, 264):
            assert sp._cdiv(n, d) == triton.cdiv(n, d), (n, d)
