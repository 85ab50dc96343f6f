"""Spec loading: the valid example loads; every rule and YAML edge case is a located SpecError."""
from __future__ import annotations

import random
import time

import pytest

from kunlun_compiler.errors import SpecError
from kunlun_compiler.loader import load_spec, load_spec_text
from kunlun_compiler.spec import Spec

# The example of spec-format.md; line numbers in the assertions below refer to this text.
VALID = """\
kunlun: 1
name: kunlun_tiny
dtype: bf16
batch_size: 256

features:
  dense: 13
  sparse:
    - {name: user_id, vocab: 100000, dim: 64}
    - {name: ad_id, vocab: 50000, dim: 64}
    - {name: ad_category, vocab: 1000, dim: 16}
  events:
    click:
      max_len: 256
      avg_len: 128
      time_gaps: true
      items:
        - {name: item_id, share: ad_id}
        - {name: item_category, share: ad_category}
      tower: {dim: 64, heads: 4, layers: 2, window: 32, seeds: 32, summary_tokens: 8}
    impression:
      max_len: 512
      items:
        - {name: imp_item_id, share: ad_id}
      tower: {dim: 32, heads: 2, layers: 1, window: 16, seeds: 16, summary_tokens: 4}

model:
  dim: 64
  layers: 2
  compskip: alternate
  weight_generation: {summary_tokens: 8}
  pffn:
    kv_tokens: 32
    activation: gelu_tanh
    temperature: max_len
    qk_norm: false
  attention:
    kind: softmax
    causal: false
  hsp: {kron_rank: 4}
  interaction:
    experts: 2
    wukong: {layers: 1, fmb_tokens: 8, lcb_tokens: 8, rank: 8, mlp: [256]}
  head: {tasks: [click, conversion], mlp: [128]}

compile:
  fuse: true
  target: h200
"""
CLICK_TOWER = "{dim: 64, heads: 4, layers: 2, window: 32, seeds: 32, summary_tokens: 8}"


def edit(*pairs: str) -> str:
    """VALID with each (old, new) pair replaced; `old` must occur exactly once."""
    text = VALID
    for old, new in zip(pairs[::2], pairs[1::2]):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def error(text: str | bytes) -> str:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "s.yaml")
    rendered = info.value.render()
    assert len(rendered.splitlines()) == len(info.value.issues)
    return rendered


def test_valid_example_loads():
    spec = load_spec_text(VALID, "s.yaml")
    assert isinstance(spec, Spec)
    assert spec.name == "kunlun_tiny"
    assert spec.features.events["click"].tower.heads == 4
    assert spec.features.events["click"].items[1].share == "ad_category"
    assert spec.model.head.tasks == ["click", "conversion"]
    assert spec.layer_kinds() == ("global", "local")


def test_valid_example_loads_from_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(VALID)
    assert load_spec(path).model.interaction.wukong.mlp == [256]


# ---- field types and ranges ----

def test_boolean_is_not_an_integer():
    assert error(edit("batch_size: 256", "batch_size: true")) == (
        "s.yaml:4:13: batch_size: expected a positive integer at most 2^24, found true (a boolean)")


def test_float_is_not_a_dim():
    assert error(edit(CLICK_TOWER, CLICK_TOWER.replace("dim: 64", "dim: 32.5"))) == (
        "s.yaml:20:20: features.events.click.tower.dim: expected a positive integer at most 2^24, found 32.5")


def test_negative_vocab():
    assert error(edit("vocab: 100000", "vocab: -3")) == (
        "s.yaml:9:30: features.sparse[0].vocab: expected a positive integer at most 2^40, found -3")


def test_vocab_above_2_pow_40():
    assert error(edit("vocab: 100000", f"vocab: {2**40 + 1}")) == (
        "s.yaml:9:30: features.sparse[0].vocab: expected a positive integer at most 2^40, "
        "found 1099511627777")


