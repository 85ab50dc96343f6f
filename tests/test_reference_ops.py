"""The rendered reference ops (templates/ops.py.j2) against naive float64 loops.

Forward: each op against a per-row Python loop with scalar math activations. Backward: the
explicit backward ops against autograd through the plain-torch references (float64, rtol 1e-7),
plus finite differences at tiny shapes. Then padding, FLOP counts, compile and export.
"""
import ast
import itertools
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from opsload import import_file, load_ops, render_ops, write_ops

NAMESPACE = "kunlunc_test_reference_ops"
ops = load_ops(NAMESPACE)
F64 = torch.float64
ACTIVATIONS = ["gelu_tanh", "gelu", "silu", "relu", "relu2", "identity"]
KINDS = ["softmax", *ACTIVATIONS]
TIGHT = dict(rtol=1e-7, atol=1e-9)

# Scalar activations from math, independent of torch.nn.functional.
SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
NAIVE_ACT = {
    "gelu_tanh": lambda x: 0.5 * x * (1 + math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x**3))),
    "gelu": lambda x: 0.5 * x * (1 + math.erf(x / math.sqrt(2))),
    "silu": lambda x: x / (1 + math.exp(-x)),
    "relu": lambda x: max(x, 0.0),
    "relu2": lambda x: max(x, 0.0) ** 2,
    "identity": lambda x: x,
}


# ----------------------------------------------------------------------------- helpers

def randn(*shape, seed=0, dtype=F64, grad=False):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype).requires_grad_(grad)


def lengths_for(B, T):
    """Cycles through empty, length-1, full and partial examples."""
    pattern = [0, 1, T, max(T - 3, 0)]
    return torch.tensor([min(pattern[b % 4], T) for b in range(B)], dtype=torch.int64)


def head_names(activations, H):
    names = activations.split(",")
    return names * H if len(names) == 1 else names


def sees(i, j, window, causal):
    return i - window <= j <= i if causal else abs(i - j) <= window


def weighted_sum(weights, rows):
    out = torch.zeros(rows.shape[-1], dtype=F64)
    for w, row in zip(weights, rows):
        out += w * row
    return out


def naive_softmax(scores):
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    return [e / sum(exps) for e in exps]


# ----------------------------------------------------------------------------- naive oracles

def naive_gdpa(q, k, v, lengths, activations, scale):
    B, H, T, _ = q.shape
    out = torch.zeros(B, H, T, v.shape[-1], dtype=F64)
    for b, h in itertools.product(range(B), range(H)):
        act = NAIVE_ACT[head_names(activations, H)[h]]
        for t in range(int(lengths[b])):
            hidden = [act(float(k[b, h, m] @ q[b, h, t])) * scale for m in range(k.shape[2])]
            out[b, h, t] = weighted_sum(hidden, v[b, h])
    return out


def naive_window(q, k, v, lengths, window, causal, kind, scale):
    B, H, T, _ = q.shape
    out = torch.zeros(B, H, T, v.shape[-1], dtype=F64)
    for b, h in itertools.product(range(B), range(H)):
        n = int(lengths[b])
        for i in range(n):
            keys = [j for j in range(n) if sees(i, j, window, causal)]
            scores = [float(q[b, h, i] @ k[b, h, j]) for j in keys]
            if kind == "softmax":
                weights = naive_softmax([s * scale for s in scores])
            else:
                weights = [NAIVE_ACT[kind](s) * scale for s in scores]
            out[b, h, i] = weighted_sum(weights, v[b, h, keys])
    return out


def naive_seed_pooling(seeds, k, v, lengths, scale):
    B, H, _, _ = k.shape
    S = seeds.shape[1]
    out = torch.zeros(B, H, S, v.shape[-1], dtype=F64)
    for b, h, s in itertools.product(range(B), range(H), range(S)):
        n = int(lengths[b])
        if n == 0:
            continue
        scores = [float(seeds[h, s] @ k[b, h, j]) * scale for j in range(n)]
        out[b, h, s] = weighted_sum(naive_softmax(scores), v[b, h, :n])
    return out


# ----------------------------------------------------------------------------- cases

