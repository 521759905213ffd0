"""Model specs: parameter counts, MoE layer patterns, loading config.json files."""

from __future__ import annotations

import json
import re
import warnings

import pytest
from conftest import require_shared_data
from frontier.errors import ConfigError, FrontierWarning
from frontier.hf_config import spec_from_hf_config
from frontier.models import ModelSpec, load_model, model_catalogue

# Published sizes (model cards / papers), in parameters. Our counts leave out biases
# and rounding in the cards, so they agree to about 1 % (2 % for active counts, which
# cards round to one or two digits: DeepSeek-V3 "37B" is 37.55e9 by its own config).
PUBLISHED_TOTAL = {
    "llama-2-7b": 6.74e9,
    "llama-3-8b": 8.03e9,
    "llama-3-70b": 70.6e9,
    "mixtral-8x7b": 46.7e9,
    "qwen3-30b-a3b": 30.5e9,
    "deepseek-v3": 671e9,
}
PUBLISHED_ACTIVE = {
    "mixtral-8x7b": 12.9e9,
    "qwen3-30b-a3b": 3.3e9,
    "deepseek-v3": 37e9,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_TOTAL))
def test_total_parameters_match_published_size(name):
    """Total parameters agree with the published size within 1 %."""
    assert load_model(name).total_params() == pytest.approx(
        PUBLISHED_TOTAL[name], rel=0.01
    )


@pytest.mark.parametrize("name", sorted(PUBLISHED_ACTIVE))
def test_active_parameters_match_published_size(name):
    """Active parameters per token agree with the published figure within 2 %."""
    active = load_model(name).active_params_per_token()
    assert active == pytest.approx(PUBLISHED_ACTIVE[name], rel=0.02)


def test_llama2_7b_parameter_count_by_hand():
    """Llama-2-7B: 32 x 202,383,360 + 2 x 32000 x 4096 + 4096 = 6,738,415,616."""
    # a layer: 4 x 4096^2 (attention) + 3 x 4096 x 11008 (MLP) + 2 x 4096 (norms)
    model = load_model("llama-2-7b")
    assert model.layer_params(0) == 4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096
    assert model.total_params() == 6_738_415_616


def test_dense_model_has_equal_total_and_active_parameters():
    """Every weight of a dense model is active for every token."""
    model = load_model("llama-3-8b")
    assert not model.is_moe
    assert model.active_params_per_token() == model.total_params()


def test_deepseek_v3_first_three_layers_are_dense():
    """DeepSeek-V3 (first_k_dense_replace = 3): layers 0-2 dense, 3-60 MoE."""
    model = load_model("deepseek-v3")
    assert [model.is_moe_layer(i) for i in range(5)] == [
        False,
        False,
        False,
        True,
        True,
    ]
    assert model.num_moe_layers == 58  # 61 - 3


def test_mixtral_every_layer_is_moe():
    """Mixtral-8x7B routes every one of its 32 layers' MLPs over 8 experts."""
    model = load_model("mixtral-8x7b")
    assert model.num_moe_layers == 32
    assert (model.num_experts, model.num_experts_per_token) == (8, 2)


def _moe_config(**fields) -> dict:
    config = {
        "hidden_size": 64,
        "num_hidden_layers": 6,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "moe_intermediate_size": 32,
        "num_experts_per_tok": 2,
        "vocab_size": 100,
        "max_position_embeddings": 4096,
    }
    config.update(fields)
    return config


def test_deepseek_moe_layer_freq_counts_from_layer_zero():
    """DeepSeek: layer i is MoE when i >= first_k_dense_replace and
    i % moe_layer_freq == 0 (HF DeepseekV3DecoderLayer)."""
    config = _moe_config(n_routed_experts=4, first_k_dense_replace=1, moe_layer_freq=2)
    model = spec_from_hf_config(config, "toy", "test")
    # i >= 1 and i % 2 == 0 -> layers 2 and 4
    assert [i for i in range(6) if model.is_moe_layer(i)] == [2, 4]


def test_qwen_decoder_sparse_step_makes_every_step_th_layer_moe():
    """Qwen-MoE: layer i is MoE when (i + 1) % decoder_sparse_step == 0
    (HF Qwen2MoeDecoderLayer)."""
    model = spec_from_hf_config(
        _moe_config(num_experts=4, decoder_sparse_step=2), "toy", "test"
    )
    # (i + 1) % 2 == 0 -> layers 1, 3, 5
    assert [i for i in range(6) if model.is_moe_layer(i)] == [1, 3, 5]