def test_format_version_must_be_the_integer_1():
    assert error(edit("kunlun: 1", "kunlun: true")) == (
        "s.yaml:1:9: kunlun: expected 1, found true (a boolean)")
    assert error(edit("kunlun: 1", "kunlun: 2")) == "s.yaml:1:9: kunlun: expected 1, found 2"


def test_unknown_key_with_did_you_mean():
    out = error(edit(CLICK_TOWER, CLICK_TOWER.replace("heads", "hedas")))
    assert ("s.yaml:20:24: features.events.click.tower.hedas: expected a known key, "
            "found unknown key 'hedas' (did you mean 'heads'?)") in out.splitlines()
    # the misspelt key also leaves `heads` missing, reported at the tower mapping
    assert ("s.yaml:20:14: features.events.click.tower.heads: missing required key 'heads': "
            "expected a positive integer at most 2^24") in out.splitlines()


def test_unknown_top_level_key_lists_known_keys_when_nothing_is_close():
    out = error(edit("dtype: bf16", "dtype: bf16\nzzzz: 1"))
    assert out.startswith("s.yaml:4:1: zzzz: expected a known key, found unknown key 'zzzz' "
                          "(known keys: kunlun, name, dtype,")


def test_missing_required_key_points_at_parent_mapping():
    assert error(edit("    kv_tokens: 32\n", "")) == (
        "s.yaml:33:5: model.pffn.kv_tokens: missing required key 'kv_tokens': "
        "expected a positive integer at most 2^24")


def test_union_errors_collapse_into_one_issue():
    assert error(edit("compskip: alternate", "compskip: alterante")) == (
        "s.yaml:30:13: model.compskip: expected 'alternate', 'none' or a non-empty list of "
        "'global'/'local', found 'alterante' (did you mean 'alternate'?)")
    assert error(edit("temperature: max_len", "temperature: true")) == (
        "s.yaml:35:18: model.pffn.temperature: expected 'max_len', 'sqrt_d' or a number from 0.001 to 1e+09, "
        "found true (a boolean)")


def test_union_list_branch_reports_the_bad_entry():
    assert error(edit("compskip: alternate", "compskip: [global, lcoal]")) == (
        "s.yaml:30:22: model.compskip[1]: expected 'global' or 'local', found 'lcoal' "
        "(did you mean 'local'?)")
    assert error(edit("fuse: true", "fuse: [gdpa, sed_pooling]")) == (
        "s.yaml:47:16: compile.fuse[1]: expected 'gdpa', 'window_attention' or 'seed_pooling', "
        "found 'sed_pooling' (did you mean 'seed_pooling'?)")


def test_yes_is_a_boolean_not_a_name():
    assert error(edit("name: kunlun_tiny", "name: yes")) == (
        "s.yaml:2:7: name: expected a string of 1 to 64 characters, found true (a boolean) "
        "(YAML reads yes/no/on/off/true/false as booleans; quote it to make it a string)")


def test_huge_integer_literal():
    assert error(edit("kunlun: 1", "kunlun: " + "9" * 5000)) == (
        "s.yaml:1:9: kunlun: expected a valid int, found '9999999999999999999999999999999999999999'"
        " with 5000 digits")
    assert error(edit("vocab: 100000", "vocab: " + "9" * 400)).startswith(
        "s.yaml:9:30: features.sparse[0].vocab: expected a positive integer at most 2^40, "
        "found an integer of 400 digits")


# ---- cross-field rules ----

def test_dim_not_divisible_by_heads():
    assert error(edit(CLICK_TOWER, CLICK_TOWER.replace("dim: 64", "dim: 50"))) == (
        "s.yaml:20:20: features.events.click.tower.dim: expected a multiple of heads (4), found 50;"
        " tower.dim 50 is not divisible by heads 4; use a dim that is a multiple of 4, "
        "e.g. 48 or 52")


