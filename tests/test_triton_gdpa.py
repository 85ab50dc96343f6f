"""The GDPA Triton kernels (templates/kernels/gdpa.py) against float64 references.

Forward and all three gradients, norm-wise relative error ||x - ref|| / ||ref||, with bounds
that can fail: fp32 1e-5, fp16 2e-3, bf16 1e-2 (bf16 on the GPU only: the Triton interpreter's
bf16 is wrong on CPU hosts). Without CUDA the kernels run in the interpreter (conftest.py sets
TRITON_INTERPRET=1), so shapes are small but still cross tiles (the interpreter's tiles are
32 x 16). Padding (rows past a length) is NaN everywhere unless a test says otherwise.
"""
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

from opsload import import_file, load_ops  # noqa: E402
from packing import pack_rows, reversed_starts, unpack_rows  # noqa: E402

KERNELS = Path(__file__).resolve().parent.parent / "templates" / "kernels" / "gdpa.py"
gdpa = import_file(KERNELS, "kunlunc_test_gdpa_kernels")
ops = load_ops("kunlunc_test_triton_gdpa")
gdpa.AUTOTUNE = False  # on a GPU, one config per kernel: autotuning would compile every config

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
CPU_DTYPES = [torch.float32, torch.float16]


@dataclass(frozen=True)
class Case:
    B: int
    H: int
    T: int
    S: int                                # keys; self-attention cases have S == T
    D: int
    activations: str
    q_lengths: tuple[int, ...]
    kv_lengths: tuple[int, ...] | None = None
    window: int = -1
    causal: bool = False
    views: bool = True                    # q, k, v as transposed views of [B, T, H·D] tensors
    scale: float = 0.37


CASES = {
    # personalized FFN: k, v are per-example weights, all S valid; lengths 0, 1 and full
    "pffn_per_head": Case(3, 3, 37, 20, 16, "gelu_tanh,silu,relu2", (37, 0, 1)),
    "pffn_d128": Case(1, 1, 37, 24, 128, "gelu_tanh", (33,), views=False),
    # two launches, head tables [0, 2] and [1, 3]
    "heads_grouped": Case(2, 4, 37, 20, 16, "silu,relu2,silu,relu2", (37, 9)),
    "cross_kv_lengths": Case(2, 3, 37, 29, 16, "identity", (37, 3), kv_lengths=(29, 0)),
    # self-attention: kv_lengths = q_lengths
    "self_full_d48": Case(2, 1, 37, 37, 48, "gelu", (37, 5), kv_lengths=(37, 5)),
    "band_small_d64": Case(2, 3, 37, 37, 64, "relu,identity,gelu", (37, 20), (37, 20), window=3),
    "causal_window": Case(2, 1, 37, 37, 16, "silu", (30, 37), (30, 37), window=4, causal=True),
    "causal_full": Case(1, 3, 37, 37, 16, "gelu_tanh", (37,), (37,), causal=True),
    "window_beyond_T": Case(2, 1, 37, 37, 16, "relu2", (37, 11), (37, 11), window=40),
    # window 17 and lengths 1 past a multiple of 16 put band and length edges exactly on tile
    # boundaries of the interpreter's tiles (an off-by-one in a loop bound skips a tile)
    "band_tile_edges": Case(2, 1, 130, 130, 16, "gelu_tanh", (130, 97), (130, 97), window=17,
                            views=False),
    "causal_tile_edges": Case(2, 2, 70, 70, 16, "relu2", (65, 49), (65, 49), window=17,
                              causal=True),
    "long_jagged": Case(2, 1, 130, 130, 16, "silu", (130, 64), (100, 130)),
    # degenerate sizes
    "T1": Case(2, 3, 1, 1, 16, "gelu", (1, 0)),
    "T0": Case(2, 3, 0, 5, 16, "gelu", (0, 0)),
    "B0": Case(0, 3, 37, 20, 16, "gelu", ()),
    "no_keys": Case(2, 1, 5, 0, 16, "gelu", (5, 2)),
}