def test_qwen_mlp_only_layers_are_dense():
    """Qwen-MoE's ``mlp_only_layers`` keep a dense MLP."""
    model = spec_from_hf_config(
        _moe_config(num_experts=4, mlp_only_layers=[0, 5]), "toy", "test"
    )
    assert [i for i in range(6) if model.is_moe_layer(i)] == [1, 2, 3, 4]


def test_kv_bytes_per_token_standard_and_mla():
    """GQA stores K and V per KV head; MLA one latent plus the rotary key."""
    # Llama-3-8B: 2 x 8 KV heads x 128 x 2 bytes = 4096 bytes per token per layer
    assert load_model("llama-3-8b").kv_bytes_per_token_per_layer(2) == 4096
    # DeepSeek-V3: (512 + 64) x 2 bytes = 1152
    assert load_model("deepseek-v3").kv_bytes_per_token_per_layer(2) == 1152


def test_catalogue_names_are_case_insensitive_and_accept_aliases():
    """A hub id, its last part and its aliases all resolve, in any case."""
    for name in (
        "meta-llama/Llama-2-7b-hf",
        "Llama-2-7b-hf",
        "LLAMA-2-7B",
        "llama2-7b",
    ):
        assert load_model(name).name == "meta-llama/Llama-2-7b-hf"


def test_every_catalogue_entry_loads():
    """Each built-in model builds a spec with positive sizes."""
    for hub_id in model_catalogue():
        model = load_model(hub_id)
        assert model.total_params() > 0
        assert model.kv_bytes_per_token_per_layer(2) > 0


def test_multimodal_config_uses_its_text_config():
    """A config with a nested ``text_config`` is read from that section."""
    text = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "vocab_size": 100,
        "max_position_embeddings": 4096,
    }
    model = spec_from_hf_config({"text_config": text}, "vlm", "test")
    assert (model.hidden_size, model.num_layers) == (64, 2)


def _shared_model_files():
    data = require_shared_data()
    files = sorted((data / "models").glob("*.json"))
    files += sorted((data / "validation" / "models").rglob("*.json"))
    if not files:
        pytest.skip("no model config files under the shared data folder")
    return files


def test_every_shared_model_config_loads():
    """Every real config.json of the shared data builds a spec with parameters."""
    for path in _shared_model_files():
        model = load_model(config_path=path)
        assert model.total_params() > 0, path
        assert model.name == path.stem


def test_shared_deepseek_config_matches_the_catalogue():
    """The real DeepSeek-V3 config.json and the catalogue entry give equal counts."""
    path = require_shared_data() / "models" / "deepseek-v3.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    from_file = load_model(config_path=path)
    assert from_file.total_params() == load_model("deepseek-v3").total_params()
    assert from_file.num_moe_layers == 58


def test_missing_config_file_is_a_config_error(tmp_path):
    """A config path that does not exist is named in the error."""
    path = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match="does not exist") as error:
        load_model(config_path=path)
    assert str(path) in str(error.value)


def test_invalid_json_is_a_config_error(tmp_path):
    """A config.json that does not parse is named, with the parser's complaint."""
    path = tmp_path / "config.json"
    path.write_text('{"hidden_size": 4096,', "utf-8")
    with pytest.raises(ConfigError, match="not valid JSON") as error:
        load_model(config_path=path)
    assert str(path) in str(error.value)


def test_json_that_is_not_an_object_is_a_config_error(tmp_path):
    """A config.json holding a list is refused."""
    path = tmp_path / "config.json"
    path.write_text("[1, 2]", "utf-8")
    with pytest.raises(ConfigError, match="JSON object"):
        load_model(config_path=path)


def test_missing_field_is_named(tmp_path):
    """A config without ``num_hidden_layers`` names that field and the file."""
    path = tmp_path / "config.json"
    config = _moe_config()
    del config["num_hidden_layers"]
    path.write_text(json.dumps(config), "utf-8")
    with pytest.raises(ConfigError, match="num_hidden_layers") as error:
        load_model(config_path=path)
    assert str(path) in str(error.value)


def test_non_integer_field_is_named():
    """A size that is not a positive integer names the field."""
    with pytest.raises(ConfigError, match="'hidden_size' must be a positive integer"):
        spec_from_hf_config(_moe_config(hidden_size="64"), "toy", "test")


def test_missing_intermediate_size_is_named():
    """A dense config without an MLP width says so."""
    config = _moe_config()
    del config["intermediate_size"]
    del config["moe_intermediate_size"]
    with pytest.raises(ConfigError, match="intermediate_size"):
        spec_from_hf_config(config, "toy", "test")


