"""Expert parallelism: the config's rules, the MoE collectives, the weights per GPU."""

from __future__ import annotations

import pytest
from conftest import simulate, tiny_config
from frontier.batch import Batch
from frontier.config import CacheConfig, ParallelConfig
from frontier.devices import load_device
from frontier.errors import ConfigError
from frontier.execution import ExecutionModel
from frontier.memory import plan_memory
from frontier.models import load_model
from frontier.plugins import ExecutionContext, OperatorTimes, Predictor
from frontier.request import Request
from frontier_backends.analytical import AnalyticalBackend, AnalyticalConfig

# Qwen3-30B-A3B: 48 layers, all MoE; hidden 2048; top 8 of 128 experts of width 768.
# Per token, bf16: the dispatch gathers 2048 x 2 + 8 x (4 + 4) = 4160 bytes (hidden
# state, FP32 weights, INT32 ids); the combine reduce-scatters 2048 x 2 = 4096.
# rtx-pro-6000: collectives at 16 GB/s bus bandwidth, 10 us per step.
MODEL = "Qwen/Qwen3-30B-A3B-Instruct-2507"
TIMES = OperatorTimes(
    attention_s=1e-3, mlp_s=2e-3, moe_s=5e-3, embedding_s=1e-4, head_s=2e-4
)


class _FixedPredictor(Predictor):
    """Answers ``TIMES`` for any batch and remembers the batches it saw."""

    def __init__(self, config, context):
        super().__init__(config, context)
        self.seen = []

    def predict(self, batch):
        self.seen.append((batch.num_tokens, batch.ep_group_tokens))
        return TIMES


def _execution(ep=2, replicas=2, tp=1):
    context = ExecutionContext(
        model=load_model(MODEL),
        device=load_device("rtx-pro-6000"),
        parallel=ParallelConfig(
            tensor_parallel_size=tp, num_replicas=replicas, expert_parallel_size=ep
        ),
        dtype="bfloat16",
        kv_cache_dtype="bfloat16",
    )
    backend = AnalyticalBackend(AnalyticalConfig(), context)
    predictor = _FixedPredictor(None, context)
    return ExecutionModel(context, predictor, backend, dtype_bytes=2), predictor


def _decodes(count):
    batch = Batch()
    for i in range(count):
        request = Request(i, 0.0, 100, 10)
        request.num_computed_tokens = 100
        request.num_generated = 1
        batch.add(request, 1)
    return batch


# ------------------------------------------------------------------ collectives


def test_even_decode_step_collectives_by_hand():
    """Two members of 128 tokens: one ring step each way per collective."""
    execution, _ = _execution()
    # gather: 1 x (10 us + 2 x 128 x 4160 B / (2 x 16e9 B/s)) = 10 + 33.28 us
    # scatter: 1 x (10 us + 2 x 128 x 4096 B / (2 x 16e9 B/s)) = 10 + 32.768 us
    assert execution.expert_collectives_s([128, 128]) == pytest.approx(86.048e-6)


def test_uneven_parts_cost_the_larger_part_over_the_link():
    """2048 tokens against 128: the 2048-token part crosses the link each way."""
    execution, _ = _execution()
    # even-equivalent tokens 2 x (2176 - 128) / 1 = 4096
    # gather: 10 us + 4096 x 4160 / 32e9 = 10 + 532.48 us
    # scatter: 10 us + 4096 x 4096 / 32e9 = 10 + 524.288 us
    assert execution.expert_collectives_s([2048, 128]) == pytest.approx(1076.768e-6)


def test_three_members_load_each_link_with_all_but_the_smallest_part():
    """Parts of 4, 2 and 6 tokens: every ring link carries up to 10 of them."""
    execution, _ = _execution(ep=3, replicas=3)
    # even-equivalent tokens 3 x (12 - 2) / 2 = 15, over 3 ranks:
    # gather 2 x (10 us + 15 x 4160 / (3 x 16e9)) = 2 x (10 + 1.3) us = 22.6 us
    # scatter 2 x (10 us + 15 x 4096 / (3 x 16e9)) = 2 x (10 + 1.28) us = 22.56 us
    assert execution.expert_collectives_s([4, 2, 6]) == pytest.approx(45.16e-6)


def test_a_group_of_one_exchanges_nothing():
    """One member: no collective."""
    execution, _ = _execution()
    assert execution.expert_collectives_s([300]) == 0.0


def test_stage_time_adds_the_collectives_to_every_moe_layer():
    """48 MoE layers, each with its attention, MoE block and collectives."""
    execution, predictor = _execution()
    (stage,) = execution.stage_times(_decodes(128), [128, 128])
    # 48 x (1 ms + 5 ms + 86.048 us) + 0.1 ms embedding + 0.2 ms head
    assert stage == pytest.approx(48 * (6e-3 + 86.048e-6) + 3e-4)
    # the predictor saw this replica's 128 tokens and the group's 256
    assert predictor.seen == [(128, 256)]


