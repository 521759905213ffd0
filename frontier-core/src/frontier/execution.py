"""From a batch to the time each pipeline stage spends on it.

A stage's time is the predictor's operator times over the layers it holds plus the
tensor-parallel collectives of those layers (Megatron-style: one all-reduce of the
activations after attention and one after the MLP or MoE block, each of
``tokens * hidden * dtype_bytes`` bytes). The first stage adds the embedding, the last
the LM head and sampler; between stages the activations go by send/recv.

Expert parallelism across replicas (``parallel.expert_parallel_size`` above the TP
size) adds, in every MoE layer, vLLM's default ``allgather_reducescatter``
exchange over the ``g = ep / tp`` replicas of the group
(``AgRsAll2AllManager`` with ``MoEPrepareAndFinalizeNaiveDPEPModular``):

- dispatch: an all-gather of every member's tokens after routing: the hidden
  states (``hidden * dtype_bytes`` per token), the top-``k`` weights (FP32) and
  expert ids (INT32), ``hidden * dtype_bytes + 8 k`` bytes per token;
- combine: a reduce-scatter of the experts' outputs, ``hidden * dtype_bytes``
  per token of the group, each member keeping its own tokens' sums.

Members' token counts may differ. vLLM's ``all_gatherv`` and ``reduce_scatterv``
(``PyNcclCommunicator``) then run one NCCL broadcast (reduce) per member, rooted
at it, grouped into one launch; on a ring every part but one crosses each link,
so the busiest link carries all bytes but the smallest part, and the cost is
that of an even collective moving as much over each link:
``S = g / (g - 1) x (total - smallest)`` (for two members, the larger part;
even parts give the plain all-gather of the total). Every member's experts then
compute over all the group's tokens (``Batch.ep_group_tokens``, read by the
predictor).

A step of more tokens than ``cuda_graph_max_tokens`` runs without a CUDA graph
(vLLM's ``max_cudagraph_capture_size``; in an expert-parallel group the largest
member's count decides for all, as the ranks agree on one graph mode,
``coordinate_batch_across_dp``) and takes ``eager_step_overhead_s`` more, the
host's launch work that per-operator profiles leave out, shared among the stages
by their layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from frontier.batch import Batch
from frontier.errors import SimulationError
from frontier.memory import layers_per_stage
from frontier.plugins import CCBackend, ExecutionContext, Predictor

_INF = math.inf

__all__ = ["ExecutionModel"]

_ROUTE_BYTES = 4 + 4
"""Bytes per token and routed expert in the dispatch: an FP32 weight and an INT32
expert id (vLLM's ``fused_topk`` outputs)."""


class ExecutionModel:
    """Times one batch on one replica's pipeline stages.

    Args:
        context: Model, device and parallelism.
        predictor: Operator times per TP rank.
        cc_backend: Collective costs.
        dtype_bytes: Bytes per activation element.
        cuda_graph_max_tokens: Most tokens of a step run as a CUDA graph.
        eager_step_overhead_s: Seconds a step without a CUDA graph adds.
    """

    def __init__(
        self,
        context: ExecutionContext,
        predictor: Predictor,
        cc_backend: CCBackend,
        dtype_bytes: int,
        cuda_graph_max_tokens: int = 0,
        eager_step_overhead_s: float = 0.0,
    ) -> None:
        self.context = context
        self.cuda_graph_max_tokens = cuda_graph_max_tokens
        self.eager_step_overhead_s = eager_step_overhead_s
        self.predictor = predictor
        self.cc_backend = cc_backend
        model = context.model
        self.tp = context.parallel.tensor_parallel_size
        self.num_stages = context.parallel.pipeline_parallel_size
        self.expert_group_size = context.parallel.expert_group_size
        """Replicas whose MoE layers exchange tokens (1: none)."""
        self._activation_bytes_per_token = model.hidden_size * dtype_bytes
        self._dispatch_bytes_per_token = (
            self._activation_bytes_per_token
            + model.num_experts_per_token * _ROUTE_BYTES
        )
        self._stages: list[tuple[int, int]] = []
        first = 0
        for count in layers_per_stage(model.num_layers, self.num_stages):
            moe = sum(model.is_moe_layer(i) for i in range(first, first + count))
            self._stages.append((count - moe, moe))
            first += count
        self._eager_shares = [
            eager_step_overhead_s * count / model.num_layers
            for count in layers_per_stage(model.num_layers, self.num_stages)
        ]

    def expert_collectives_s(self, group_tokens: Sequence[int]) -> float:
        """Seconds of one MoE layer's dispatch all-gather and combine
        reduce-scatter, members holding ``group_tokens`` tokens each (module
        doc); 0 for a group of one."""
        members = len(group_tokens)
        if members <= 1:
            return 0.0
        # Tokens of the even collective that loads each link as much.
        tokens = members * (sum(group_tokens) - min(group_tokens)) / (members - 1)
        backend = self.cc_backend
        gpus = self.tp * self.num_stages  # a replica's GPUs, between members
        gather = backend.replicas_all_gather_s(
            tokens * self._dispatch_bytes_per_token, members, gpus
        )
        scatter = backend.replicas_reduce_scatter_s(
            tokens * self._activation_bytes_per_token, members, gpus
        )
        return gather + scatter

    def stage_times(
        self,
        batch: Batch,
        group_tokens: Sequence[int] | None = None,
        sample: bool = True,
    ) -> list[float]:
        """Seconds each pipeline stage spends on ``batch``, send to the next included.

        The last stage's time has no send; every other stage's time ends when its
        activations reach the next stage.

        Args:
            batch: The step.
            group_tokens: Where the replica belongs to an expert-parallel group,
                the tokens of every member's step this time (padding included),
                this one's among them; unset, every member is assumed to hold as
                many tokens as ``batch``.
            sample: Whether the step samples (LM head and sampler on the last
                stage); a dummy step does not.
        """
        expert_s = 0.0
        if self.expert_group_size > 1:
            if group_tokens is None:
                group_tokens = (batch.num_tokens,) * self.expert_group_size
            batch.ep_group_tokens = sum(group_tokens)
            expert_s = self.expert_collectives_s(group_tokens)
        times = self.predictor.predict(batch)
        size = batch.num_tokens * self._activation_bytes_per_token
        eager = (
            self.eager_step_overhead_s
            and (max(group_tokens) if group_tokens else batch.num_tokens)
            > self.cuda_graph_max_tokens
        )
        all_reduce = self.cc_backend.all_reduce_s(size, self.tp) if self.tp > 1 else 0.0
        last = self.num_stages - 1
        if not last:  # one stage, the common case: the loop below, unrolled
            dense, moe = self._stages[0]
            layers = dense + moe
            try:  # a predictor's None or text fails in the sums
                seconds = (
                    layers * times.attention_s
                    + dense * times.mlp_s
                    + moe * (times.moe_s + expert_s)
                )
                seconds += 2 * layers * all_reduce
                if eager:
                    seconds += self._eager_shares[0]
                seconds += times.embedding_s
                if sample:
                    seconds += times.head_s
            except (TypeError, AttributeError):
                raise self._bad_prediction(times, batch) from None
            if not 0.0 <= seconds < _INF:  # NaN fails too
                raise self._bad_prediction(times, batch)
            return [seconds]
        sends = [self.cc_backend.send_recv_s(size, s) for s in range(last)]
        result = []
        try:  # a predictor's None or text fails in the sums
            for stage, (dense, moe) in enumerate(self._stages):
                layers = dense + moe
                seconds = (
                    layers * times.attention_s
                    + dense * times.mlp_s
                    + moe * (times.moe_s + expert_s)
                )
                seconds += 2 * layers * all_reduce
                if eager:
                    seconds += self._eager_shares[stage]
                if stage == 0:
                    seconds += times.embedding_s
                if stage == last:
                    if sample:
                        seconds += times.head_s
                else:
                    seconds += sends[stage]
                if not 0.0 <= seconds < _INF:  # NaN fails too
                    raise self._bad_prediction(times, batch)
                result.append(seconds)
        except (TypeError, AttributeError):
            raise self._bad_prediction(times, batch) from None
        return result

    def _bad_prediction(self, times: object, batch: Batch) -> SimulationError:
        predictor = type(self.predictor)
        return SimulationError(
            f"the predictor {predictor.__module__}.{predictor.__qualname__} returned "
            f"{times!r:.200} for a step of {len(batch.requests)} request(s) and "
            f"{batch.num_tokens} token(s), a step time of NaN, below 0 or infinite, "
            "or no number at all; a predictor returns OperatorTimes of finite "
            "seconds, 0 or more"
        )

    def dummy_stage_times(
        self, num_tokens: int, group_tokens: Sequence[int] | None = None
    ) -> list[float]:
        """Seconds of a dummy step of ``num_tokens`` tokens and no request.

        vLLM runs one on a data-parallel rank without work while the others step
        (``execute_dummy_batch``: ``_dummy_run`` of a uniform decode batch), so
        that its MoE layers join the collectives: the layers run on
        ``num_tokens`` one-token decodes over a context of one, and nothing is
        sampled (no LM head or sampler).
        """
        batch = Batch()
        batch.num_tokens = batch.num_decodes = num_tokens
        batch.decode_context_sum = num_tokens
        batch.decode_context_max = batch.decode_context_min = 1
        return self.stage_times(batch, group_tokens, False)

    def batch_time(self, batch: Batch) -> float:
        """Seconds from the batch entering the first stage to leaving the last."""
        return sum(self.stage_times(batch))