def test_unknown_catalogue_name_lists_the_catalogue():
    """An unknown model name lists every built-in model and the config_path way out."""
    with pytest.raises(ConfigError) as error:
        load_model("llama-9-1b")
    message = str(error.value)
    assert "'llama-9-1b'" in message
    for hub_id in model_catalogue():
        assert hub_id in message
    assert "config_path" in message


def test_no_name_and_no_path_is_a_config_error():
    """A model needs a name or a config path."""
    with pytest.raises(ConfigError, match="config_path"):
        load_model(None, None)


def test_model_spec_is_frozen():
    """A spec cannot be changed after it is built."""
    model = load_model("llama-2-7b")
    assert isinstance(model, ModelSpec)
    with pytest.raises(AttributeError):
        model.num_layers = 1


def _dense(**fields) -> dict:
    """A small dense config; ``None`` removes a field."""
    config = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "vocab_size": 100,
        "max_position_embeddings": 4096,
        "torch_dtype": "bfloat16",
    }
    config.update(fields)
    return {key: value for key, value in config.items() if value is not None}


def _write(tmp_path, config: dict):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), "utf-8")
    return path


@pytest.mark.parametrize("field", ["hidden_size", "vocab_size", "num_hidden_layers"])
def test_missing_or_null_required_field_says_missing(field):
    """An absent or ``null`` size says "is missing", never "got None"."""
    for config in (_dense(**{field: None}), {**_dense(), field: None}):
        with pytest.raises(ConfigError, match=f"field '{field}' is missing") as error:
            spec_from_hf_config(config, "toy", "test")
        assert "None" not in str(error.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("head_dim", "16"),
        ("head_dim", 0),
        ("num_key_value_heads", True),
        ("num_experts_per_tok", 1.5),
        ("first_k_dense_replace", -1),
        ("intermediate_size", "128"),
        ("kv_lora_rank", -2),
    ],
)
def test_optional_size_of_the_wrong_type_is_named(field, value):
    """An optional size that is not a whole number in range names the field."""
    with pytest.raises(ConfigError, match=f"field '{field}' must be"):
        spec_from_hf_config(_dense(**{field: value}), "toy", "test")


def test_mlp_only_layers_must_be_layer_indices():
    """``mlp_only_layers`` holding text is refused, naming the field."""
    config = _moe_config(num_experts=4, mlp_only_layers=["x"])
    with pytest.raises(ConfigError, match="field 'mlp_only_layers'"):
        spec_from_hf_config(config, "toy", "test")


def test_top_k_beyond_the_experts_is_refused():
    """Routing each token to 5 of 4 experts is refused."""
    config = _moe_config(num_experts=4, num_experts_per_tok=5)
    with pytest.raises(ConfigError, match="'num_experts_per_tok' must be between 1"):
        spec_from_hf_config(config, "toy", "test")


def test_unknown_torch_dtype_is_refused_with_the_accepted_values(tmp_path):
    """``torch_dtype: "int3"`` is refused, not read as bfloat16."""
    path = _write(tmp_path, _dense(torch_dtype="int3"))
    with pytest.raises(ConfigError, match="field 'torch_dtype' is 'int3'") as error:
        load_model(config_path=path)
    message = str(error.value)
    assert str(path) in message
    assert "bfloat16" in message
    assert "float16" in message


def test_dtype_key_of_newer_configs_is_read():
    """Configs written by newer transformers say ``dtype``, not ``torch_dtype``."""
    model = spec_from_hf_config(_dense(torch_dtype=None, dtype="float16"), "t", "t")
    assert model.dtype == "float16"


def test_missing_torch_dtype_is_bfloat16():
    """A config without a dtype is taken as bfloat16."""
    assert spec_from_hf_config(_dense(torch_dtype=None), "t", "t").dtype == "bfloat16"


def test_zero_max_position_embeddings_is_refused():
    """A context of 0 tokens is refused, naming the field."""
    with pytest.raises(
        ConfigError, match="field 'max_position_embeddings' must be a positive integer"
    ):
        spec_from_hf_config(_dense(max_position_embeddings=0), "toy", "test")


def test_smallest_context_length_field_wins():
    """vLLM takes the smallest of the context-length fields a config sets."""
    config = _dense(max_position_embeddings=4096, seq_length=2048, n_positions=8192)
    assert spec_from_hf_config(config, "toy", "test").max_position_embeddings == 2048


