"""Step times from per-layer profiles measured with vLLM's own kernels.

The profile format (one folder per TP degree, ``tp<N>/``; times in microseconds
for ONE decoder layer, the way the LLMServingSim profiler writes them):

- ``dense.csv`` ``(layer, tokens, time_us)``: linear and elementwise operators
  against the tokens of the step (embedding, layernorm, qkv_proj, qk_norm,
  rotary_emb, o_proj, gate_up_proj, act_fn, down_proj, final_layernorm);
- ``per_sequence.csv`` ``(layer, sequences, time_us)``: lm_head and sampler
  against the sequences of the step;
- ``attention.csv`` ``(prefill_chunk, kv_prefill, n_decode, kv_decode, time_us)``:
  the attention kernel of a step holding one prefill chunk over ``kv_prefill``
  cached tokens and ``n_decode`` decodes over ``kv_decode`` cached tokens each;
- ``moe.csv`` ``(tokens, activated_experts, time_us)``: one rank's MoE block;
- ``skew.csv`` / ``skew_fit.csv``: decode batches with uneven contexts and a
  fitted correction ``t = t_mean + alpha (t_max - t_mean)`` by bucket.

How a batch becomes :class:`~frontier.plugins.OperatorTimes` (per layer, per TP
rank):

- ``attention_s`` = input layernorm + qkv_proj (+ qk_norm) + rotary_emb +
  attention kernel + o_proj;
- ``mlp_s`` = post-attention layernorm + gate_up_proj + act_fn + down_proj;
- ``moe_s`` = post-attention layernorm + MoE block;
- ``embedding_s`` = embedding; ``head_s`` = final_layernorm (tokens) + lm_head
  and sampler (one row per request of the step: vLLM v1 computes logits for
  the last scheduled token of every request).

Interpolation: every table is piecewise linear in its raw axes (time is close to
affine in tokens and in context length, which log-axes would bend), multilinear
in the four attention axes. The attention table is read onto the product of all
values its axes take; cells the profile did not measure are filled by linear
interpolation along one axis between measured cells, and the corners vLLM never
produces by the rules of ``_fill_attention`` in
:mod:`frontier_predictors._vllm_tables`. Outside the grid a table is continued
linearly from its last two grid points on each axis; such predictions are counted
in ``describe()["fallback_predictions"]``.

Several prefill chunks in one step are mapped onto the table's single chunk by
equal causal-attention work: ``Q = sum q_i`` query tokens over a context ``K``
such that ``Q K + Q (Q + 1) / 2 = sum q_i k_i + q_i (q_i + 1) / 2`` (``K`` at
least 0). Decodes read the table at their mean context; where the contexts are
uneven, the profile's fitted correction adds ``alpha (t_max - t_mean)``.

MoE: the block is read at the rank's routed tokens (``T / ep``) and the
expected distinct experts ``(E / ep) (1 - (1 - k / E) ** T)`` of ``T`` tokens
routed top-``k`` over ``E`` experts uniformly, ``ep`` being
``parallel.expert_parallel_size``. ``T`` is the step's tokens, or, where the
expert-parallel group spans several replicas, every member's tokens
(``Batch.ep_group_tokens``: vLLM gathers them before the experts). Under expert
parallelism the experts are not split by TP, so a ``tp<N>`` profile reads the
MoE table of its sibling ``tp1`` folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
from frontier.batch import Batch
from frontier.config import PredictorConfig, path_field, positive
from frontier.errors import ConfigError, InputError
from frontier.hookspecs import hookimpl
from frontier.plugins import ExecutionContext, OperatorTimes, Predictor

from frontier_predictors._vllm_tables import (
    AttentionTable,
    MoeTable,
    SkewCorrection,
    read_series,
    summed_lines,
)
from frontier_predictors.provenance import check_profile_device

__all__ = ["VllmProfileConfig", "VllmProfilePredictor"]

_ATTENTION_OPS = ("layernorm", "qkv_proj", "qk_norm", "rotary_emb", "o_proj")
_MLP_OPS = ("layernorm", "gate_up_proj", "act_fn", "down_proj")
_REQUIRED_OPS = ("layernorm", "qkv_proj", "rotary_emb", "o_proj", "embedding")


@attrs.frozen(kw_only=True)
class VllmProfileConfig(PredictorConfig):
    """Where the per-layer profile lives and which corrections apply.

    Attributes:
        path: The profile folder of one model and dtype (holding ``tp<N>/``), or
            one ``tp<N>`` folder.
        tensor_parallel_size: Which ``tp<N>`` to read; the deployment's TP size
            when unset.
        skew_correction: Apply the fitted uneven-decode correction.
        check_device: Refuse a profile whose path names another device than the
            run's (see :mod:`frontier_predictors.provenance`).
    """

    type: str = "vllm_profile"
    path: str = path_field()
    tensor_parallel_size: int | None = attrs.field(default=None, validator=positive)
    skew_correction: bool = True
    check_device: bool = True


# --------------------------------------------------------------------------- predictor


def _tp_folder(path: Path, tp: int) -> Path:
    """The ``tp<N>`` folder of a profile given either it or its parent."""
    if not path.is_dir():
        raise ConfigError(f"predictor.path: profile folder {path} does not exist")
    if (path / "attention.csv").is_file():
        return path
    folder = path / f"tp{tp}"
    if not folder.is_dir():
        found = sorted(p.name for p in path.glob("tp*") if p.is_dir())
        raise ConfigError(
            f"predictor.path: {path} has no tp{tp} folder (it has "
            f"{', '.join(found) or 'none'}); profile TP {tp} or set "
            "predictor.tensor_parallel_size"
        )
    return folder


def merged_prefill(lengths: list[int], contexts: list[int]) -> tuple[float, float]:
    """One chunk ``(Q, K)`` doing the causal-attention work of several.

    ``Q = sum q_i`` and ``Q K + Q (Q + 1) / 2 = sum q_i k_i + q_i (q_i + 1) / 2``,
    with ``K`` at least 0 (several short chunks do less work than one long one,
    which the single-chunk table cannot show).
    """
    if len(lengths) == 1:
        return float(lengths[0]), float(contexts[0])
    total = sum(lengths)
    work = sum(q * (k + (q + 1) / 2) for q, k in zip(lengths, contexts, strict=True))
    return float(total), max(0.0, work / total - (total + 1) / 2)


class VllmProfilePredictor(Predictor):
    """Per-layer vLLM kernel profiles of one GPU, read as tables (see module doc)."""

    def __init__(self, config: VllmProfileConfig, context: ExecutionContext) -> None:
        super().__init__(config, context)
        self.config: VllmProfileConfig = config
        model = context.model
        tp = config.tensor_parallel_size or context.parallel.tensor_parallel_size
        root = Path(config.path)
        self.folder = _tp_folder(root, tp)
        if config.check_device:
            check_profile_device(root, context.device, "path")

        dense_path = self.folder / "dense.csv"
        dense = read_series(dense_path, "tokens")
        missing = [op for op in _REQUIRED_OPS if op not in dense]
        has_dense_mlp = any(not model.is_moe_layer(i) for i in range(model.num_layers))
        if has_dense_mlp:
            missing += [op for op in _MLP_OPS if op not in dense]
        if missing:
            raise InputError(
                f"{dense_path}: no rows for operator(s) {', '.join(missing)}"
            )
        final = "final_layernorm" if "final_layernorm" in dense else "layernorm"
        self._tokens = summed_lines(
            dense,
            [
                _ATTENTION_OPS,
                _MLP_OPS if has_dense_mlp else (),
                ("layernorm",),
                ("embedding",),
                (final,),
            ],
            dense_path,
        )

        sequence_path = self.folder / "per_sequence.csv"
        per_sequence = read_series(sequence_path, "sequences")
        missing = [op for op in ("lm_head", "sampler") if op not in per_sequence]
        if missing:
            raise InputError(
                f"{sequence_path}: no rows for operator(s) {', '.join(missing)}"
            )
        self._sequences = summed_lines(
            per_sequence, [("lm_head", "sampler")], sequence_path
        )

        self._attention = AttentionTable(self.folder / "attention.csv")

        self._moe = None
        if model.is_moe:
            ep = context.parallel.expert_parallel_size
            moe_folder = self.folder
            if ep > 1 and tp > 1 and (self.folder.parent / "tp1").is_dir():
                moe_folder = self.folder.parent / "tp1"
            moe_path = moe_folder / "moe.csv"
            if not moe_path.is_file():
                raise InputError(
                    f"{moe_path}: {model.name} has routed experts but the profile "
                    "has no MoE table"
                )
            self._moe = MoeTable(moe_path)
            if model.num_experts % ep:
                raise ConfigError(
                    f"parallel.expert_parallel_size={ep} does not divide the "
                    f"{model.num_experts} experts of {model.name}"
                )
            self._experts_per_rank = model.num_experts / ep
            self._route_miss = 1 - model.num_experts_per_token / model.num_experts
            self._ep = ep

        self._skew = None
        if config.skew_correction and (self.folder / "skew_fit.csv").is_file():
            meta = self.folder.parent / "meta.yaml"
            if not meta.is_file():
                meta = self.folder / "meta.yaml"
            if not meta.is_file():
                raise InputError(
                    f"{self.folder / 'skew_fit.csv'} needs the profile's meta.yaml "
                    f"(its skew_fit.bucket_axes), in {self.folder.parent} or "
                    f"{self.folder}, and there is none; restore it, or set "
                    "predictor.skew_correction = false to go without the correction"
                )
            self._skew = SkewCorrection(self.folder, meta)
        self.num_skew_corrected = 0

    def predict(self, batch: Batch) -> OperatorTimes:
        """Operator times of one step on one TP rank (module doc for the mapping)."""
        tokens = batch.num_tokens
        sequences = batch.num_requests
        outside = tokens > self._tokens.x_max or sequences > self._sequences.x_max
        attention_ops, mlp, norm, embedding, final_norm = self._tokens(tokens)

        if batch.prefill_lengths:
            chunk, kv_prefill = merged_prefill(
                batch.prefill_lengths, batch.prefill_contexts
            )
        else:
            chunk = kv_prefill = 0.0
        decodes = batch.num_decodes
        kv_decode = batch.decode_context_sum / decodes - 1 if decodes else 0.0
        table = self._attention
        kernel = table(chunk, kv_prefill, decodes, kv_decode)
        outside = outside or not table.inside(chunk, kv_prefill, decodes, kv_decode)
        if self._skew is not None and decodes > 1:
            kernel += self._skew_term(
                batch, chunk, kv_prefill, decodes, kv_decode, kernel
            )

        moe = 0.0
        if self._moe is not None:
            routed = batch.ep_group_tokens or tokens
            experts = self._experts_per_rank * (1 - self._route_miss**routed)
            rank_tokens = routed / self._ep
            moe = norm + self._moe(rank_tokens, experts)
            outside = outside or rank_tokens > self._moe.max_tokens
        head = final_norm + self._sequences(sequences)[0]
        if outside:
            self.fallback_count += 1
        return OperatorTimes(attention_ops + kernel, mlp, moe, embedding, head)

    def _skew_term(
        self,
        batch: Batch,
        chunk: float,
        kv_prefill: float,
        decodes: int,
        kv_mean: float,
        kernel_mean: float,
    ) -> float:
        """``alpha (t_max - t_mean)`` of uneven decode contexts (0 when even)."""
        top = getattr(batch, "decode_context_max", 0) - 1
        low = getattr(batch, "decode_context_min", 0) - 1
        if top <= low or top <= kv_mean:
            return 0.0
        skew_rate = (kv_mean - low) / (top - low)
        alpha = self._skew.alpha(chunk, decodes, skew_rate, top, kv_prefill)
        kernel_max = self._attention(chunk, kv_prefill, decodes, top)
        self.num_skew_corrected += 1
        return alpha * (kernel_max - kernel_mean)

    def describe(self) -> dict[str, Any]:
        """Where the tables came from and how often they were left."""
        facts = super().describe()
        facts.update(
            {
                "profile": os.path.abspath(self.folder),
                "skew_correction": self._skew is not None,
                "skew_corrected_predictions": self.num_skew_corrected,
                "max_tokens": self._tokens.x_max,
                "max_kv": self._attention.max_kv,
            }
        )
        return facts


@hookimpl
def frontier_register_predictors(registry):
    """Add ``vllm_profile``."""
    registry.register("vllm_profile", VllmProfilePredictor, VllmProfileConfig)
