"""The SGLang scheduler's knobs and SGLang v0.4.6's derived defaults."""

from __future__ import annotations

from typing import Any, Literal

import attrs
from frontier.config import FieldValueError, positive

from frontier_schedulers.base import GuardedConfig

__all__ = [
    "SglangConfig",
    "default_chunked_prefill_size",
    "default_max_running_requests",
]


def _chunk_size(instance: Any, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value != -1 and value <= 0:
        raise FieldValueError(
            attribute.name, f"must be positive, or -1 to disable, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class SglangConfig(GuardedConfig):
    """Knobs of the SGLang scheduler, with SGLang's names and defaults.

    Attributes:
        schedule_policy: ``fcfs`` or ``lpm`` (longest prefix match).
        chunked_prefill_size: Chunk budget of a prefill step; by GPU memory when
            unset (see :func:`default_chunked_prefill_size`); -1 disables chunking.
        max_prefill_tokens: Input-token budget of a prefill step.
        max_running_requests: Most running requests; derived from the KV size
            when unset.
        enable_mixed_chunk: Run the decodes inside the prefill batch (with
            chunked prefill only).
        schedule_conservativeness: Scales the initial new-token ratio.
        init_new_token_ratio: ``global_config.default_init_new_token_ratio``.
        min_new_token_ratio_factor: Floor of the ratio, as a fraction of init.
        new_token_ratio_decay_steps: Decode steps from init down to the floor.
        retract_decode_steps: Free tokens per running request after a retraction.
        clip_max_new_tokens: Cap on one request's future tokens in the budgets
            (``SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION``).
        disable_overlap_schedule: Run SGLang's plain event loop instead of the
            overlap scheduler (on by default since v0.4; off anyway with
            pipeline stages, as SGLang turns it off there).
    """

    type: str = "sglang"
    schedule_policy: Literal["fcfs", "lpm"] = "fcfs"
    chunked_prefill_size: int | None = attrs.field(default=None, validator=_chunk_size)
    max_prefill_tokens: int = attrs.field(default=16384, validator=positive)
    max_running_requests: int | None = attrs.field(default=None, validator=positive)
    enable_mixed_chunk: bool = False
    schedule_conservativeness: float = attrs.field(default=1.0, validator=positive)
    init_new_token_ratio: float = attrs.field(default=0.7, validator=positive)
    min_new_token_ratio_factor: float = attrs.field(default=0.14, validator=positive)
    new_token_ratio_decay_steps: int = attrs.field(default=600, validator=positive)
    retract_decode_steps: int = attrs.field(default=20, validator=positive)
    clip_max_new_tokens: int = attrs.field(default=4096, validator=positive)
    disable_overlap_schedule: bool = False


def default_chunked_prefill_size(memory_gib: float) -> int:
    """SGLang v0.4.6's ``chunked_prefill_size`` default: 2048 tokens on GPUs with
    less than 25,000 MiB of memory, 8192 on larger ones."""
    return 2048 if memory_gib * 1024 < 25_000 else 8192


def default_max_running_requests(kv_tokens: int, max_model_len: int) -> int:
    """SGLang's derived limit: ``min(kv_tokens // 2, request-pool size)``, the pool
    holding ``min(max(kv_tokens / context_len * 512, 2048), 4096)`` requests."""
    pool = min(max(int(kv_tokens / max_model_len * 512), 2048), 4096)
    return max(1, min(kv_tokens // 2, pool))
