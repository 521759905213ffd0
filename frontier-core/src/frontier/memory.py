"""How many KV blocks fit on a replica: vLLM's memory planning.

vLLM (``Worker.determine_available_memory``) gives the KV cache what is left of
``gpu_memory_utilization x device memory`` after the weights, the peak activation
memory of a profiling forward pass at the full token budget, and non-torch memory;
that is then cut into blocks of ``block_size`` tokens across all layers on the GPU.
The same arithmetic here, per GPU (the most loaded one of a replica)::

    kv_bytes   = utilisation * memory - weights - activations - overhead
    block_bytes = block_size * kv_bytes_per_token_per_layer / kv_split * layers
    num_blocks = floor(kv_bytes / block_bytes)

Weights are split over tensor-parallel ranks and, by layers, over pipeline stages
(the first stage also holds the embedding, the last the LM head); with expert
parallelism the routed experts are split over ``expert_parallel_size`` GPUs
instead. A quantised checkpoint's linear and expert weights take its element size,
the rest (norms, routers, embedding, LM head) the activation dtype's. Activations are
estimated as ``tokens * (3 * intermediate / tp + 4 * hidden) * dtype_bytes`` for the
MLP's widest intermediates and the residual stream, plus FP32 logits for
``max_num_seqs`` sequences; set ``cache.activation_memory_gib`` to use a measured
figure instead. A replica refuses to start, as vLLM does, when one sequence of
``max_model_len`` tokens cannot fit.
"""

from __future__ import annotations

import attrs

from frontier.config import CacheConfig, ParallelConfig
from frontier.devices import GIB, DeviceSpec
from frontier.errors import ConfigError
from frontier.models import ModelSpec

__all__ = ["MemoryPlan", "layers_per_stage", "plan_memory"]


def layers_per_stage(num_layers: int, num_stages: int) -> list[int]:
    """Split layers over pipeline stages as evenly as possible, extras first."""
    base, extra = divmod(num_layers, num_stages)
    return [base + (1 if stage < extra else 0) for stage in range(num_stages)]


@attrs.frozen(kw_only=True)
class MemoryPlan:
    """The memory budget of one GPU of a replica and the KV blocks it yields.

    All sizes are bytes per GPU.
    """

    budget_bytes: int
    weight_bytes: int
    activation_bytes: int
    overhead_bytes: int
    kv_cache_bytes: int
    block_bytes: int
    num_blocks: int
    block_size: int
    pinned: bool

    def as_dict(self) -> dict[str, float]:
        """The plan in GiB and blocks, for ``system_metrics.json``."""
        return {
            "budget_gib": self.budget_bytes / GIB,
            "weights_gib": self.weight_bytes / GIB,
            "activations_gib": self.activation_bytes / GIB,
            "overhead_gib": self.overhead_bytes / GIB,
            "kv_cache_gib": self.kv_cache_bytes / GIB,
            "num_gpu_blocks": self.num_blocks,
            "block_size": self.block_size,
            "kv_tokens": self.num_blocks * self.block_size,
            "num_gpu_blocks_pinned": self.pinned,
        }


def _stage_weights(
    model: ModelSpec, stage: int, num_stages: int
) -> tuple[int, int, int]:
    """Weights of one pipeline stage as ``(linear, routed experts, other)``.

    ``linear`` is the attention projections, dense MLPs and shared experts;
    ``routed experts`` the MoE layers' routed experts; ``other`` what a quantised
    checkpoint keeps in the activation dtype: norms, routers, the token embedding
    (first stage) and the final norm and LM head (last stage; a tied head is the
    embedding itself unless the stages split them).
    """
    counts = layers_per_stage(model.num_layers, num_stages)
    first = sum(counts[:stage])
    linear = experts = other = 0
    for index in range(first, first + counts[stage]):
        linear += model.attention_params()
        other += 2 * model.hidden_size  # the layer's two norms
        if model.is_moe_layer(index):
            other += model.hidden_size * model.num_experts  # router
            experts += model.num_experts * model.mlp_params(
                model.expert_intermediate_size
            )
            linear += model.num_shared_experts * model.mlp_params(
                model.shared_expert_intermediate_size
            )
        else:
            linear += model.mlp_params(model.intermediate_size)
    if stage == 0:
        other += model.vocab_size * model.hidden_size
    if stage == num_stages - 1:
        other += model.hidden_size
        if not model.tie_word_embeddings or num_stages > 1:
            other += model.vocab_size * model.hidden_size
    return linear, experts, other