def test_seeds_below_summary_tokens():
    assert error(edit(CLICK_TOWER, CLICK_TOWER.replace("seeds: 32", "seeds: 4"))) == (
        "s.yaml:20:64: features.events.click.tower.seeds: expected at least summary_tokens (8), "
        "found 4; the summary tokens are pooled from the seeds")


def test_pma_needs_seeds_equal_summary_tokens():
    out = error(edit("kron_rank: 4", "kron_rank: 0")).splitlines()
    assert out == [
        "s.yaml:20:64: features.events.click.tower.seeds: expected exactly summary_tokens (8), "
        "found 32; hsp.kron_rank 0 is PMA pooling, which keeps every seed as a summary token",
        "s.yaml:25:64: features.events.impression.tower.seeds: expected exactly summary_tokens (4),"
        " found 16; hsp.kron_rank 0 is PMA pooling, which keeps every seed as a summary token",
    ]


def test_avg_len_above_max_len():
    assert error(edit("avg_len: 128", "avg_len: 300")).startswith(
        "s.yaml:15:16: features.events.click.avg_len: expected at most max_len (256), found 300;")


def test_compskip_list_wrong_length():
    assert error(edit("compskip: alternate", "compskip: [global, local, local]")) == (
        "s.yaml:30:13: model.compskip: expected 2 entries (one per layer of model.layers), "
        "found 3; or use `alternate` / `none`")


def test_tower_layers_above_model_layers():
    assert error(edit(CLICK_TOWER, CLICK_TOWER.replace("layers: 2", "layers: 3"))) == (
        "s.yaml:20:42: features.events.click.tower.layers: expected at most model.layers (2), "
        "found 3; a tower cannot outlast the model")


def test_activation_list_needs_one_entry_per_head_of_every_tower():
    out = error(edit("activation: gelu_tanh", "activation: [relu, silu, relu, gelu]"))
    assert out == (
        "s.yaml:34:17: model.pffn.activation: expected 2 entries (one per head of "
        "features.events.impression.tower), found 4; every tower needs as many heads as the list "
        "has entries")


def test_share_of_missing_feature():
    assert error(edit("share: ad_category", "share: ad_categry")) == (
        "s.yaml:19:40: features.events.click.items[1].share: expected the name of a feature with "
        "its own table (vocab and dim), found 'ad_categry', no such feature "
        "(did you mean 'ad_category'?)")


def test_share_of_a_sharing_feature():
    assert error(edit("share: ad_category", "share: item_id")) == (
        "s.yaml:19:40: features.events.click.items[1].share: expected the name of a feature with "
        "its own table (vocab and dim), found 'item_id', which shares 'ad_id' itself "
        "(did you mean 'ad_id'?)")


def test_feature_needs_share_or_vocab_and_dim():
    assert error(edit("{name: user_id, vocab: 100000, dim: 64}", "{name: user_id, dim: 64}")) == (
        "s.yaml:9:7: features.sparse[0]: expected either `share: <feature>` or both `vocab` and "
        "`dim`, found no vocab; add vocab, or share another feature's table")
    assert error(edit("{name: item_id, share: ad_id}",
                      "{name: item_id, share: ad_id, dim: 8}")) == (
        "s.yaml:18:46: features.events.click.items[0].dim: expected no `dim` next to `share`, "
        "found 8; a shared feature uses the table of 'ad_id'; remove dim")


def test_duplicate_feature_names():
    assert error(edit("name: imp_item_id", "name: user_id")) == (
        "s.yaml:24:18: features.events.impression.items[0].name: expected a unique feature name, "
        "found 'user_id' again; it is already used at features.sparse[0].name; rename one of them")


def test_duplicate_task_names():
    assert error(edit("tasks: [click, conversion]", "tasks: [click, click]")) == (
        "s.yaml:44:25: model.head.tasks[1]: expected a unique task name, found 'click' again; "
        "it is already used at model.head.tasks[0]; rename one of them")


