"""The user-facing spec (format version 1): frozen, closed, strict pydantic models.

Field-level rules (types, ranges, enums) live here, on the fields. Rules that relate several
fields (a `share` naming an existing feature, `dim % heads`, list lengths) live in `rules.py`,
which returns located issues instead of raising, so every violation points at its own key.
This module imports neither torch nor networkx.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

ACTIVATIONS = ("gelu_tanh", "gelu", "silu", "relu", "relu2", "identity")
FUSIBLE = ("gdpa", "window_attention", "seed_pooling")
TARGETS = ("h100", "h200", "b200", "a100", "cpu")
MAX_VOCAB = 2**40

Activation = Literal["gelu_tanh", "gelu", "silu", "relu", "relu2", "identity"]
# Strict: `true` is not an integer and `32.5` is not a dim.
# Every number has a range. The upper bounds are far above any real model and keep the compiler
# (whose graph grows with layers and list lengths) and its cost arithmetic finite and fast.
MAX_SIZE = 2**24        # dims, lengths, widths, token counts, batch size
MAX_LAYERS = 128        # model, tower and Wukong depth
MAX_EVENTS = 64         # event types (towers)
MAX_ITEMS = 1024        # entries of a list (features, items, tasks, MLP layers)
PosInt = Annotated[int, Field(strict=True, gt=0, le=MAX_SIZE)]
NonNegInt = Annotated[int, Field(strict=True, ge=0, le=MAX_SIZE)]
Depth = Annotated[int, Field(strict=True, gt=0, le=MAX_LAYERS)]
# A positive finite number; integers are accepted, booleans are not.
PosNumber = Annotated[float, Field(strict=True, gt=0, le=MAX_SIZE, allow_inf_nan=False)]
# 1/τ scales GDPA's output: below 1e-3 it overflows fp16/bf16 activations for ordinary scores.
Temperature = Annotated[float, Field(strict=True, ge=1e-3, le=1e9, allow_inf_nan=False)]
Name = Annotated[str, Field(strict=True, min_length=1, max_length=64)]


def _exact_int(value):
    # A Literal[1] alone accepts `true` and `1.0` (they compare equal to 1), even in strict mode.
    if type(value) is not int:
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


FormatVersion = Annotated[Literal[1], BeforeValidator(_exact_int)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Feature(_Closed):
    """A categorical feature: its own table (`vocab`, `dim`) or another's (`share`)."""

    name: Name
    vocab: Annotated[int, Field(strict=True, gt=0, le=MAX_VOCAB)] | None = None
    dim: PosInt | None = None
    share: Name | None = None


class Tower(_Closed):
    dim: PosInt
    heads: PosInt
    layers: Depth
    window: PosInt
    seeds: PosInt
    summary_tokens: PosInt


class Event(_Closed):
    max_len: PosInt
    avg_len: PosNumber | None = None
    time_gaps: bool = False
    items: Annotated[list[Feature], Field(min_length=1, max_length=MAX_ITEMS)]
    tower: Tower


class Features(_Closed):
    dense: NonNegInt = 0
    # kunlunc extension: how many tokens the dense Linear produces (k_dense).
    dense_tokens: PosInt = 1
    sparse: Annotated[list[Feature], Field(max_length=MAX_ITEMS)] = []
    events: Annotated[dict[Name, Event], Field(max_length=MAX_EVENTS)] = {}


class WeightGeneration(_Closed):
    summary_tokens: PosInt


class PFFN(_Closed):
    kv_tokens: PosInt
    activation: Union[Activation, Annotated[list[Activation], Field(min_length=1, max_length=MAX_SIZE)]] = "gelu_tanh"
    temperature: Union[Literal["max_len", "sqrt_d"], Temperature] = "max_len"
    qk_norm: bool = False


class Attention(_Closed):
    kind: Literal["softmax", "gelu_tanh", "gelu", "silu", "relu", "relu2", "identity"] = "softmax"
    causal: bool = False


class HSP(_Closed):
    kron_rank: Annotated[int, Field(strict=True, ge=0, le=64)] = 4


class Wukong(_Closed):
    layers: Depth = 1
    fmb_tokens: PosInt
    lcb_tokens: PosInt
    rank: PosInt
    mlp: Annotated[list[PosInt], Field(max_length=64)] = []


class Interaction(_Closed):
    experts: PosInt = 1
    wukong: Wukong


class Head(_Closed):
    tasks: Annotated[list[Name], Field(min_length=1, max_length=MAX_ITEMS)]
    mlp: Annotated[list[PosInt], Field(max_length=64)] = []


LayerKind = Literal["global", "local"]


class Model(_Closed):
    dim: PosInt
    layers: Depth
    compskip: Union[Literal["alternate", "none"], Annotated[list[LayerKind], Field(min_length=1)]] = "alternate"
    weight_generation: WeightGeneration
    pffn: PFFN
    attention: Attention = Attention()
    hsp: HSP = HSP()
    interaction: Interaction
    head: Head


class Compile(_Closed):
    fuse: Union[bool, list[Literal["gdpa", "window_attention", "seed_pooling"]]] = True
    target: Literal["h100", "h200", "b200", "a100", "cpu"] = "h200"


class Spec(_Closed):
    kunlun: FormatVersion
    name: Name
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    batch_size: PosInt = 256
    features: Features
    model: Model
    compile: Compile = Compile()

    # ---- derived views used by lowering and codegen (no validation here) ----
    def fused(self) -> frozenset[str]:
        fuse = self.compile.fuse
        if fuse is True:
            return frozenset(FUSIBLE)
        if fuse is False:
            return frozenset()
        return frozenset(fuse)

    def layer_kinds(self) -> tuple[str, ...]:
        """One of `global`, `local`, `both` per layer (`both` is CompSkip `none`)."""
        cs, n = self.model.compskip, self.model.layers
        if cs == "alternate":
            return tuple("global" if i % 2 == 0 else "local" for i in range(n))
        if cs == "none":
            return ("both",) * n
        return tuple(cs)

    def activations(self, heads: int) -> tuple[str, ...]:
        act = self.model.pffn.activation
        return (act,) * heads if isinstance(act, str) else tuple(act)


def json_schema() -> dict:
    return Spec.model_json_schema()