@pytest.mark.parametrize(
    "field",
    [
        "n_positions",
        "max_seq_len",
        "seq_length",
        "model_max_length",
        "max_sequence_length",
        "max_seq_length",
        "seq_len",
    ],
)
def test_every_context_length_field_of_vllm_is_read(field):
    """Each field vLLM reads for the context length is read alone as well."""
    config = _dense(max_position_embeddings=None, **{field: 1000})
    assert spec_from_hf_config(config, "toy", "test").max_position_embeddings == 1000


def test_no_context_length_field_assumes_2048_with_a_warning(tmp_path):
    """Without any context-length field the model takes 2048 tokens, and says so."""
    path = _write(tmp_path, _dense(max_position_embeddings=None))
    assumed = "assuming the model's maximum length is 2048"
    with pytest.warns(FrontierWarning, match=assumed):
        model = load_model(config_path=path)
    assert model.max_position_embeddings == 2048


def test_context_length_field_present_gives_no_warning():
    """A config with ``max_position_embeddings`` loads without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec_from_hf_config(_dense(), "toy", "test")


def _quantised(**quantization) -> dict:
    return _dense(quantization_config=quantization)


def _ct(weights: dict, activations: dict | None = None, groups: int = 1) -> dict:
    """A compressed-tensors quantization_config of ``groups`` alike groups."""
    group = {"targets": ["Linear"], "weights": weights}
    if activations is not None:
        group["input_activations"] = activations
    return {
        "quant_method": "compressed-tensors",
        "config_groups": {f"group_{i}": dict(group) for i in range(groups)},
    }


_INT4_G128 = {"num_bits": 4, "type": "int", "group_size": 128, "strategy": "group"}
_NVFP4 = {"num_bits": 4, "type": "float", "group_size": 16, "strategy": "tensor_group"}


@pytest.mark.parametrize(
    ("quantization", "weight_dtype", "weight_bits", "gemm_dtype"),
    [
        # FP8 quantises activations too (W8A8); block scales are left out
        (
            {"quant_method": "fp8", "activation_scheme": "dynamic"},
            "fp8",
            8.0,
            "fp8",
        ),
        ({"quant_method": "fbgemm_fp8"}, "fp8", 8.0, "fp8"),
        ({"quant_method": "modelopt", "quant_algo": "FP8"}, "fp8", 8.0, "fp8"),
        # ModelOpt's nested form
        (
            {"quant_method": "modelopt", "quantization": {"quant_algo": "FP8"}},
            "fp8",
            8.0,
            "fp8",
        ),
        # NVFP4: 4 bits + an FP8 scale per 16 weights = 4 + 8 / 16 = 4.5
        ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, "fp4", 4.5, "fp4"),
        # GPTQ on vLLM's Marlin kernel (4 or 8 bits, sym, groups of 128): the
        # zero points are dropped, a 16-bit scale per group stays:
        #   8 + 16 / 128 = 8.125;  4 + 16 / 128 = 4.125
        ({"quant_method": "gptq", "bits": 8, "group_size": 128}, "int8", 8.125, None),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128}, "int4", 4.125, None),
        # one scale per row (group_size -1) is left out
        ({"quant_method": "gptq", "bits": 4, "group_size": -1}, "int4", 4.0, None),
        # off Marlin the bits-wide zero points stay: asymmetric 4 + 20 / 128,
        # groups of 256 4 + 20 / 256, 3-bit 3 + 19 / 64
        (
            {"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": False},
            "int4",
            4.15625,
            None,
        ),
        (
            {"quant_method": "gptq", "bits": 4, "group_size": 256},
            "int4",
            4.078125,
            None,
        ),
        ({"quant_method": "gptq", "bits": 3, "group_size": 64}, "int3", 3.296875, None),
        # AWQ keeps its 4-bit zero points: 4 + (16 + 4) / 128 = 4.15625
        (
            {
                "quant_method": "awq",
                "w_bit": 4,
                "q_group_size": 128,
                "zero_point": True,
            },
            "int4",
            4.15625,
            None,
        ),
        # vLLM allocates them even with zero_point false: 4 + 20 / 64 = 4.3125
        (
            {"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": False},
            "int4",
            4.3125,
            None,
        ),
        # compressed-tensors W4A16, symmetric: 4 + 16 / 128 = 4.125
        (_ct(_INT4_G128), "int4", 4.125, None),
        # asymmetric adds a 4-bit zero point: 4 + (16 + 4) / 128 = 4.15625
        (_ct({**_INT4_G128, "symmetric": False}), "int4", 4.15625, None),
        # W8A16 FP8 (Marlin), W8A8 FP8 with per-channel scales, two groups alike
        (_ct({"num_bits": 8, "type": "float"}), "fp8", 8.0, None),
        (
            _ct(
                {"num_bits": 8, "type": "float", "strategy": "channel"},
                {"num_bits": 8, "type": "float", "dynamic": True},
                groups=2,
            ),
            "fp8",
            8.0,
            "fp8",
        ),
        # W8A8 INT8, symmetric per-channel
        (
            _ct(
                {"num_bits": 8, "type": "int", "strategy": "channel"},
                {"num_bits": 8, "type": "int"},
            ),
            "int8",
            8.0,
            "int8",
        ),
        # W4A8-FP8: 4-bit weights multiplied in FP8 (vLLM: Hopper only)
        (_ct(_INT4_G128, {"num_bits": 8, "type": "float"}), "int4", 4.125, "fp8"),
        # NVFP4 in compressed-tensors, W4A4 and weight-only
        (_ct(_NVFP4, {"num_bits": 4, "type": "float"}), "fp4", 4.5, "fp4"),
        (_ct(_NVFP4), "fp4", 4.5, None),
    ],
)
def test_quantised_checkpoints_are_sized_at_their_stored_bits(
    quantization, weight_dtype, weight_bits, gemm_dtype
):
    """Each format's weights are sized with what vLLM keeps of their group
    scales and zero points, and W8A8 formats multiply in their 8-bit dtype."""
    model = spec_from_hf_config(_quantised(**quantization), "toy", "test")
    assert model.weight_dtype == weight_dtype
    assert model.weight_bits == weight_bits
    assert model.gemm_dtype == gemm_dtype
    assert model.dtype == "bfloat16"  # activations stay in the model dtype
    assert model.linear_weight_bytes(2) == weight_bits / 8


def test_compressed_tensors_groups_without_weights_or_for_attention_are_skipped():
    """vLLM skips a group targeting attention only (a KV-cache scheme) and treats
    ``weights: null`` as unquantised; the linear layers' group decides."""
    config = _ct(_INT4_G128)
    config["config_groups"]["kv"] = {
        "targets": ["LlamaAttention"],
        "weights": {"num_bits": 8, "type": "float"},
    }
    config["config_groups"]["none"] = {"targets": ["Linear"], "weights": None}
    model = spec_from_hf_config(_quantised(**config), "toy", "test")
    assert (model.weight_dtype, model.weight_bits) == ("int4", 4.125)