def gdpa_case(B, H, T, D, activations, M=5, seed=0, grad=False):
    q = randn(B, H, T, D, seed=seed, grad=grad)
    k, v = (randn(B, H, M, D, seed=seed + i, grad=grad) for i in (1, 2))
    return (q, k, v, lengths_for(B, T), activations, 0.7)


def window_case(B, H, T, D, window, causal, kind, seed=0, grad=False):
    q, k, v = (randn(B, H, T, D, seed=seed + i, grad=grad) for i in range(3))
    return (q, k, v, lengths_for(B, T), window, causal, kind, 1 / math.sqrt(D))


def seed_case(B, H, T, D, S=4, seed=0, grad=False):
    seeds = randn(H, S, D, seed=seed, grad=grad)
    k, v = randn(B, H, T, D, seed=seed + 1, grad=grad), randn(B, H, T, D, seed=seed + 2, grad=grad)
    return (seeds, k, v, lengths_for(B, T), 1 / math.sqrt(D))


# (B, H, T, D): odd T, one head and several, empty and length-1 sequences, empty batch.
SHAPES = [(4, 3, 37, 16), (4, 1, 37, 48), (2, 3, 1, 16), (2, 3, 0, 16), (0, 3, 7, 16)]
GDPA_CASES = [(shape, acts) for shape in SHAPES for acts in [*ACTIVATIONS, "gelu_tanh,relu2,silu"]
              if shape[1] == 3 or "," not in acts]
WINDOW_CASES = (
    [((4, 2, 37, 16), w, c, kind) for kind in KINDS for w in (1, 4, 37, 100) for c in (False, True)]
    + [(shape, w, c, kind) for shape in SHAPES for w in (3, 40) for c in (False, True)
       for kind in ("softmax", "silu")]
)
SEED_SHAPES = SHAPES + [(3, 2, 1, 48)]

OPS = {  # name: (case builder, op, reference)
    "gdpa": (gdpa_case, ops.gdpa, ops.gdpa_reference),
    "window_attention": (window_case, ops.window_attention, ops.window_attention_reference),
    "seed_pooling": (seed_case, ops.seed_pooling, ops.seed_pooling_reference),
}


def tensor_inputs(args):
    return [a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]


def grads_of(fn, args, grad_out):
    out = fn(*args)
    return torch.autograd.grad(out, tensor_inputs(args), grad_out, materialize_grads=True)


def check_grads(fn, reference, args):
    """Explicit backward (through the op) == autograd through the reference, at rtol 1e-7."""
    out = reference(*args)
    grad_out = randn(*out.shape, seed=99)
    expected = grads_of(reference, args, grad_out)
    actual = grads_of(fn, args, grad_out)
    for a, e in zip(actual, expected):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, e, **TIGHT)


# ----------------------------------------------------------------------------- forward, gradients

@pytest.mark.parametrize("shape, activations", GDPA_CASES)
def test_gdpa(shape, activations):
    args = gdpa_case(*shape, activations, grad=True)
    expected = naive_gdpa(*[a.detach() if isinstance(a, torch.Tensor) else a for a in args])
    torch.testing.assert_close(ops.gdpa(*args), expected, **TIGHT)
    torch.testing.assert_close(ops.gdpa_reference(*args), expected, **TIGHT)
    check_grads(ops.gdpa, ops.gdpa_reference, args)


@pytest.mark.parametrize("shape, window, causal, kind", WINDOW_CASES)
def test_window_attention(shape, window, causal, kind):
    args = window_case(*shape, window, causal, kind, grad=True)
    expected = naive_window(*[a.detach() if isinstance(a, torch.Tensor) else a for a in args])
    torch.testing.assert_close(ops.window_attention(*args), expected, **TIGHT)
    torch.testing.assert_close(ops.window_attention_reference(*args), expected, **TIGHT)
    check_grads(ops.window_attention, ops.window_attention_reference, args)


@pytest.mark.parametrize("shape", SEED_SHAPES)
def test_seed_pooling(shape):
    args = seed_case(*shape, grad=True)
    expected = naive_seed_pooling(*[a.detach() if isinstance(a, torch.Tensor) else a for a in args])
    torch.testing.assert_close(ops.seed_pooling(*args), expected, **TIGHT)
    torch.testing.assert_close(ops.seed_pooling_reference(*args), expected, **TIGHT)
    check_grads(ops.seed_pooling, ops.seed_pooling_reference, args)


