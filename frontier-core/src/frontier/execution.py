"""From a batch to the time each pipeline stage spends on it.

A stage's time is the predictor's operator times over the layers it holds plus the
tensor-parallel collectives of those layers (Megatron-style: one all-reduce of the
activations after attention and one after the MLP or MoE block, each of
``tokens * hidden * dtype_bytes`` bytes). The first stage adds the embedding, the last
the LM head and sampler; between stages the activations go by send/recv.
"""

from __future__ import annotations

from frontier.batch import Batch
from frontier.memory import layers_per_stage
from frontier.plugins import CCBackend, ExecutionContext, Predictor

__all__ = ["ExecutionModel"]


class ExecutionModel:
    """Times one batch on one replica's pipeline stages.

    Args:
        context: Model, device and parallelism.
        predictor: Operator times per TP rank.
        cc_backend: Collective costs.
        dtype_bytes: Bytes per activation element.
    """

    def __init__(
        self,
        context: ExecutionContext,
        predictor: Predictor,
        cc_backend: CCBackend,
        dtype_bytes: int,
    ) -> None:
        self.context = context
        self.predictor = predictor
        self.cc_backend = cc_backend
        model = context.model
        self.tp = context.parallel.tensor_parallel_size
        self.num_stages = context.parallel.pipeline_parallel_size
        self._activation_bytes_per_token = model.hidden_size * dtype_bytes
        self._stages: list[tuple[int, int]] = []
        first = 0
        for count in layers_per_stage(model.num_layers, self.num_stages):
            moe = sum(model.is_moe_layer(i) for i in range(first, first + count))
            self._stages.append((count - moe, moe))
            first += count

    def stage_times(self, batch: Batch) -> list[float]:
        """Seconds each pipeline stage spends on ``batch``, send to the next included.

        The last stage's time has no send; every other stage's time ends when its
        activations reach the next stage.
        """
        times = self.predictor.predict(batch)
        size = batch.num_tokens * self._activation_bytes_per_token
        all_reduce = self.cc_backend.all_reduce_s(size, self.tp) if self.tp > 1 else 0.0
        last = self.num_stages - 1
        result = []
        for stage, (dense, moe) in enumerate(self._stages):
            layers = dense + moe
            seconds = (
                layers * times.attention_s + dense * times.mlp_s + moe * times.moe_s
            )
            seconds += 2 * layers * all_reduce
            if stage == 0:
                seconds += times.embedding_s
            if stage == last:
                seconds += times.head_s
            else:
                seconds += self.cc_backend.send_recv_s(size, stage)
            result.append(seconds)
        return result

    def batch_time(self, batch: Batch) -> float:
        """Seconds from the batch entering the first stage to leaving the last."""
        return sum(self.stage_times(batch))
