"""From operator times to stage times: layers per stage, TP collectives, PP sends."""

from __future__ import annotations

import pytest
from frontier.batch import Batch
from frontier.config import CCBackendConfig, ParallelConfig, PredictorConfig
from frontier.devices import load_device
from frontier.execution import ExecutionModel
from frontier.models import load_model
from frontier.plugins import CCBackend, ExecutionContext, OperatorTimes, Predictor
from frontier.request import Request

# per-layer attention 1 ms, dense MLP 2 ms, MoE block 5 ms; embedding 0.1 ms,
# LM head 0.2 ms
TIMES = OperatorTimes(
    attention_s=1e-3, mlp_s=2e-3, moe_s=5e-3, embedding_s=1e-4, head_s=2e-4
)


class _FixedPredictor(Predictor):
    """Answers ``TIMES`` for any batch."""

    def predict(self, batch):
        return TIMES


class _CountingBackend(CCBackend):
    """All-reduce costs 1 us per rank; a stage-to-stage send costs 7 us."""

    def __init__(self, config, context):
        super().__init__(config, context)
        self.all_reduces = []

    def all_reduce_s(self, size_bytes, num_ranks):
        self.all_reduces.append((size_bytes, num_ranks))
        return 1e-6 * num_ranks

    def all_gather_s(self, size_bytes, num_ranks):
        return 0.0

    def send_recv_s(self, size_bytes, from_stage):
        return 7e-6


def _model(name, tp, pp):
    context = ExecutionContext(
        model=load_model(name),
        device=load_device("h100-sxm"),
        parallel=ParallelConfig(tensor_parallel_size=tp, pipeline_parallel_size=pp),
        dtype="bfloat16",
        kv_cache_dtype="bfloat16",
    )
    backend = _CountingBackend(CCBackendConfig(), context)
    predictor = _FixedPredictor(PredictorConfig(), context)
    return ExecutionModel(context, predictor, backend, dtype_bytes=2), backend


def _batch(tokens):
    batch = Batch()
    batch.add(Request(0, 0.0, tokens, 4), tokens)
    return batch


def test_tp2_pp2_stage_times_by_hand():
    """Llama-2-7B on TP2 x PP2: 16 layers per stage, two all-reduces per layer."""
    model, backend = _model("llama-2-7b", tp=2, pp=2)
    stage0, stage1 = model.stage_times(_batch(10))
    # each stage: 16 x (1 + 2) ms = 48 ms; all-reduces 2 x 16 x 2 us = 64 us
    # stage 0 adds the embedding (0.1 ms) and the send to stage 1 (7 us)
    assert stage0 == pytest.approx(0.048 + 64e-6 + 1e-4 + 7e-6)
    # stage 1 adds the LM head (0.2 ms) and sends nothing
    assert stage1 == pytest.approx(0.048 + 64e-6 + 2e-4)
    # all-reduced activations: 10 tokens x 4096 hidden x 2 bytes over 2 ranks
    assert backend.all_reduces[0] == (81_920, 2)
    assert model.batch_time(_batch(10)) == pytest.approx(stage0 + stage1)


def test_tp1_makes_no_collective_call():
    """On one GPU no all-reduce is asked for."""
    model, backend = _model("llama-2-7b", tp=1, pp=1)
    (stage,) = model.stage_times(_batch(10))
    # 32 x 3 ms + 0.1 ms + 0.2 ms
    assert stage == pytest.approx(0.096 + 3e-4)
    assert backend.all_reduces == []


def test_moe_layers_use_the_moe_time():
    """DeepSeek-V3 on one stage: 61 attention blocks, 3 dense MLPs, 58 MoE blocks."""
    model, _ = _model("deepseek-v3", tp=1, pp=1)
    (stage,) = model.stage_times(_batch(10))
    # 61 x 1 ms + 3 x 2 ms + 58 x 5 ms + 0.1 ms + 0.2 ms = 357.3 ms
    assert stage == pytest.approx(0.3573)


def test_pipeline_stages_split_moe_and_dense_layers():
    """DeepSeek-V3 on PP2: stage 0 has layers 0-30 (3 dense), stage 1 layers 31-60."""
    model, _ = _model("deepseek-v3", tp=1, pp=2)
    stage0, stage1 = model.stage_times(_batch(10))
    # stage 0: 31 x 1 + 3 x 2 + 28 x 5 = 177 ms, + 0.1 ms embedding + 7 us send
    assert stage0 == pytest.approx(0.177 + 1e-4 + 7e-6)
    # stage 1: 30 x 1 + 30 x 5 = 180 ms, + 0.2 ms head
    assert stage1 == pytest.approx(0.180 + 2e-4)


def _eager_model(pp, graph_tokens=256, overhead_s=4e-3):
    context = ExecutionContext(
        model=load_model("llama-2-7b"),
        device=load_device("h100-sxm"),
        parallel=ParallelConfig(pipeline_parallel_size=pp),
        dtype="bfloat16",
        kv_cache_dtype="bfloat16",
    )
    backend = _CountingBackend(CCBackendConfig(), context)
    predictor = _FixedPredictor(PredictorConfig(), context)
    return ExecutionModel(
        context,
        predictor,
        backend,
        dtype_bytes=2,
        cuda_graph_max_tokens=graph_tokens,
        eager_step_overhead_s=overhead_s,
    )


def test_a_step_above_the_cuda_graph_limit_adds_the_eager_overhead():
    """257 tokens run without a CUDA graph (4 ms more); 256 run as one."""
    model = _eager_model(pp=1)
    # 32 layers x (1 + 2) ms + embedding 0.1 ms + head 0.2 ms = 96.3 ms
    assert model.batch_time(_batch(256)) == pytest.approx(0.0963)
    assert model.batch_time(_batch(257)) == pytest.approx(0.0963 + 0.004)


def test_the_eager_overhead_is_shared_by_the_stages_layers():
    """Two stages of 16 layers each take half of the 4 ms."""
    model = _eager_model(pp=2)
    graph = model.stage_times(_batch(100))
    eager = model.stage_times(_batch(300))
    assert eager[0] - graph[0] == pytest.approx(0.002)
    assert eager[1] - graph[1] == pytest.approx(0.002)


def test_every_step_is_eager_at_a_limit_of_zero():
    """``enforce_eager``: even a one-token step pays the overhead."""
    model = _eager_model(pp=1, graph_tokens=0)
    assert model.batch_time(_batch(1)) == pytest.approx(0.0963 + 0.004)


def test_a_group_member_is_eager_when_any_member_exceeds_the_limit():
    """vLLM's ranks agree on one graph mode: 100 tokens beside 300 run eagerly."""
    model = _eager_model(pp=1)
    # the group's tokens are only consulted for the graph mode here (no experts)
    assert model.stage_times(_batch(100), [100, 300])[0] == pytest.approx(
        model.stage_times(_batch(100), [100, 100])[0] + 0.004
    )