def test_seed_grad_sums_over_batch():
    seeds, k, v, lengths, scale = seed_case(3, 2, 6, 8, grad=True)
    total = torch.autograd.grad(ops.seed_pooling(seeds, k, v, lengths, scale).sum(), seeds)[0]
    parts = [torch.autograd.grad(ops.seed_pooling(seeds, k[b:b + 1], v[b:b + 1],
                                                  lengths[b:b + 1], scale).sum(), seeds)[0]
             for b in range(3)]
    torch.testing.assert_close(total, sum(parts), **TIGHT)


@pytest.mark.parametrize("name", OPS)
def test_finite_differences(name):
    make, op, _ = OPS[name]
    extra = {"gdpa": ("gelu_tanh,silu",), "window_attention": (2, False, "softmax")}.get(name, ())
    args = make(3, 2, 5, 3, *extra, grad=True)
    positions = [i for i, a in enumerate(args) if a is not args[3] and isinstance(a, torch.Tensor)]

    def fn(*tensors):
        full = list(args)
        for i, tensor in zip(positions, tensors):
            full[i] = tensor
        return op(*full)

    assert torch.autograd.gradcheck(fn, [args[i] for i in positions])


def _model_layout(t):
    """The same values with the strides the model passes: [B, T, H·D] viewed as [B, H, T, D]."""
    if t.dim() != 4:
        return t
    view = t.detach().transpose(1, 2).contiguous().transpose(1, 2)
    return view.requires_grad_(t.requires_grad)


@pytest.mark.parametrize("layout", ["contiguous", "model"])
@pytest.mark.parametrize("name", OPS)
def test_opcheck(name, layout):
    """"model": transposed-view inputs; the fake backward must give the real backward's strides
    (a contiguous fake for contiguous matmul results), or inductor's stride asserts fail."""
    make, op, _ = OPS[name]
    extra = {"gdpa": ("relu2",), "window_attention": (2, True, "gelu")}.get(name, ())
    args = make(3, 2, 5, 4, *extra, grad=True)
    if layout == "model":
        args = [_model_layout(a) if isinstance(a, torch.Tensor) else a for a in args]
        assert not args[1].is_contiguous()
    packet = getattr(getattr(torch.ops, NAMESPACE), name)
    torch.library.opcheck(packet.default, args)


@pytest.mark.parametrize("name", OPS)
def test_autocast_runs_the_op_in_the_autocast_dtype(name):
    """Custom ops are not autocast-aware; the entry points cast float inputs themselves, so an
    fp32 LayerNorm output under autocast does not run the kernel in fp32."""
    make, op, reference = OPS[name]
    extra = {"gdpa": ("gelu_tanh",), "window_attention": (3, False, "softmax")}.get(name, ())
    args = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
            for a in make(3, 2, 9, 8, *extra)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = op(*args)
    assert out.dtype == torch.bfloat16
    expected = reference(*args)
    assert ((out.float() - expected).norm() / expected.norm()).item() < 2e-2
    k = args[1]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = ops._autocast(k, k)
    assert a is b and a.dtype == torch.bfloat16   # K = V stays one tensor (read once)
    assert ops._autocast(k, k)[0] is k              # no autocast: untouched


def test_autocast_cast_compiles_fullgraph():
    """The entry points' autocast cast traces under torch.compile(fullgraph=True): id() did not
    (torch 2.11's dynamo: "call_id() not supported" for an intermediate tensor), which broke every
    compiled model on the H200. torch 2.13 (CI) traces id(), so the source is checked as well."""
    import ast
    import inspect
    calls = {n.func.id for n in ast.walk(ast.parse(inspect.getsource(ops._autocast)))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "id" not in calls
    torch._dynamo.reset()
    k = torch.randn(2, 3, 5, 4)

    def cast_twice(a, b):
        a, b = a * 1, b * 1   # intermediates, as in a model (a graph input's id() traces)
        x, y = ops._autocast(a, b)
        z, w = ops._autocast(a, a)
        return x, y, z, w

    compiled = torch.compile(cast_twice, fullgraph=True, backend="eager")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x, y, z, w = compiled(k, k + 1)
    assert x.dtype == y.dtype == z.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), (k + 1).bfloat16().float())