def test_an_unquantised_model_keeps_the_model_dtype_for_its_weights():
    model = spec_from_hf_config(_dense(), "toy", "test")
    assert (model.weight_dtype, model.weight_bits, model.gemm_dtype) == (None,) * 3
    assert model.linear_weight_bytes(2) == 2


@pytest.mark.parametrize(
    ("quantization", "described"),
    [
        ({"quant_method": "awq", "bits": 8, "group_size": 128}, "8 bits"),
        ({"quant_method": "gptq", "bits": "four"}, "'four' bits"),
        ({"quant_method": "gptq", "bits": 5}, "5 bits"),
        (_ct({"num_bits": 2, "type": "int"}), "2 bits ('int')"),
        # MXFP4 (groups of 32), and FP4 without NVFP4's groups of 16
        (_ct({"num_bits": 4, "type": "float", "group_size": 32}), "4 bits ('float')"),
        (
            _ct({"num_bits": 4, "type": "float"}, {"num_bits": 4, "type": "float"}),
            "4 bits ('float')",
        ),
        (
            _ct({"num_bits": 8, "type": "int"}, {"num_bits": 4, "type": "int"}),
            "activations of 4 bits",
        ),
        # W4A8-INT: no CUDA kernel in vLLM
        (
            _ct(_INT4_G128, {"num_bits": 8, "type": "int"}),
            "weights of 4 bits ('int') and activations of 8 bits ('int')",
        ),
        # INT8 W8A8 needs symmetric per-tensor or per-channel weights
        (
            _ct(
                {"num_bits": 8, "type": "int", "symmetric": False},
                {"num_bits": 8, "type": "int"},
            ),
            "symmetric per-tensor",
        ),
        (
            _ct({"num_bits": 8, "type": "int", "strategy": "tensor"}),
            "per tensor (vLLM has no kernel",
        ),
        (
            {**_ct(_INT4_G128), "format": "naive-quantized"},
            "format 'naive-quantized'",
        ),
        (
            {**_ct(_INT4_G128), "sparsity_config": {"sparsity_structure": "2:4"}},
            "2:4 sparse",
        ),
        ({"quant_method": "compressed-tensors"}, "no config_groups"),
        (
            _ct({"num_bits": 8, "type": "int"})
            | {"config_groups": {"g": {"weights": None}}},
            "no group that quantises",
        ),
        (
            {"quant_method": "modelopt", "quant_algo": "W4A8_AWQ"},
            "quant_algo 'W4A8_AWQ'",
        ),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "in bits"),
        ({"quant_method": "mxfp4"}, "in bits"),
    ],
)
def test_formats_frontier_cannot_size_are_refused(tmp_path, quantization, described):
    """Other widths and formats are refused, naming the field, the formats
    Frontier sizes and the way out, rather than counted at 2 bytes per weight."""
    path = _write(tmp_path, _quantised(**quantization))
    with pytest.raises(ConfigError, match="field 'quantization_config'") as error:
        load_model(config_path=path)
    message = str(error.value)
    assert str(path) in message
    assert repr(quantization["quant_method"]) in message
    assert described in message
    assert "4-bit AWQ" in message
    assert "Remove quantization_config" in message