@pytest.mark.parametrize("name, expected, hint", [
    ("class", "a name that is not a Python keyword", "did you mean 'class_'?"),
    ("my-model", "a Python identifier (ASCII letters, digits and _, not starting with a digit)",
     "did you mean 'my_model'?"),
    ("torch", "a package name that does not shadow an importable module", None),
    ("json", "a package name that does not shadow an importable module", None),
    ("_hidden", "a package name that does not start with '_'", "did you mean 'hidden'?"),
])
def test_bad_spec_name(name, expected, hint):
    out = error(edit("name: kunlun_tiny", f"name: {name}"))
    assert out.startswith(f"s.yaml:2:7: name: expected {expected}, found {name!r}")
    assert hint is None or out.endswith(f"({hint})")


def test_bad_feature_and_event_names():
    out = error(edit("name: user_id,", "name: for,", "    click:", "    1click:")).splitlines()
    assert out == [
        "s.yaml:9:14: features.sparse[0].name: expected a name that is not a Python keyword, "
        "found 'for' (did you mean 'for_'?)",
        "s.yaml:13:5: features.events['1click']: expected a Python identifier (ASCII letters, "
        "digits and _, not starting with a digit), found '1click' (did you mean '_1click'?)",
    ]


def test_experts_above_interaction_tokens():
    # 1 dense token + 3 sparse + 8 weight-generation + 8 + 4 tower summary tokens = 24
    assert error(edit("experts: 2", "experts: 25")).startswith(
        "s.yaml:42:14: model.interaction.experts: expected at most the number of interaction "
        "tokens (24), found 25")
    load_spec_text(edit("experts: 2", "experts: 24"), "s.yaml")


def test_needs_a_non_sequence_token():
    model = VALID[VALID.index("model:"):]
    text = "kunlun: 1\nname: seq_only\nfeatures:\n  dense: 0\n  dense_tokens: 2\n" + model
    assert error(text) == (
        "s.yaml:4:3: features: expected at least one non-sequence token (features.dense > 0 or a "
        "sparse feature), found dense: 0 and no sparse features; weight generation mixes the "
        "non-sequence tokens X into the summary tokens that drive the personalized FFN, so X needs "
        "at least one token")


def test_multiple_errors_reported_together_in_file_order():
    text = edit("batch_size: 256", "batch_size: 0", "tasks: [click, conversion]",
                "tasks: [click, click]", "dtype: bf16", "dtype: bf8")
    lines = error(text).splitlines()
    assert [line.split(": ")[0] for line in lines] == ["s.yaml:3:8", "s.yaml:4:13"]
    text = edit("experts: 2", "experts: 99", CLICK_TOWER, CLICK_TOWER.replace("dim: 64", "dim: 50"),
                "avg_len: 128", "avg_len: 999")
    lines = error(text).splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        "s.yaml:15:16", "s.yaml:20:20", "s.yaml:42:14"]


# ---- YAML edge cases ----

def test_duplicate_yaml_key():
    assert error(edit("  dense: 13\n", "  dense: 13\n  dense: 14\n")) == (
        "s.yaml:8:3: features.dense: duplicate key 'dense' in this mapping "
        "(first written at line 7)")


def test_object_constructing_tag_is_refused():
    out = error(edit("name: kunlun_tiny", 'name: !!python/object/apply:os.system ["echo hi"]'))
    assert out.startswith("s.yaml:2:7: name: expected a plain value, found the tag "
                          "'!!python/object/apply:os.system'")