def test_without_the_group_counts_every_member_holds_as_many():
    """No group tokens given: both members assumed to hold this batch's 64."""
    execution, predictor = _execution()
    (stage,) = execution.stage_times(_decodes(64))
    # collectives of [64, 64]: gather 10 + 2 x 64 x 4160 / 32e9 s = 10 + 16.64 us,
    # scatter 10 + 16.384 us
    assert stage == pytest.approx(48 * (6e-3 + 53.024e-6) + 3e-4)
    assert predictor.seen == [(64, 128)]


def test_dummy_step_samples_nothing():
    """A dummy step runs the layers and the embedding, not the LM head."""
    execution, predictor = _execution()
    (stage,) = execution.dummy_stage_times(1, [1, 128])
    # collectives of [1, 128]: even-equivalent 2 x (129 - 1) = 256 tokens:
    # gather 10 + 256 x 4160 / 32e9 s = 10 + 33.28 us, scatter 10 + 32.768 us
    assert stage == pytest.approx(48 * (6e-3 + 86.048e-6) + 1e-4)
    assert predictor.seen == [(1, 129)]


def test_expert_parallel_inside_one_replica_adds_no_exchange():
    """EP 2 over the two TP GPUs of one replica: the TP all-reduces only."""
    execution, predictor = _execution(ep=2, replicas=1, tp=2)
    assert execution.expert_group_size == 1
    execution.stage_times(_decodes(8))
    assert predictor.seen == [(8, 0)]


def test_reduce_scatter_costs_a_ring_all_gather():
    """Ring reduce-scatter of 1 MB over 4 ranks: 3 steps of 256 kB."""
    execution, _ = _execution()
    backend = execution.cc_backend
    # 3 x (10 us + 1e6 / (4 x 16e9) s) = 3 x (10 + 15.625) us
    assert backend.reduce_scatter_s(1e6, 4) == pytest.approx(76.875e-6)
    assert backend.reduce_scatter_s(1e6, 1) == 0.0


# ------------------------------------------------------------------ config


def _config_error(parallel, **sections):
    data = tiny_config([[0.0, 10, 2]], parallel=parallel, **sections)
    with pytest.raises(ConfigError) as error:
        simulate(data)
    return str(error.value)


def test_expert_parallel_size_must_be_a_multiple_of_tp():
    """EP 3 on TP 2 cannot split the experts over whole replicas."""
    message = _config_error({"tensor_parallel_size": 2, "expert_parallel_size": 3})
    assert "parallel.expert_parallel_size: must be a multiple of" in message


def test_expert_group_must_divide_the_replicas():
    """EP 4 on TP 1 spans 4 replicas, which 3 replicas cannot form."""
    message = _config_error({"num_replicas": 3, "expert_parallel_size": 4})
    assert "parallel.expert_parallel_size" in message
    assert "num_replicas=3 is not a multiple of" in message


def test_expert_parallel_size_must_divide_the_experts():
    """Qwen3-30B-A3B's 128 experts do not split over 3 GPUs."""
    message = _config_error(
        {"num_replicas": 3, "expert_parallel_size": 3}, model={"name": MODEL}
    )
    assert "does not divide the 128 routed experts" in message


def test_expert_parallelism_needs_routed_experts():
    """A dense model has no experts to split."""
    message = _config_error({"num_replicas": 2, "expert_parallel_size": 2})
    assert "needs a model with routed experts" in message


def test_lockstep_needs_an_expert_group_of_several_replicas():
    """Lockstep without a group spanning replicas is refused."""
    message = _config_error({"num_replicas": 2, "data_parallel_lockstep": True})
    assert "parallel.data_parallel_lockstep" in message


def test_expert_groups_with_pipeline_stages_are_not_built():
    """EP across replicas with PP 2 fails with a message saying so."""
    message = _config_error(
        {"num_replicas": 2, "expert_parallel_size": 2, "pipeline_parallel_size": 2}
    )
    assert "not built yet" in message


def test_lockstep_is_on_exactly_where_a_group_spans_replicas():
    """Unset, lockstep follows the expert-parallel group."""
    assert ParallelConfig(num_replicas=2, expert_parallel_size=2).lockstep
    assert not ParallelConfig(num_replicas=2).lockstep
    assert not ParallelConfig(tensor_parallel_size=2, expert_parallel_size=2).lockstep
    off = ParallelConfig(
        num_replicas=2, expert_parallel_size=2, data_parallel_lockstep=False
    )
    assert not off.lockstep


# ------------------------------------------------------------------ memory


def test_expert_parallelism_splits_the_experts_weights():
    """EP 2: each GPU holds half the routed experts, all the rest."""
    model = load_model(MODEL)
    device = load_device("rtx-pro-6000")
    limits = dict(
        dtype_bytes=2,
        kv_dtype_bytes=2,
        max_num_batched_tokens=2048,
        max_num_seqs=128,
        max_model_len=4096,
    )
    one = plan_memory(model, device, ParallelConfig(), CacheConfig(), **limits)
    split = plan_memory(
        model,
        device,
        ParallelConfig(num_replicas=2, expert_parallel_size=2),
        CacheConfig(),
        **limits,
    )
    # experts: 48 layers x 128 x 3 x 2048 x 768 = 28,991,029,248 parameters,
    # 2 bytes each, half of them per GPU
    assert one.weight_bytes - split.weight_bytes == 28_991_029_248
