"""Model architectures: what a transformer's shapes are and what they cost in memory.

A :class:`ModelSpec` is built from a Hugging Face ``config.json`` (dense, MoE and MLA
fields) or from the built-in catalogue ``frontier/data/models.toml``, whose entries
are subsets of those same configs; :mod:`frontier.hf_config` reads and checks them.
Parameter counts follow the layer shapes of the Llama/Qwen/Mixtral/DeepSeek
implementations (biases and norms' epsilon aside).
"""

from __future__ import annotations

import json
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from frontier.errors import ConfigError

__all__ = [
    "DTYPE_BYTES",
    "SUB_BYTE_WEIGHT_BITS",
    "ModelSpec",
    "load_model",
    "model_catalogue",
]

DTYPE_BYTES = {
    "float32": 4,
    "fp32": 4,
    "float16": 2,
    "fp16": 2,
    "half": 2,
    "bfloat16": 2,
    "bf16": 2,
    "fp8": 1,
    "float8": 1,
    "float8_e4m3fn": 1,
    "int8": 1,
}
# Stored widths of quantised weights below a byte, in bits (``weight_dtype``).
SUB_BYTE_WEIGHT_BITS = {"int4": 4, "int3": 3, "int2": 2, "fp4": 4}


@attrs.frozen(kw_only=True)
class ModelSpec:
    """The shapes of a decoder-only transformer that decide its cost.

    Attributes:
        name: Hub id or file name the spec came from.
        num_layers: Decoder layers.
        hidden_size: Model width.
        num_heads: Query heads.
        num_kv_heads: Key/value heads (grouped-query attention when fewer).
        head_dim: Width of one head.
        intermediate_size: Width of a dense layer's MLP.
        vocab_size: Vocabulary size (embedding and LM head rows).
        max_position_embeddings: Longest context the model was trained for: the
            smallest of the config's context-length fields, 2048 when it has
            none (vLLM's rule).
        gated_mlp: Whether the MLP has a gate projection (SwiGLU), three matrices.
        tie_word_embeddings: Whether the LM head shares the embedding matrix.
        dtype: Activation dtype name, e.g. ``bfloat16`` (``torch_dtype``).
        weight_dtype: Dtype of the stored linear weights of a quantised checkpoint
            (``fp8``, ``int8``, ``fp4``, ``int4``, ``int3``, ``int2``); ``None``
            when the weights are in ``dtype``.
        weight_bits: Bits one stored linear weight takes with its share of the
            group scales and zero points (4-bit AWQ in groups of 128:
            ``4 + (16 + 4) / 128 = 4.15625``); ``None`` for the bare width of
            ``weight_dtype``.
        gemm_dtype: Dtype the linear layers multiply in when the checkpoint
            quantises activations too (``fp8``, ``int8`` or ``fp4``: W8A8, W4A8
            and NVFP4 checkpoints) on GPUs with such tensor cores;
            ``None`` when they multiply in ``dtype`` (weight-only kernels
            dequantise to it).
        num_experts: Routed experts per MoE layer; 0 for a dense model.
        num_experts_per_token: Experts each token is routed to (top-k).
        expert_intermediate_size: MLP width of one expert.
        num_shared_experts: Experts every token passes through.
        shared_expert_intermediate_size: MLP width of one shared expert.
        num_dense_layers: Leading layers with a dense MLP (DeepSeek's
            ``first_k_dense_replace``).
        moe_layer_step: After those, layer ``i`` is MoE when
            ``(i + moe_layer_offset) % moe_layer_step == 0``.
        moe_layer_offset: 0 for DeepSeek's ``moe_layer_freq`` (``i % freq``), 1 for
            Qwen's ``decoder_sparse_step`` (``(i + 1) % step``).
        mlp_only_layers: Layers that keep a dense MLP anyway (Qwen's
            ``mlp_only_layers``).
        kv_lora_rank: Multi-head latent attention's compressed KV width; 0 without
            MLA.
        q_lora_rank: MLA's compressed query width; 0 for a full query projection.
        qk_rope_head_dim: MLA's rotary part of a head.
        qk_nope_head_dim: MLA's non-rotary part of a head.
        v_head_dim: MLA's value head width.
    """

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    gated_mlp: bool = True
    tie_word_embeddings: bool = False
    dtype: str = "bfloat16"
    weight_dtype: str | None = None
    weight_bits: float | None = None
    gemm_dtype: str | None = None
    num_experts: int = 0
    num_experts_per_token: int = 0
    expert_intermediate_size: int = 0
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    num_dense_layers: int = 0
    moe_layer_step: int = 1
    moe_layer_offset: int = 0
    mlp_only_layers: tuple[int, ...] = ()
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0

    def linear_weight_bytes(self, dtype_bytes: float) -> float:
        """Bytes one stored weight of the linear layers and experts takes (with
        its share of scales and zero points); ``dtype_bytes`` when the weights
        are not quantised."""
        if self.weight_bits is not None:
            return self.weight_bits / 8
        if self.weight_dtype in SUB_BYTE_WEIGHT_BITS:
            return SUB_BYTE_WEIGHT_BITS[self.weight_dtype] / 8
        if self.weight_dtype is not None:
            return float(DTYPE_BYTES[self.weight_dtype])
        return dtype_bytes

    @property
    def is_moe(self) -> bool:
        """Whether the model has routed experts."""
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        """Whether attention is multi-head latent attention (DeepSeek-V2/V3)."""
        return self.kv_lora_rank > 0

    @property
    def num_moe_layers(self) -> int:
        """Decoder layers whose MLP is a mixture of experts."""
        return sum(self.is_moe_layer(i) for i in range(self.num_layers))

    def is_moe_layer(self, index: int) -> bool:
        """Whether decoder layer ``index`` (from 0) has an MoE MLP.

        The rule of the Hugging Face implementations: DeepSeek's decoder layer is
        MoE when ``index >= first_k_dense_replace and index % moe_layer_freq == 0``,
        Qwen-MoE's when ``(index + 1) % decoder_sparse_step == 0`` and ``index`` is
        not in ``mlp_only_layers``.
        """
        if not self.is_moe or index < self.num_dense_layers:
            return False
        if index in self.mlp_only_layers:
            return False
        return (index + self.moe_layer_offset) % self.moe_layer_step == 0

    def kv_bytes_per_token_per_layer(self, dtype_bytes: int) -> int:
        """Bytes of KV cache one token occupies in one layer, whole model width.

        Standard attention stores a key and a value per KV head:
        ``2 * num_kv_heads * head_dim * dtype_bytes``. MLA stores one compressed
        latent plus the rotary key: ``(kv_lora_rank + qk_rope_head_dim) *
        dtype_bytes`` (DeepSeek-V2 paper, section 2.1).
        """
        if self.is_mla:
            return (self.kv_lora_rank + self.qk_rope_head_dim) * dtype_bytes
        return 2 * self.num_kv_heads * self.head_dim * dtype_bytes

    def attention_params(self) -> int:
        """Weights of one attention block (projections only)."""
        h = self.hidden_size
        if self.is_mla:
            qk_head = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:
                q = h * self.q_lora_rank + self.q_lora_rank * self.num_heads * qk_head
            else:
                q = h * self.num_heads * qk_head
            kv_down = h * (self.kv_lora_rank + self.qk_rope_head_dim)
            kv_up = (
                self.kv_lora_rank
                * self.num_heads
                * (self.qk_nope_head_dim + self.v_head_dim)
            )
            out = self.num_heads * self.v_head_dim * h
            return q + kv_down + kv_up + out
        q_and_out = 2 * h * self.num_heads * self.head_dim
        k_and_v = 2 * h * self.num_kv_heads * self.head_dim
        return q_and_out + k_and_v

    def mlp_params(self, width: int) -> int:
        """Weights of one MLP of intermediate ``width``: 3 (gated) or 2 matrices."""
        matrices = 3 if self.gated_mlp else 2
        return matrices * self.hidden_size * width

    def layer_params(self, index: int) -> int:
        """Weights of decoder layer ``index``: attention, MLP or experts, two norms."""
        params = self.attention_params() + 2 * self.hidden_size
        if self.is_moe_layer(index):
            params += self.hidden_size * self.num_experts  # router
            params += self.num_experts * self.mlp_params(self.expert_intermediate_size)
            params += self.num_shared_experts * self.mlp_params(
                self.shared_expert_intermediate_size
            )
        else:
            params += self.mlp_params(self.intermediate_size)
        return params

    def embedding_params(self) -> int:
        """Weights of the token embedding and, unless tied, the LM head."""
        tables = 1 if self.tie_word_embeddings else 2
        return tables * self.vocab_size * self.hidden_size

    def total_params(self) -> int:
        """All weights: every layer plus embedding, LM head and final norm."""
        layers = sum(self.layer_params(i) for i in range(self.num_layers))
        return layers + self.embedding_params() + self.hidden_size

    def active_params_per_token(self) -> int:
        """Weights one token multiplies: top-k and shared experts, not all experts."""
        total = self.embedding_params() + self.hidden_size
        for index in range(self.num_layers):
            if self.is_moe_layer(index):
                total += self.attention_params() + 2 * self.hidden_size
                total += self.hidden_size * self.num_experts
                total += self.num_experts_per_token * self.mlp_params(
                    self.expert_intermediate_size
                )
                total += self.num_shared_experts * self.mlp_params(
                    self.shared_expert_intermediate_size
                )
            else:
                total += self.layer_params(index)
        return total