def test_compressed_tensors_groups_of_different_schemes_are_refused():
    """A checkpoint whose groups differ (8-bit here, 4-bit there) is refused:
    which layers each covers is not modelled."""
    config = _ct({"num_bits": 8, "type": "int"})
    config["config_groups"]["group_1"] = {"weights": {"num_bits": 4, "type": "int"}}
    with pytest.raises(ConfigError, match="config_groups of different schemes"):
        spec_from_hf_config(_quantised(**config), "toy", "test")


@pytest.mark.parametrize("group", ["128", 0, -2, 1.5, True])
def test_a_group_size_that_is_not_a_count_is_refused(group):
    """``group_size = "128"`` would otherwise read as one scale per row."""
    quantization = {"quant_method": "gptq", "bits": 4, "group_size": group}
    with pytest.raises(ConfigError, match="group_size is"):
        spec_from_hf_config(_quantised(**quantization), "toy", "test")


def test_quantization_config_that_is_not_an_object_is_refused():
    """``quantization_config: "awq"`` is refused, naming the field."""
    config = _dense(quantization_config="awq")
    with pytest.raises(ConfigError, match="'quantization_config' must be a JSON"):
        spec_from_hf_config(config, "toy", "test")


def test_multimodal_config_keeps_the_top_level_quantisation():
    """A VLM's top-level ``quantization_config`` applies to its text model."""
    text = _dense(torch_dtype=None)
    config = {"text_config": text, "quantization_config": {"quant_method": "fp8"}}
    assert spec_from_hf_config(config, "vlm", "test").weight_dtype == "fp8"


def test_an_moe_config_without_top_k_says_it_is_missing():
    """A missing num_experts_per_tok read "got 0"."""
    config = _dense(num_experts=8)
    with pytest.raises(ConfigError, match="field 'num_experts_per_tok' is missing"):
        spec_from_hf_config(config, "toy", "test")


def test_the_format_name_is_read_as_vllm_reads_it():
    """vLLM lower-cases quant_method: "AWQ" is AWQ."""
    model = spec_from_hf_config(
        _quantised(quant_method="AWQ", bits=4, group_size=128), "toy", "test"
    )
    assert (model.weight_dtype, model.weight_bits) == ("int4", 4.15625)


@pytest.mark.parametrize(
    ("quantization", "message"),
    [
        ({"bits": 4}, "has no quant_method"),
        ({"quant_method": "gptq", "bits": 4, "sym": "yes"}, "sym is 'yes'"),
        (
            _ct({**_INT4_G128, "symmetric": "no"}),
            "weights symmetric is 'no'",
        ),
        (
            _ct({"num_bits": 4, "type": "int", "strategy": "group"}),
            "strategy 'group' but no group_size",
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {
                    "g": {"targets": ["re:.*self_attn.*"], "weights": _INT4_G128}
                },
            },
            "a group for some layers only",
        ),
        (
            {"quant_method": "compressed-tensors", "config_groups": [_INT4_G128]},
            "a table of groups",
        ),
    ],
)
def test_malformed_quantisation_fields_are_named(quantization, message):
    """They were read as defaults (sym "yes" as symmetric, a group without a size
    as one scale per row, an attention-only group as every layer)."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        spec_from_hf_config(_quantised(**quantization), "toy", "test")