@pytest.mark.parametrize("name", OPS)
def test_float32_forward(name):
    make, op, reference = OPS[name]
    extra = {"gdpa": ("gelu_tanh,relu2,silu",), "window_attention": (4, False, "softmax")}
    extra = extra.get(name, ())
    args = make(4, 3, 37, 48, *extra)
    expected = reference(*args)
    actual = op(*[a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                  for a in args])
    assert actual.dtype == torch.float32
    error = (actual.double() - expected).norm() / expected.norm()
    assert error <= 1e-5


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_derivatives(name):
    x = torch.linspace(-6, 6, 1001, dtype=F64)
    x = x[x != 0].requires_grad_()  # relu's kink
    act = ops.ACTIVATIONS[name]
    (expected,) = torch.autograd.grad(act.fn(x).sum(), x)
    torch.testing.assert_close(act.grad(x.detach()), expected, **TIGHT)
    naive = torch.tensor([NAIVE_ACT[name](float(t)) for t in x.detach()], dtype=F64)
    torch.testing.assert_close(act.fn(x.detach()), naive, **TIGHT)


def test_bad_arguments():
    with pytest.raises(ValueError, match="known: gelu_tanh"):
        ops.parse_activations("swish", 2)
    with pytest.raises(ValueError, match="one per head"):
        ops.parse_activations("silu,relu", 3)
    assert ops.parse_activations("silu, relu,gelu", 3) == ["silu", "relu", "gelu"]
    with pytest.raises(ValueError, match="window"):
        ops.pairs_in_window(5, -1, False)


# ----------------------------------------------------------------------------- padding

def scramble_padding(x, lengths, fill):
    """x with every position at or beyond its example's length replaced by fill."""
    pad = torch.arange(x.shape[2]) >= lengths[:, None]
    return x.detach().masked_fill(pad[:, None, :, None], fill).requires_grad_()


@pytest.mark.parametrize("fill", [1e3, float("nan")])
@pytest.mark.parametrize("name", OPS)
def test_padding_changes_nothing(name, fill):
    make, op, reference = OPS[name]
    extra = {"gdpa": ("gelu_tanh,relu2,silu",), "window_attention": (4, False, "silu")}
    extra = extra.get(name, ())
    args = list(make(4, 3, 11, 8, *extra, grad=True))
    lengths = args[3]
    pad = torch.arange(11) >= lengths[:, None]  # [B, T]
    jagged = [0, 1, 2] if name == "window_attention" else [0] if name == "gdpa" else [1, 2]
    scrambled = list(args)
    for i in jagged:
        scrambled[i] = scramble_padding(args[i], lengths, fill)
    grad_out = randn(*op(*args).shape, seed=5)
    for fn in (op, reference):
        out, scrambled_out = fn(*args), fn(*scrambled)
        assert torch.equal(out, scrambled_out)
        for i, (g, sg) in enumerate(zip(grads_of(fn, args, grad_out),
                                        grads_of(fn, scrambled, grad_out))):
            assert torch.equal(g, sg)
            if i in jagged:  # padded positions get exactly zero gradient
                assert (g.transpose(1, 2)[pad] == 0).all()
    if name != "seed_pooling":  # outputs at padded query rows are zero
        assert (op(*args).transpose(1, 2)[pad] == 0).all()


# ----------------------------------------------------------------------------- FLOPs

def brute_force_pairs(T, window, causal):
    return sum(sees(i, j, window, causal) for i in range(T) for j in range(T))


def test_pairs_in_window():
    for T, window, causal in itertools.product(range(0, 24), range(0, 30), (False, True)):
        assert ops.pairs_in_window(T, window, causal) == brute_force_pairs(T, window, causal)
    assert ops.pairs_in_window(10**6, 10**7, False) == 10**12
    assert ops.pairs_in_window(10**6, 10**7, True) == 10**6 * (10**6 + 1) // 2


def count_flops(op, args):
    """{op name: FLOPs} for one forward and backward of op(*args)."""
    with FlopCounterMode(display=False) as mode:
        op(*args).sum().backward()
    return {str(k).split(".")[-1]: v for k, v in mode.get_flop_counts()["Global"].items()}