@cache
def model_catalogue() -> dict[str, dict[str, Any]]:
    """The built-in models: hub id -> config subset (with its ``aliases``)."""
    text = resources.files("frontier.data").joinpath("models.toml").read_text("utf-8")
    return tomllib.loads(text)


def _catalogue_lookup(name: str) -> tuple[str, dict[str, Any]] | None:
    wanted = name.lower()
    for hub_id, entry in model_catalogue().items():
        names = [hub_id.lower(), hub_id.split("/")[-1].lower()]
        names += [alias.lower() for alias in entry.get("aliases", [])]
        if wanted in names:
            return hub_id, entry
    return None


def load_model(
    name: str | None = None, config_path: str | Path | None = None
) -> ModelSpec:
    """Resolve a model by catalogue name, or load it from a ``config.json`` path.

    Raises:
        ConfigError: Unknown name (the message lists the catalogue), unreadable
            file, or a config that lacks a required field.
    """
    from frontier.hf_config import spec_from_hf_config  # it builds a ModelSpec

    if config_path is not None:
        path = Path(config_path)
        try:
            config = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"model config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(
                f"model config file {path} is not valid JSON: {error}"
            ) from None
        if not isinstance(config, dict):
            raise ConfigError(f"model config file {path} must hold a JSON object")
        return spec_from_hf_config(config, name or path.stem, str(path))
    if name is None:
        raise ConfigError("model: give a catalogue `name` or a `config_path`")
    found = _catalogue_lookup(name)
    if found is None:
        known = ", ".join(model_catalogue())
        raise ConfigError(
            f"model.name: unknown model {name!r}; built-in models are: {known}. "
            "Or set model.config_path to a Hugging Face config.json."
        )
    hub_id, entry = found
    return spec_from_hf_config(entry, hub_id, f"built-in model {hub_id}")
