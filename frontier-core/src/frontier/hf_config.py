"""Reading a Hugging Face ``config.json`` into a :class:`~frontier.models.ModelSpec`.

Dense, MoE and MLA fields under their usual names (and the older GPT-style
aliases), the context length by vLLM's rule, the activation dtype and the
quantisation Frontier can size. Every field is checked: a missing or malformed
one is a :class:`~frontier.errors.ConfigError` naming the file and the field.
The built-in catalogue (``frontier/data/models.toml``) holds subsets of such
configs and goes through the same reader.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

from frontier.errors import ConfigError, FrontierWarning
from frontier.models import DTYPE_BYTES, ModelSpec

__all__ = ["spec_from_hf_config"]

_NOT_TRANSFORMERS = ("Mamba", "Jamba", "RWKV", "RecurrentGemma", "Hyena", "Zamba")
"""Architectures whose layers are not attention + MLP."""

_MAX_LEN_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
"""Config fields that give a model's longest context, as vLLM reads them."""

_DEFAULT_MAX_LEN = 2048
"""The longest context vLLM assumes when a config has none of ``_MAX_LEN_KEYS``."""


def _first(config: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        value = config.get(key)
        if value is not None:
            return value
    return default


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _required(config: dict[str, Any], source: str, *keys: str) -> int:
    """The first of ``keys`` the config sets: a positive integer."""
    for key in keys:
        value = config.get(key)
        if value is not None:
            if not _is_integer(value) or value <= 0:
                raise ConfigError(
                    f"{source}: field {key!r} must be a positive integer, got {value!r}"
                )
            return value
    others = f" (also read as {' or '.join(map(repr, keys[1:]))})" if keys[1:] else ""
    raise ConfigError(f"{source}: field {keys[0]!r} is missing{others}")


def _optional(
    config: dict[str, Any],
    source: str,
    *keys: str,
    default: int | None = 0,
    minimum: int = 0,
) -> Any:
    """The first of ``keys`` the config sets, an integer of at least ``minimum``;
    ``default`` when none is set (``null`` counts as unset)."""
    for key in keys:
        value = config.get(key)
        if value is not None:
            if not _is_integer(value) or value < minimum:
                wanted = "a positive integer" if minimum == 1 else "an integer >= 0"
                raise ConfigError(
                    f"{source}: field {key!r} must be {wanted}, got {value!r}"
                )
            return value
    return default


def _max_position_embeddings(config: dict[str, Any], source: str) -> int:
    """The longest context the model takes, by vLLM's rule.

    vLLM (``ModelConfig._get_and_verify_max_len``) takes the smallest of the
    ``_MAX_LEN_KEYS`` the config sets and, when it sets none, assumes 2048 tokens
    with a warning; this does the same (a :class:`FrontierWarning`).
    """
    # XXX: vLLM then multiplies by ``rope_scaling.factor`` for rope types other
    # than llama3/longrope/su (``original_max_position_embeddings`` times the
    # factor for yarn); the factor is not applied here.
    lengths = [
        _optional(config, source, key, default=None, minimum=1) for key in _MAX_LEN_KEYS
    ]
    present = [length for length in lengths if length is not None]
    if present:
        return min(present)
    warnings.warn(
        f"{source}: the config sets none of {', '.join(_MAX_LEN_KEYS)}; assuming "
        f"the model's maximum length is {_DEFAULT_MAX_LEN} tokens, as vLLM does. "
        "Add max_position_embeddings to the config to change it.",
        FrontierWarning,
        stacklevel=3,
    )
    return _DEFAULT_MAX_LEN


def _dtype(config: dict[str, Any], source: str) -> str:
    """The activation dtype (``torch_dtype``, or ``dtype`` in newer configs)."""
    key = "dtype" if config.get("torch_dtype") is None else "torch_dtype"
    dtype = config.get(key)
    if dtype is None:
        return "bfloat16"
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise ConfigError(
            f"{source}: field {key!r} is {dtype!r}; accepted values are "
            f"{', '.join(DTYPE_BYTES)}"
        )
    return dtype


class _Quantisation(NamedTuple):
    """What a checkpoint's ``quantization_config`` changes (see ``ModelSpec``)."""

    weight_dtype: str | None = None
    weight_bits: float | None = None
    gemm_dtype: str | None = None


_SCALE_BITS = 16
"""Width of a group scale: FP16 in GPTQ and AWQ, the model dtype (BF16 or FP16)
in compressed-tensors."""


def _grouped_bits(bits: int, group: Any, zero_bits: int, source: str) -> float:
    """Bits a weight takes with its group's scale and zero point: ``bits + (16
    + zero_bits) / group``. Per-channel scales (``group`` -1 or absent) are one
    per row of thousands of weights and left out."""
    if group is None or group == -1:
        return float(bits)
    if not (_is_integer(group) and group > 0):
        raise ConfigError(
            f"{source}: quantization_config group_size is {group!r}; it must be a "
            "positive integer, or -1 for one scale per row"
        )
    return bits + (_SCALE_BITS + zero_bits) / group


def _refuse_quantisation(
    source: str, method: Any, described: str, dtype: str
) -> ConfigError:
    return ConfigError(
        f"{source}: field 'quantization_config' has quant_method {method!r} with "
        f"{described}; Frontier sizes what vLLM runs of FP8 checkpoints "
        "(quant_method 'fp8', 'fbgemm_fp8', 'modelopt' FP8), NVFP4 ('modelopt' "
        "NVFP4, compressed-tensors), GPTQ with 2, 3, 4 or 8-bit weights, 4-bit "
        "AWQ and compressed-tensors W4A16, W8A16, W8A8 and W4A8-FP8 "
        "(docs/configuration.md lists the rules). Remove quantization_config to "
        f"simulate the checkpoint with {dtype} weights (more memory than it needs)."
    )


_MARLIN_GROUPS = (-1, 32, 64, 128)
"""Group sizes of vLLM's GPTQ Marlin kernel (``marlin_utils``)."""

_FP8 = _Quantisation("fp8", 8.0, "fp8")
_NVFP4_BITS = 4 + 8 / 16
"""NVFP4: FP4 weights with an FP8 scale per 16 (and one FP32 scale a tensor)."""


def _modelopt_algo(quantization: dict[str, Any]) -> Any:
    """ModelOpt's ``quant_algo``, top-level or in its nested ``quantization``."""
    algo = quantization.get("quant_algo")
    nested = quantization.get("quantization")
    if algo is None and isinstance(nested, dict):
        algo = nested.get("quant_algo")
    return algo


def _quantisation(config: dict[str, Any], source: str, dtype: str) -> _Quantisation:
    """The weights vLLM keeps on the GPU for a quantised checkpoint, and the dtype
    its GEMMs run in (vLLM 0.19's ``model_executor/layers/quantization``).

    - ``fp8``, ``fbgemm_fp8`` and ModelOpt ``FP8*``: FP8 weights and, on GPUs
      with FP8 tensor cores (compute capability 8.9 on), FP8 activations
      (``Fp8LinearMethod`` quantises them per tensor or per token); below, a
      weight-only Marlin kernel, which the device's FP8 peak, equal to its BF16
      peak there, reproduces. Per-tensor, per-row or 128 x 128 block scales are
      under 0.01 bit a weight and left out.
    - NVFP4 (ModelOpt ``NVFP4``, compressed-tensors 4-bit float weights in
      groups of 16): 4 bits and an FP8 scale per 16 weights, 4.5 bits; FP4
      GEMMs on Blackwell (the device's ``fp4_tflops``), weight-only elsewhere.
    - ``gptq``: ``bits`` 2, 3, 4 or 8 with a 16-bit scale per group of
      ``group_size``; the packed ``bits``-wide zero points stay on the GPU
      except on the Marlin kernel (4 or 8 bits, ``sym``, groups of -1, 32, 64
      or 128), which drops them after loading: 4-bit in groups of 128 is
      ``4 + 16 / 128 = 4.125`` bits there, ``4 + 20 / 128`` otherwise.
      Weight-only.
    - ``awq`` (4 bits only; ``bits`` or ``w_bit``, ``group_size`` or
      ``q_group_size``): a 16-bit scale and a 4-bit zero point per group, which
      vLLM allocates whatever ``zero_point`` says. Weight-only.
    - ``compressed-tensors``: see :func:`_compressed_tensors`.

    Raises:
        ConfigError: Any other format or width, naming the field.
    """
    quantization = config.get("quantization_config")
    if quantization is None:
        return _Quantisation()
    if not isinstance(quantization, dict):
        raise ConfigError(
            f"{source}: field 'quantization_config' must be a JSON object, "
            f"got {quantization!r}"
        )
    method = quantization.get("quant_method")
    if not isinstance(method, str) or not method:
        raise ConfigError(
            f"{source}: field 'quantization_config' has no quant_method (got "
            f'{method!r}); it names the format, e.g. "awq", "gptq", "fp8"'
        )
    method = method.lower()  # vLLM reads "AWQ" as "awq"
    for flag in ("sym", "zero_point"):
        if flag in quantization and not isinstance(quantization[flag], bool):
            raise ConfigError(
                f"{source}: quantization_config {flag} is {quantization[flag]!r}; "
                "it must be true or false"
            )
    if method in ("fp8", "fbgemm_fp8"):
        return _FP8
    if method == "modelopt":
        algo = _modelopt_algo(quantization)
        if isinstance(algo, str) and algo.upper().startswith("FP8"):
            return _FP8
        if isinstance(algo, str) and algo.upper() == "NVFP4":
            return _Quantisation("fp4", _NVFP4_BITS, "fp4")
        raise _refuse_quantisation(source, method, f"quant_algo {algo!r}", dtype)
    if method in ("gptq", "awq"):
        bits = quantization.get("bits", quantization.get("w_bit"))
        allowed = (2, 3, 4, 8) if method == "gptq" else (4,)
        if not (_is_integer(bits) and bits in allowed):
            raise _refuse_quantisation(
                source, method, f"weights of {bits!r} bits", dtype
            )
        group = quantization.get("group_size", quantization.get("q_group_size"))
        marlin = (
            method == "gptq"
            and bits in (4, 8)
            and quantization.get("sym", True) is not False
            and (group is None or group in _MARLIN_GROUPS)
        )
        zero_bits = 0 if marlin else bits
        return _Quantisation(
            f"int{bits}", _grouped_bits(bits, group, zero_bits, source), None
        )
    if method == "compressed-tensors":
        return _compressed_tensors(quantization, source, dtype)
    raise _refuse_quantisation(
        source, method, "weights it does not describe in bits", dtype
    )


def _compressed_tensors(
    quantization: dict[str, Any], source: str, dtype: str
) -> _Quantisation:
    """The scheme of a compressed-tensors checkpoint, as vLLM 0.19 picks it
    (``CompressedTensorsConfig._get_scheme_from_parts``).

    Groups with no ``weights`` or targeting attention only are not linear
    layers' schemes and are skipped; the others must agree. ``weights`` and
    ``input_activations`` (absent: weight-only) give:

    - int 4 or 8-bit weights alone (W4A16, W8A16; ``pack-quantized``, group or
      channel strategy): ``num_bits`` plus a 16-bit scale per group, and a
      ``num_bits`` zero point per group when not ``symmetric``;
    - FP8 weights alone (W8A16, Marlin) or with FP8 activations (W8A8-FP8);
    - symmetric per-tensor or per-channel int8 weights with int8 activations
      (W8A8-INT8, the device's ``int8_tops``);
    - int4 weights with FP8 activations (W4A8-FP8, which vLLM runs on Hopper
      only);
    - NVFP4 weights (4-bit float in groups of 16) alone or with FP4
      activations.

    2:4 sparse checkpoints, int4 weights with int8 activations (no CUDA kernel)
    and the rest are refused.
    """
    method = "compressed-tensors"
    sparsity = quantization.get("sparsity_config")
    if isinstance(sparsity, dict) and sparsity.get("sparsity_structure") == "2:4":
        raise _refuse_quantisation(source, method, "2:4 sparse weights", dtype)
    groups = quantization.get("config_groups")
    if groups is None or groups == {}:
        raise _refuse_quantisation(source, method, "no config_groups", dtype)
    if not isinstance(groups, dict):
        raise _refuse_quantisation(
            source, method, f"config_groups {groups!r} (a table of groups)", dtype
        )
    layout = quantization.get("format")
    # XXX: the config's `ignore` list (usually lm_head, MoE routers, vision
    # towers, which Frontier keeps in the model dtype anyway) is not read: a
    # checkpoint that leaves other linear layers unquantised is sized as if
    # every one were.
    schemes = set()
    for group in groups.values():
        if not isinstance(group, dict):
            raise _refuse_quantisation(source, method, f"a group {group!r}", dtype)
        targets = group.get("targets")
        weights = group.get("weights")
        if weights is None or (
            isinstance(targets, list)
            and targets
            and all(isinstance(t, str) and t.endswith("Attention") for t in targets)
        ):
            continue
        if targets is not None and targets != ["Linear"]:
            # A group for some layers only (re:.*self_attn.*) would be sized
            # as if it covered every linear layer.
            raise _refuse_quantisation(
                source,
                method,
                f"a group for some layers only (targets {targets!r}); Frontier "
                'sizes groups that target every linear layer (["Linear"])',
                dtype,
            )
        schemes.add(
            _ct_scheme(group, weights, group.get("format", layout), source, dtype)
        )
    if not schemes:
        raise _refuse_quantisation(
            source, method, "no group that quantises linear layers", dtype
        )
    if len(schemes) > 1:
        raise _refuse_quantisation(
            source, method, "config_groups of different schemes", dtype
        )
    return schemes.pop()


def _ct_scheme(
    group: dict[str, Any], weights: Any, layout: Any, source: str, dtype: str
) -> _Quantisation:
    """One compressed-tensors group's scheme (see :func:`_compressed_tensors`)."""
    method = "compressed-tensors"

    def refuse(described: str) -> ConfigError:
        return _refuse_quantisation(source, method, described, dtype)

    if not isinstance(weights, dict):
        raise refuse("weights it does not describe in bits")
    bits, kind = weights.get("num_bits"), weights.get("type")
    strategy = weights.get("strategy")
    symmetric = weights.get("symmetric", True)
    if not isinstance(symmetric, bool):
        raise ConfigError(
            f"{source}: quantization_config weights symmetric is {symmetric!r}; "
            "it must be true or false"
        )
    group_size = weights.get("group_size")
    if strategy in ("group", "tensor_group") and group_size is None:
        raise ConfigError(
            f"{source}: quantization_config weights have strategy {strategy!r} "
            "but no group_size; give the group's size in weights"
        )
    activations = group.get("input_activations")
    if activations is None:
        a_bits, a_kind = None, None
    elif isinstance(activations, dict):
        a_bits, a_kind = activations.get("num_bits"), activations.get("type")
    else:
        raise refuse(f"input_activations {activations!r}")
    described = (
        f"weights of {bits!r} bits ({kind!r})"
        if bits is not None
        else "weights without num_bits"
    )
    if a_bits is not None:
        described += f" and activations of {a_bits!r} bits ({a_kind!r})"
    if not _is_integer(bits) or (a_bits is not None and not _is_integer(a_bits)):
        raise refuse(described)
    if kind == "float" and bits == 4 and group_size == 16:  # NVFP4
        if a_bits is None:
            return _Quantisation("fp4", _NVFP4_BITS, None)
        if (a_kind, a_bits) == ("float", 4):
            return _Quantisation("fp4", _NVFP4_BITS, "fp4")
        raise refuse(described)
    if kind == "float" and bits == 8:
        if a_bits is None:
            return _FP8._replace(gemm_dtype=None)
        if (a_kind, a_bits) == ("float", 8):
            return _FP8
        raise refuse(described)
    if kind != "int" or bits not in (4, 8):
        raise refuse(described)
    zero_bits = 0 if symmetric else bits
    stored = _grouped_bits(bits, group_size, zero_bits, source)
    if a_bits is None:  # W4A16 / W8A16
        if strategy == "tensor":
            raise refuse(described + " per tensor (vLLM has no kernel for it)")
        if layout is not None and layout != "pack-quantized":
            raise refuse(described + f" in format {layout!r} (vLLM: pack-quantized)")
        return _Quantisation(f"int{bits}", stored, None)
    if (a_kind, a_bits) == ("float", 8) and bits == 4:  # W4A8-FP8, Hopper
        return _Quantisation("int4", stored, "fp8")
    if (a_kind, a_bits) == ("int", 8) and bits == 8:  # W8A8-INT8
        if not symmetric or strategy not in (None, "tensor", "channel"):
            raise refuse(
                described + " (vLLM runs INT8 W8A8 with symmetric per-tensor or "
                "per-channel weights only)"
            )
        return _Quantisation("int8", stored, "int8")
    raise refuse(described)


def _text_config(config: dict[str, Any], source: str) -> dict[str, Any]:
    """A multimodal config's ``text_config``, with the top-level fields that
    describe the whole checkpoint (architectures, dtype, quantisation)."""
    if "text_config" not in config or "hidden_size" in config:
        return config
    text = config["text_config"]
    if not isinstance(text, dict):
        raise ConfigError(
            f"{source}: field 'text_config' must be a JSON object, got {text!r}"
        )
    outer = ("torch_dtype", "dtype", "quantization_config")
    inherited = {key: config[key] for key in outer if key in config}
    return {**inherited, **text, "architectures": config.get("architectures")}


def spec_from_hf_config(config: dict[str, Any], name: str, source: str) -> ModelSpec:
    """Build a :class:`ModelSpec` from a Hugging Face ``config.json`` mapping.

    Args:
        config: The parsed config.
        name: Name to give the model.
        source: Where the config came from, for error messages.

    Raises:
        ConfigError: A required field is missing, a size is not a positive
            integer, ``torch_dtype`` is unknown, or the quantisation is one
            Frontier does not size.
    """
    config = _text_config(config, source)

    architectures = " ".join(str(a) for a in config.get("architectures") or [])
    for kind in _NOT_TRANSFORMERS:
        if (
            kind.lower() in architectures.lower()
            or kind.lower() == str(config.get("model_type", "")).lower()
        ):
            raise ConfigError(
                f"{source}: {architectures or kind} is not a decoder-only attention "
                "transformer (it has state-space or recurrent layers); Frontier "
                "models attention and MLP layers only"
            )
    hidden = _required(config, source, "hidden_size", "n_embd", "d_model")
    heads = _required(config, source, "num_attention_heads", "n_head")
    kv_heads = _optional(
        config, source, "num_key_value_heads", "n_kv_head", default=heads, minimum=1
    )
    if heads % kv_heads:
        raise ConfigError(
            f"{source}: num_key_value_heads={kv_heads!r} must be a positive divisor "
            f"of num_attention_heads={heads} (each KV head serves a group of query "
            "heads)"
        )
    head_dim = _optional(config, source, "head_dim", default=hidden // heads)
    if head_dim <= 0:
        raise ConfigError(
            f"{source}: field 'head_dim' must be a positive integer, got {head_dim} "
            f"(hidden_size {hidden} // num_attention_heads {heads} when unset)"
        )
    num_experts = _optional(
        config, source, "num_experts", "n_routed_experts", "num_local_experts"
    )
    intermediate = _optional(config, source, "intermediate_size", "ffn_dim", "n_inner")
    expert_width = _optional(
        config, source, "moe_intermediate_size", default=intermediate
    )
    if num_experts and not intermediate:
        intermediate = expert_width
    if not intermediate:
        raise ConfigError(f"{source}: field 'intermediate_size' is missing")
    top_k = _optional(config, source, "num_experts_per_tok")
    if num_experts and not top_k and "num_experts_per_tok" not in config:
        raise ConfigError(
            f"{source}: field 'num_experts_per_tok' is missing; an MoE config "
            f"({num_experts} experts) must say how many each token is routed to"
        )
    if num_experts and not 1 <= top_k <= num_experts:
        raise ConfigError(
            f"{source}: field 'num_experts_per_tok' must be between 1 and the "
            f"{num_experts} experts, got {top_k}"
        )
    num_shared = _optional(config, source, "n_shared_experts")
    shared_width = _optional(config, source, "shared_expert_intermediate_size")
    if shared_width and not num_shared:
        num_shared = 1
    elif num_shared and not shared_width:
        shared_width = expert_width
    moe_offset = 0
    moe_step = _optional(config, source, "moe_layer_freq", default=None, minimum=1)
    if moe_step is None:
        moe_step = _optional(config, source, "decoder_sparse_step", minimum=1)
        moe_offset = 1 if moe_step else 0
    mlp_only = config.get("mlp_only_layers") or []
    if not isinstance(mlp_only, list) or not all(
        _is_integer(i) and i >= 0 for i in mlp_only
    ):
        raise ConfigError(
            f"{source}: field 'mlp_only_layers' must be a list of layer indices, "
            f"got {mlp_only!r}"
        )
    hidden_act = str(
        _first(config, "hidden_act", "activation_function", default="silu")
    )
    model_type = str(config.get("model_type", ""))
    gated = model_type not in {
        "gpt2",
        "opt",
        "gpt_bigcode",
        "falcon",
    } and "gelu_new" not in (hidden_act)
    tie_embeddings = config.get("tie_word_embeddings", False)
    if not isinstance(tie_embeddings, bool):
        raise ConfigError(
            f"{source}: field 'tie_word_embeddings' must be true or false, "
            f"got {tie_embeddings!r}"
        )
    layers = _required(config, source, "num_hidden_layers", "n_layer", "num_layers")
    dtype = _dtype(config, source)
    quantisation = _quantisation(config, source, dtype)
    return ModelSpec(
        name=name,
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate,
        vocab_size=_required(config, source, "vocab_size"),
        max_position_embeddings=_max_position_embeddings(config, source),
        gated_mlp=gated,
        tie_word_embeddings=tie_embeddings,
        dtype=dtype,
        weight_dtype=quantisation.weight_dtype,
        weight_bits=quantisation.weight_bits,
        gemm_dtype=quantisation.gemm_dtype,
        num_experts=num_experts,
        num_experts_per_token=top_k,
        expert_intermediate_size=expert_width if num_experts else 0,
        num_shared_experts=num_shared if num_experts else 0,
        shared_expert_intermediate_size=shared_width if num_experts else 0,
        num_dense_layers=_optional(config, source, "first_k_dense_replace"),
        moe_layer_step=moe_step or 1,
        moe_layer_offset=moe_offset,
        mlp_only_layers=tuple(mlp_only),
        kv_lora_rank=_optional(config, source, "kv_lora_rank"),
        q_lora_rank=_optional(config, source, "q_lora_rank"),
        qk_rope_head_dim=_optional(config, source, "qk_rope_head_dim"),
        qk_nope_head_dim=_optional(config, source, "qk_nope_head_dim"),
        v_head_dim=_optional(config, source, "v_head_dim"),
    )