# ----------------------------------------------------------------------------- inputs

def _rows_valid(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """[B, size] bool: position t exists (t < lengths[b])."""
    return torch.arange(size, device=lengths.device) < lengths[:, None]


def _fill_padding(x: torch.Tensor, valid: torch.Tensor, value: float) -> torch.Tensor:
    """x [B, H, N, D] with rows that do not exist set to value (in place, views stay views)."""
    return x.masked_fill_(~valid[:, None, :, None], value)


def _random(B: int, H: int, N: int, D: int, dtype, views: bool, std: float) -> torch.Tensor:
    """[B, H, N, D], a transposed view of a [B, N, H·D] tensor when views is set."""
    if views:
        x = torch.randn(B, N, H * D, device=DEVICE).view(B, N, H, D).transpose(1, 2)
    else:
        x = torch.randn(B, H, N, D, device=DEVICE)
    return (x * std).to(dtype)


def make_inputs(case: Case, dtype, padding: float = float("nan"), seed: int = 0):
    """(q, k, v, grad_out, q_lengths, kv_lengths); scores have unit-order spread at any D."""
    torch.manual_seed(seed)
    std = case.D ** -0.25
    q = _random(case.B, case.H, case.T, case.D, dtype, case.views, std)
    k = _random(case.B, case.H, case.S, case.D, dtype, case.views, std)
    v = _random(case.B, case.H, case.S, case.D, dtype, case.views, 1.0)
    grad_out = _random(case.B, case.H, case.T, case.D, dtype, False, 1.0)
    q_lengths = torch.tensor(case.q_lengths, dtype=torch.int64, device=DEVICE)
    kv_lengths = None
    if case.kv_lengths is not None:
        kv_lengths = torch.tensor(case.kv_lengths, dtype=torch.int64, device=DEVICE)
        for x in (k, v):
            _fill_padding(x, _rows_valid(kv_lengths, case.S), padding)
    for x in (q, grad_out):
        _fill_padding(x, _rows_valid(q_lengths, case.T), padding)
    return q, k, v, grad_out, q_lengths, kv_lengths


# ----------------------------------------------------------------------------- references

def dense_reference(q, k, v, q_lengths, kv_lengths, activations, scale, window, causal):
    """Float64-able dense-mask GDPA: every (i, j) computed, disallowed pairs zeroed."""
    T, S = q.shape[2], k.shape[2]
    names = ops.parse_activations(activations, q.shape[1])
    q_valid = _rows_valid(q_lengths, T)
    kv_valid = _rows_valid(kv_lengths, S) if kv_lengths is not None else torch.ones(
        q.shape[0], S, dtype=torch.bool, device=q.device)
    allowed = q_valid[:, :, None] & kv_valid[:, None, :]  # [B, T, S]
    if window >= 0 or causal:
        behind = torch.arange(T, device=q.device)[:, None] - torch.arange(S, device=q.device)
        reach = window if window >= 0 else max(T, S)
        allowed = allowed & (behind <= reach) & (behind >= (0 if causal else -reach))
    q = q.masked_fill(~q_valid[:, None, :, None], 0)
    k = k.masked_fill(~kv_valid[:, None, :, None], 0)
    v = v.masked_fill(~kv_valid[:, None, :, None], 0)
    scores = q @ k.mT
    hidden = torch.stack(
        [ops.ACTIVATIONS[name].fn(scores[:, h]) for h, name in enumerate(names)], dim=1)
    hidden = torch.where(allowed[:, None], hidden, 0) * scale
    return (hidden @ v).masked_fill(~q_valid[:, None, :, None], 0)


def reference(case: Case, q, k, v, grad_out, q_lengths, kv_lengths):
    """Float64 output and (dq, dk, dv) by autograd through the plain-torch reference."""
    q, k, v = (x.detach().double().requires_grad_() for x in (q, k, v))
    plain = kv_lengths is None and case.window < 0 and not case.causal
    if plain:  # the ops module's own reference: the personalized FFN
        out = ops.gdpa_reference(q, k, v, q_lengths, case.activations, case.scale)
    else:
        out = dense_reference(q, k, v, q_lengths, kv_lengths, case.activations, case.scale,
                              case.window, case.causal)
    out.backward(grad_out.double())
    grads = [x.grad if x.grad is not None else torch.zeros_like(x) for x in (q, k, v)]
    return out.detach(), grads


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """||x - ref|| / ||ref|| (NaN anywhere gives NaN, which fails every bound)."""
    return ((x.double() - ref).norm() / max(ref.norm().item(), 1e-30)).item()


def run_kernels(case: Case, q, k, v, grad_out, q_lengths, kv_lengths):
    args = (q_lengths, kv_lengths, case.activations, case.scale, case.window, case.causal)
    out = gdpa.gdpa_forward(q, k, v, *args)
    grads = gdpa.gdpa_backward(grad_out, q, k, v, *args)
    return out, grads


def check_case(case: Case, dtype) -> None:
    inputs = make_inputs(case, dtype)
    assert gdpa.unsupported(*inputs[:3]) is None
    out, grads = run_kernels(case, *inputs)
    ref_out, ref_grads = reference(case, *inputs)
    for got, like in zip((out, *grads), (inputs[0], *inputs[:3])):
        assert got.shape == like.shape and got.dtype == dtype
    errors = {name: rel_err(got, ref) for name, got, ref in
              zip(("out", "dq", "dk", "dv"), (out, *grads), (ref_out, *ref_grads))}
    bound = TOLERANCE[dtype]
    assert all(err <= bound for err in errors.values()), f"{errors} > {bound}"


# ----------------------------------------------------------------------------- CPU (and GPU)

@pytest.mark.parametrize("dtype", CPU_DTYPES, ids=str)
@pytest.mark.parametrize("name", list(CASES))
def test_matches_float64_reference(name, dtype):
    check_case(CASES[name], dtype)


@pytest.mark.parametrize("activation", list(gdpa.ACTIVATION_IDS))
def test_every_activation(activation):
    check_case(Case(2, 1, 20, 12, 16, activation, (20, 9)), torch.float32)


def test_one_activation_per_head_all_six():
    check_case(Case(1, 6, 37, 20, 16, ",".join(gdpa.ACTIVATION_IDS), (29,)), torch.float32)


def test_dense_reference_agrees_with_ops_reference():
    case = CASES["pffn_per_head"]
    q, k, v, _, q_lengths, _ = make_inputs(case, torch.float64)
    plain = ops.gdpa_reference(q, k, v, q_lengths, case.activations, case.scale)
    dense = dense_reference(q, k, v, q_lengths, None, case.activations, case.scale, -1, False)
    torch.testing.assert_close(dense, plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["band_small_d64", "long_jagged", "pffn_per_head"])
def test_padding_changes_nothing(name):
    """Zeros or NaN past the lengths: bitwise the same outputs and gradients, no NaN."""
    case = CASES[name]
    clean = run_kernels(case, *make_inputs(case, torch.float32, padding=0.0))
    dirty = run_kernels(case, *make_inputs(case, torch.float32, padding=float("nan")))
    for a, b in zip((clean[0], *clean[1]), (dirty[0], *dirty[1])):
        assert torch.equal(a, b) and not a.isnan().any()


def test_padded_rows_and_keys_get_exact_zeros():
    case = CASES["long_jagged"]
    q, k, v, grad_out, q_lengths, kv_lengths = make_inputs(case, torch.float32)
    out, (dq, dk, dv) = run_kernels(case, q, k, v, grad_out, q_lengths, kv_lengths)
    assert not out[0, :, 130:].any() and not out[1, :, 64:].any()
    assert not dq[1, :, 64:].any() and not dk[0, :, 100:].any() and not dv[0, :, 100:].any()


def test_contiguous_and_view_inputs_agree():
    case = CASES["pffn_per_head"]
    q, k, v, grad_out, q_lengths, kv_lengths = make_inputs(case, torch.float32, padding=0.0)
    views = run_kernels(case, q, k, v, grad_out, q_lengths, kv_lengths)
    dense = run_kernels(case, q.contiguous(), k.contiguous(), v.contiguous(), grad_out,
                        q_lengths, kv_lengths)
    for a, b in zip((views[0], *views[1]), (dense[0], *dense[1])):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_unsupported_names_the_reason():
    q = torch.zeros(1, 2, 4, 16, device=DEVICE)
    assert gdpa.unsupported(q, q, q) is None
    wide = torch.zeros(1, 2, 4, 512, device=DEVICE)
    assert "head dim" in gdpa.unsupported(wide, wide, wide)
    assert "dtype" in gdpa.unsupported(q.double(), q.double(), q.double())
    assert "shapes" in gdpa.unsupported(q, q[:, :1], q[:, :1])
    assert "head dim" in gdpa.unsupported(q, q, q[..., :8])


def test_bad_activations_raise():
    case = Case(1, 3, 4, 4, 16, "gelu", (4,))
    q, k, v, _, q_lengths, _ = make_inputs(case, torch.float32)
    with pytest.raises(ValueError, match="unknown activation"):
        gdpa.gdpa_forward(q, k, v, q_lengths, None, "softmax", 1.0)
    with pytest.raises(ValueError, match="2 activations for 3 heads"):
        gdpa.gdpa_forward(q, k, v, q_lengths, None, "gelu,silu", 1.0)


# ----------------------------------------------------------------------------- GPU only

@pytest.mark.gpu
@pytest.mark.parametrize("T", [0, 1, 37, 300])
@pytest.mark.parametrize("D", [16, 48, 64, 128])
def test_bf16_on_gpu(T, D):
    lengths = (T, T // 2, min(T, 1))
    check_case(Case(3, 2, T, 96, D, "gelu_tanh,relu2", lengths), torch.bfloat16)
    check_case(Case(3, 2, T, T, D, "silu", lengths, lengths, window=17), torch.bfloat16)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_long_jagged_causal_on_gpu(dtype):
    lengths = (1000, 517, 0, 1)
    check_case(Case(4, 4, 1000, 1000, 128, "gelu_tanh", lengths, lengths, window=200,
                    causal=True), dtype)
    check_case(Case(4, 4, 1000, 256, 256, "gelu", lengths), dtype)


@pytest.mark.gpu
def test_unsupported_accepts_bf16_on_gpu():
    q = torch.zeros(1, 2, 4, 16, device="cuda", dtype=torch.bfloat16)
    assert gdpa.unsupported(q, q, q) is None


# ----------------------------------------------------------------------------- packed query rows

@pytest.mark.parametrize("name", ["pffn_per_head", "heads_grouped", "cross_kv_lengths", "band_small_d64"])
def test_packed_queries_match_padded(name):
    """Packed query rows (q, O, dO, dQ as [N, H, D], no padding anywhere) give the padded kernels'
    results on every row of every example, with k, v per example. Examples are laid out last to
    first, so a store past a length would overwrite an example already finished; the row after
    the last is a NaN sentinel that no valid result may read."""
    case = CASES[name]
    q, k, v, grad_out, q_lengths, kv_lengths = make_inputs(case, torch.float32, padding=0.0)
    starts, row = reversed_starts(q_lengths)
    pq, pg = pack_rows(q, q_lengths, starts, row + 1), pack_rows(grad_out, q_lengths, starts, row + 1)
    assert gdpa.unsupported(pq, k, v, packed=True) is None
    args = (q_lengths, kv_lengths, case.activations, case.scale, case.window, case.causal)
    packed = dict(q_starts=starts, max_len=case.T)
    out = gdpa.gdpa_forward(pq, k, v, *args, **packed)
    dq, dk, dv = gdpa.gdpa_backward(pg, pq, k, v, *args, **packed)
    ref_out = gdpa.gdpa_forward(q, k, v, *args)
    ref_dq, ref_dk, ref_dv = gdpa.gdpa_backward(grad_out, q, k, v, *args)
    assert out.shape == dq.shape == pq.shape and dk.shape == k.shape
    assert rel_err(unpack_rows(out, q_lengths, starts, case.T), ref_out.double()) <= 1e-6
    assert rel_err(unpack_rows(dq, q_lengths, starts, case.T), ref_dq.double()) <= 1e-6
    assert rel_err(dk, ref_dk.double()) <= 1e-6 and rel_err(dv, ref_dv.double()) <= 1e-6
    f64_out, (f64_dq, f64_dk, f64_dv) = reference(case, q, k, v, grad_out, q_lengths, kv_lengths)
    assert rel_err(unpack_rows(out, q_lengths, starts, case.T), f64_out) <= TOLERANCE[torch.float32]
    assert rel_err(unpack_rows(dq, q_lengths, starts, case.T), f64_dq) <= TOLERANCE[torch.float32]


def test_packed_query_errors():
    k = torch.zeros(2, 2, 5, 16, device=DEVICE)
    q = torch.zeros(7, 2, 16, device=DEVICE)
    lens, starts = torch.tensor([3, 4], device=DEVICE), torch.tensor([0, 3], device=DEVICE)
    with pytest.raises(ValueError, match="needs max_len"):
        gdpa.gdpa_forward(q, k, k, lens, None, "relu", 1.0, q_starts=starts)
    with pytest.raises(ValueError, match=r"q_starts must be \[B\] = \[2\]"):
        gdpa.gdpa_forward(q, k, k, lens, None, "relu", 1.0, q_starts=starts[:1], max_len=4)
    with pytest.raises(ValueError, match=r"packed q must be \[N, H, D\]"):
        gdpa.gdpa_forward(q[:, :1], k, k, lens, None, "relu", 1.0, q_starts=starts, max_len=4)
    assert "must be [N, H, D]" in gdpa.unsupported(q[None], k, k, packed=True)


def test_head_tables_made_once_per_device():
    """A mixed-activation GDPA keeps its per-group head tables: made (a host-to-device copy) at the
    first call, then reused, so a training step can be captured in a CUDA graph."""
    like = torch.zeros(1, device=DEVICE)
    first = gdpa._head_groups("relu, gelu_tanh, relu", 3, like)
    again = gdpa._head_groups("relu,gelu_tanh,relu", 3, like)
    assert [(a, n) for a, n, _ in first] == [(gdpa.ACTIVATION_IDS["relu"], 2), (gdpa.ACTIVATION_IDS["gelu_tanh"], 1)]
    assert [t.tolist() for _, _, t in first] == [[0, 2], [1]]
    assert all(t is u for (_, _, t), (_, _, u) in zip(first, again))
    assert all(t.dtype == torch.int32 for _, _, t in first)
    assert gdpa._head_groups("relu", 4, like) == [(gdpa.ACTIVATION_IDS["relu"], 4, None)]



def test_kept_head_tables_stay_out_of_traced_graphs():
    """Once an eager call has kept a group's head table, tracing (torch.compile's fake tensors) must
    still get a table of the tracing mode: the kept real tensor inside a traced graph failed
    inductor on the H200 ("Please convert all Tensors to FakeTensors"). (The CPU cannot trace the
    interpreted kernels themselves: tests/test_triton_model.py checks the compiled model on a GPU.)"""
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
    kept = gdpa._head_groups("silu,relu", 2, torch.zeros(1, device=DEVICE))
    with FakeTensorMode():
        traced = gdpa._head_groups("silu,relu", 2, torch.zeros(1, device=DEVICE))
    assert all(type(t) is torch.Tensor for _, _, t in kept)
    assert all(isinstance(t, FakeTensor) for _, _, t in traced)
    assert [t.tolist() for _, _, t in gdpa._head_groups("silu,relu", 2, torch.zeros(1, device=DEVICE))] == [[0], [1]]