def test_billion_laughs_fails_fast():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    start = time.perf_counter()
    out = error("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 1.0
    assert "expands to more than 100000 values" in out


def test_recursive_alias_is_a_cycle():
    assert error("kunlun: &a [1, *a]\n") == (
        "s.yaml:1:9: kunlun[1]: an alias refers to a value that contains it (a cycle)")


def test_aliases_and_merge_keys_are_allowed():
    base = "tower: {dim: 32, heads: 2, layers: 1, window: 16, seeds: 16, summary_tokens: 4}"
    text = edit(CLICK_TOWER, "&t " + CLICK_TOWER, base, "tower: {<<: *t, dim: 32, heads: 2}")
    spec = load_spec_text(text, "s.yaml")
    assert spec.features.events["impression"].tower.dim == 32
    assert spec.features.events["impression"].tower.seeds == 32


def test_deep_nesting():
    out = error("kunlun: " + "[" * 5000 + "]" * 5000 + "\n")
    assert out == "s.yaml:1:72: invalid YAML: values are nested more than 64 levels deep"


def test_empty_file():
    for text in ("", "\n\n# only a comment\n", b""):
        assert error(text) == ("s.yaml:1:1: the file is empty; a spec is a mapping starting with "
                               "`kunlun: 1`")


def test_list_at_root():
    assert error("- kunlun: 1\n- name: x\n") == (
        "s.yaml:1:1: expected a mapping at the top of the file (kunlun: 1, name: ..., ...), "
        "found a list of 2 items")


def test_tab_indentation():
    assert error(edit("  dense: 13", "\tdense: 13")) == (
        "s.yaml:7:1: invalid YAML: found character '\\t' that cannot start any token "
        "(indent with spaces; YAML does not allow tabs)")


def test_syntax_error_is_located():
    assert error(edit("  hsp: {kron_rank: 4}", "  hsp: {kron_rank: 4")) == (
        "s.yaml:41:14: invalid YAML: expected ',' or '}', but got ':'")


def test_non_string_key():
    assert error(edit("  dense: 13", "  1: 13")) == (
        "s.yaml:7:3: features: expected a string key, found 1 (an integer) "
        "(quote it to use it as a name: '1':)")


def test_utf8_bom_is_accepted():
    spec = load_spec_text(b"\xef\xbb\xbf" + VALID.encode(), "s.yaml")
    assert spec.name == "kunlun_tiny"


def test_invalid_utf8_is_located():
    data = edit("name: kunlun_tiny", "name: kunlun_ti\xe9ny").encode("latin-1")
    assert error(data) == ("s.yaml:2:16: the file is not UTF-8: byte 0xe9 at offset 25 cannot "
                           "be decoded (save the spec as UTF-8)")


def test_control_character_is_located():
    assert error("kunlun: 1\nname: a\x00b\n") == (
        "s.yaml:2:8: invalid character U+0000 (not allowed in YAML)")


def test_directory_path(tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    assert info.value.render() == f"{tmp_path}: is a directory, not a spec file"


def test_missing_file(tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert info.value.render() == f"{tmp_path / 'nope.yaml'}: no such file"


def test_found_values_stay_on_one_line():
    out = error(edit("dtype: bf16", 'dtype: "bf\\n16' + "x" * 100 + '"'))
    assert out == ("s.yaml:3:8: dtype: expected 'bf16', 'fp16' or 'fp32', "
                   "found 'bf\\n16xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...")


def test_no_other_exception_escapes_for_mangled_input():
    rng = random.Random(1234)
    data = VALID.encode()
    for _ in range(300):
        mangled = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(mangled))
            choice = rng.random()
            if choice < 0.4:
                del mangled[pos:pos + rng.randint(1, 20)]
            elif choice < 0.8:
                mangled[pos:pos] = bytes([rng.choice(b"[]{}:,-&*!|>'\"\t\n #%@`?\xff0")])
            else:
                mangled[pos] = rng.randrange(256)
        try:
            load_spec_text(bytes(mangled), "s.yaml")
        except SpecError as exc:
            assert all("\n" not in issue.render("s.yaml") for issue in exc.issues)


def test_model_too_large_to_compile_quickly():
    text = VALID.replace("  layers: 2\n", "  layers: 100\n", 1) if "  layers: 2\n" in VALID else None
    assert text is not None
    out = error(text)
    assert "model.layers: expected a model of at most 768 layer blocks" in out