def plan_memory(
    model: ModelSpec,
    device: DeviceSpec,
    parallel: ParallelConfig,
    cache: CacheConfig,
    *,
    dtype_bytes: int,
    kv_dtype_bytes: int,
    weight_dtype_bytes: float | None = None,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    max_model_len: int,
) -> MemoryPlan:
    """Plan one replica's KV cache, or refuse when a full sequence cannot fit.

    ``weight_dtype_bytes`` is the stored weights' size when it differs from the
    activations' (a quantised checkpoint; fractional below a byte, group scales
    included: ``ModelSpec.linear_weight_bytes``): it applies to the linear
    layers' and experts' weights, while norms, routers, the embedding and the LM
    head stay at ``dtype_bytes``, as such checkpoints store them.

    Raises:
        ConfigError: One ``max_model_len`` sequence needs more blocks than fit;
            the message gives every term of the budget.
    """
    tp = parallel.tensor_parallel_size
    pp = parallel.pipeline_parallel_size
    ep = parallel.expert_parallel_size
    element_bytes = weight_dtype_bytes or dtype_bytes
    stage_bytes = []
    for stage in range(pp):
        linear, experts, other = _stage_weights(model, stage, pp)
        if ep > 1:  # experts split over the expert-parallel group, not by TP
            dense = (linear * element_bytes + other * dtype_bytes) // tp
            stage_bytes.append(int(dense + experts * element_bytes // ep))
        else:
            stage_bytes.append(
                int(((linear + experts) * element_bytes + other * dtype_bytes) // tp)
            )
    worst_stage = max(range(pp), key=lambda s: stage_bytes[s])
    weight_bytes = stage_bytes[worst_stage]

    if cache.activation_memory_gib is not None:
        activation_bytes = int(cache.activation_memory_gib * GIB)
    else:
        width = 3 * model.intermediate_size // tp + 4 * model.hidden_size
        if model.is_moe:
            width = max(
                width, 3 * model.expert_intermediate_size * model.num_experts_per_token
            )
        activation_bytes = max_num_batched_tokens * width * dtype_bytes
        activation_bytes += max_num_seqs * model.vocab_size * 4
    overhead_bytes = int(cache.overhead_memory_gib * GIB)
    budget_bytes = int(cache.gpu_memory_utilization * device.memory_bytes)

    # MLA's latent is not split across heads: every rank keeps all of it.
    kv_split = 1 if model.is_mla else min(tp, model.num_kv_heads)
    layers = layers_per_stage(model.num_layers, pp)[worst_stage]
    per_token_layer = model.kv_bytes_per_token_per_layer(kv_dtype_bytes) // kv_split
    block_bytes = cache.block_size * per_token_layer * layers

    kv_cache_bytes = budget_bytes - weight_bytes - activation_bytes - overhead_bytes
    if cache.num_gpu_blocks is not None:
        num_blocks = cache.num_gpu_blocks
        pinned = True
    else:
        num_blocks = max(0, kv_cache_bytes // block_bytes)
        pinned = False

    needed = -(-max_model_len // cache.block_size)
    if num_blocks < needed:
        terms = (
            f"{cache.gpu_memory_utilization:g} x {device.memory_gib:g} GiB = "
            f"{budget_bytes / GIB:.2f} GiB, minus weights "
            f"{weight_bytes / GIB:.2f} GiB, "
            f"activations {activation_bytes / GIB:.2f} GiB and overhead "
            f"{overhead_bytes / GIB:.2f} GiB leaves {kv_cache_bytes / GIB:.2f} GiB "
            "for the KV cache"
        )
        sequence = (
            f"one sequence of max_model_len={max_model_len} tokens needs {needed} KV "
            f"blocks ({needed * block_bytes / GIB:.2f} GiB per GPU)"
        )
        if pinned:
            advice = (
                f"but cache.num_gpu_blocks pins {num_blocks}. Raise "
                "cache.num_gpu_blocks or lower model.max_model_len."
            )
        elif (
            cache.activation_memory_gib is None
            and activation_bytes > weight_bytes
            and weight_bytes + overhead_bytes < budget_bytes
        ):
            # The step's activations, which grow with the token budget, are
            # what does not fit (max_num_batched_tokens = 1e8: 11,063 GiB).
            advice = (
                f"but the activations of a step of {max_num_batched_tokens} "
                f"tokens and {max_num_seqs} sequences take the room: {terms}. "
                "Lower the replica scheduler's max_num_batched_tokens (and "
                "max_num_seqs), or set cache.activation_memory_gib to the "
                "measured figure."
            )
        elif weight_bytes + activation_bytes + overhead_bytes >= budget_bytes:
            advice = (
                f"but the model does not fit at all: {terms}. Raise "
                "parallel.tensor_parallel_size or parallel.pipeline_parallel_size, "
                "or pick a device with more memory."
            )
        else:
            advice = (
                f"but only {num_blocks} fit: {terms}. Lower model.max_model_len, "
                "raise parallel.tensor_parallel_size or cache.gpu_memory_utilization, "
                "or pick a device with more memory."
            )
        raise ConfigError(f"{sequence} {advice}")
    return MemoryPlan(
        budget_bytes=budget_bytes,
        weight_bytes=weight_bytes,
        activation_bytes=activation_bytes,
        overhead_bytes=overhead_bytes,
        kv_cache_bytes=kv_cache_bytes,
        block_bytes=block_bytes,
        num_blocks=int(num_blocks),
        block_size=cache.block_size,
        pinned=pinned,
    )