@pytest.mark.parametrize("B, H, T, D, M", [(3, 2, 37, 16, 5), (2, 3, 1, 48, 7), (0, 2, 5, 8, 5)])
def test_flops_gdpa(B, H, T, D, M):
    forward = 4 * B * H * T * M * D
    counts = count_flops(ops.gdpa, gdpa_case(B, H, T, D, "silu", M=M, grad=True))
    assert counts == {"gdpa": forward, "gdpa_backward": 5 * forward // 2}


@pytest.mark.parametrize("T, window, causal", [(37, 4, False), (37, 4, True), (37, 100, False),
                                               (37, 1, True), (5, 5, True), (1, 3, False)])
def test_flops_window_attention(T, window, causal):
    B, H, D = 3, 2, 16
    forward = 4 * B * H * D * ops.pairs_in_window(T, window, causal)
    counts = count_flops(ops.window_attention,
                         window_case(B, H, T, D, window, causal, "softmax", grad=True))
    assert counts == {"window_attention": forward, "window_attention_backward": 5 * forward // 2}


def test_flops_seed_pooling():
    B, H, S, T, D = 3, 2, 6, 37, 16
    forward = 4 * B * H * S * T * D
    counts = count_flops(ops.seed_pooling, seed_case(B, H, T, D, S=S, grad=True))
    assert counts == {"seed_pooling": forward, "seed_pooling_backward": 5 * forward // 2}


# ----------------------------------------------------------------------------- packaging

class ThreeOps(torch.nn.Module):
    def forward(self, q, k, v, lengths, seeds):
        a = ops.gdpa(q, k, v, lengths, "gelu_tanh,relu2", 0.5)
        b = ops.window_attention(q, k, v, lengths, 3, False, "softmax", 0.25)
        c = ops.seed_pooling(seeds, k, v, lengths, 0.25)
        return a + b + c.sum(dim=2, keepdim=True)


def three_ops_inputs(grad=False):
    B, H, T, D = 3, 2, 9, 8
    q, k, v = (randn(B, H, T, D, seed=i, dtype=torch.float32, grad=grad) for i in range(3))
    seeds = randn(H, 4, D, seed=7, dtype=torch.float32, grad=grad)
    return q, k, v, lengths_for(B, T), seeds


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("layout", ["contiguous", "model"])
def test_torch_compile_fullgraph(layout):
    torch._dynamo.reset()
    model = ThreeOps()
    compiled = torch.compile(model, fullgraph=True)
    inputs = three_ops_inputs(grad=True)
    if layout == "model":
        inputs = tuple(_model_layout(t) for t in inputs)
    grad_inputs = [inputs[i] for i in (0, 1, 2, 4)]
    expected = model(*inputs)
    expected_grads = torch.autograd.grad(expected.sum(), grad_inputs)
    actual = compiled(*inputs)
    actual_grads = torch.autograd.grad(actual.sum(), grad_inputs)
    torch.testing.assert_close(actual, expected)
    for a, e in zip(actual_grads, expected_grads):
        torch.testing.assert_close(a, e)


def test_torch_export():
    inputs = three_ops_inputs()
    exported = torch.export.export(ThreeOps(), inputs)
    targets = {str(node.target) for node in exported.graph.nodes if node.op == "call_function"}
    for name in OPS:
        assert f"{NAMESPACE}.{name}.default" in targets
    torch.testing.assert_close(exported.module()(*inputs), ThreeOps()(*inputs))


def test_import_twice_reuses_ops():
    again = import_file(write_ops(NAMESPACE), f"{NAMESPACE}_imported_again")
    args = gdpa_case(2, 3, 6, 4, "silu")
    torch.testing.assert_close(again.gdpa(*args), ops.gdpa(*args), rtol=0, atol=0)
    counts = count_flops(again.gdpa, gdpa_case(2, 3, 6, 4, "silu", grad=True))
    assert counts == {"gdpa": 4 * 2 * 3 * 6 * 5 * 4, "gdpa_backward": 10 * 2 * 3 * 6 * 5 * 4}


def test_rendered_module_depends_on_torch_only():
    tree = ast.parse(render_ops("some_namespace"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}   # level > 0: the package itself
    assert imported <= {"math", "typing", "torch"}
    assert '"some_namespace"' in render_ops("some_namespace")
