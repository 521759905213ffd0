"""Learned predictors: they answer profiled steps exactly and count fallbacks."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
from conftest import require_shared_data, simulate
from frontier.errors import ConfigError
from frontier_predictors.sklearn_predictor import SklearnConfig, SklearnPredictor

from .conftest import make_batch, write_profile


def _linear(profile, cache, **settings):
    return SklearnConfig(
        profile_dir=str(profile), cache_dir=str(cache), model="linear", **settings
    )


def test_single_request_iteration_equals_the_profile_rows(
    tmp_path, newer_profile, tiny_model_file
):
    """A lone 32-token prefill takes the sum of its rows' operator times."""
    data = {
        "model": {"config_path": str(tiny_model_file)},
        "device": {"name": "a800"},
        "predictor": {
            "type": "sklearn",
            "model": "linear",
            "profile_dir": str(newer_profile),
            "cache_dir": str(tmp_path / "cache"),
        },
        "workload": {"type": "literal", "requests": [[0.0, 32, 1]]},
        "metrics": {"progress": False},
    }
    _, result = simulate(data)
    # Per layer at 32 tokens (ms): input norm 0.003 + 0.0002*32 = 0.0094; QKV
    # 0.010 + 0.003*32 = 0.106; rotary 0.0072; KV write 0.004 + 5e-5*32 = 0.0056;
    # prefill attention 0.005 + 1e-4*32 + 2e-6*32^2 = 0.010248; O 0.040; two adds
    # 2 * 0.0052; post norm 0.0094; up 0.212; act 0.0146; down 0.111
    # -> 0.535848 per layer, 2 layers = 1.071696.
    # Embedding 0.002 + 0.0001*32 = 0.0052; final norm (input norm at 1 row)
    # 0.0032; LM head 0.030 + 0.002 = 0.032 -> 1.071696 + 0.0404 = 1.112096 ms.
    assert result.summary["ttft_ms"]["mean"] == pytest.approx(1.112096, rel=1e-9)
    assert result.summary["predictor"]["fallback_predictions"] == 0


def test_forest_reproduces_a_profiled_iteration_of_real_data(tmp_path):
    """On the A800 Llama-2-7B profile a 256-token prefill is within 8% of its rows.

    The forest averages bootstrap samples, so a profiled point comes back close to,
    not exactly at, its measurement (neighbouring rows differ by a few percent).
    """
    data_dir = require_shared_data()
    profile = data_dir / "profiling/compute/a800/meta-llama/Llama-2-7b-hf"
    from frontier.config import ParallelConfig
    from frontier.devices import load_device
    from frontier.models import load_model
    from frontier.plugins import ExecutionContext
    from frontier_predictors.profiles import read_profile

    model = load_model("llama-2-7b")
    context = ExecutionContext(
        model=model,
        device=load_device("a800"),
        parallel=ParallelConfig(),
        dtype="float16",
        kv_cache_dtype="float16",
    )
    config = SklearnConfig(profile_dir=str(profile), cache_dir=str(tmp_path))
    predictor = SklearnPredictor(config, context)
    samples = read_profile(profile, model).samples
    measured_ms = 0.0
    for name in (
        "input_norm",
        "qkv_proj",
        "rotary",
        "o_proj",
        "post_attention_norm",
        "mlp_up_gate",
        "mlp_act",
        "mlp_down",
    ):
        measured_ms += samples[name].time_ms[samples[name].x == 256][0]
    measured_ms += (
        2 * samples["residual_add"].time_ms[samples["residual_add"].x == 256][0]
    )
    prefill = samples["attention_prefill"]
    row = (prefill.x[:, 0] == 256) & (prefill.x[:, 1] == 0)
    measured_ms += prefill.time_ms[row][0]
    write = samples["kv_cache_write_prefill"]
    measured_ms += write.time_ms[write.x == 256][0]
    times = predictor.predict(make_batch(prefills=[(256, 0)]))
    predicted_ms = (times.attention_s + times.mlp_s) * 1e3
    assert predicted_ms == pytest.approx(measured_ms, rel=0.08)


def test_decode_steps_grow_smoothly_past_the_profiled_batch_sizes(
    older_profile, tmp_path, tiny_context
):
    """Decode steps of 1..16 requests (profiled up to 8) never get cheaper, and
    the step from 8 to 9 is no larger than from 7 to 8 plus the roofline's."""
    predictor = SklearnPredictor(_linear(older_profile, tmp_path), tiny_context)
    steps = []
    for n in range(1, 17):
        times = predictor.predict(make_batch(decodes=[64] * n))
        steps.append(times.attention_s + times.mlp_s)
    assert all(b >= a for a, b in pairwise(steps))
    # continuity at the edge: the 8 -> 9 step stays within 3x the 7 -> 8 step
    assert steps[8] - steps[7] <= 3 * (steps[7] - steps[6])


def test_a_step_inside_the_profile_is_no_fallback(
    older_profile, tmp_path, tiny_context
):
    """64 tokens (profiled up to 128) are answered from the tables."""
    predictor = SklearnPredictor(_linear(older_profile, tmp_path), tiny_context)
    predictor.predict(make_batch(prefills=[(64, 0)]))
    assert predictor.fallback_count == 0


def test_a_step_beyond_the_profile_counts_as_fallback(
    older_profile, tmp_path, tiny_context
):
    """200 prefill tokens (profiled up to 128) fall back to the roofline, once."""
    predictor = SklearnPredictor(_linear(older_profile, tmp_path), tiny_context)
    predictor.predict(make_batch(prefills=[(200, 0)]))
    facts = predictor.describe()
    assert facts["fallback_predictions"] == 1
    assert facts["fallback_by_feature"]["tokens"] == 1
    assert facts["fallback_by_feature"]["prefill_attention"] == 1


def test_a_decode_batch_beyond_the_profile_counts_as_fallback(
    older_profile, tmp_path, tiny_context
):
    """16 decodes (profiled up to 8) count one fallback on decodes."""
    predictor = SklearnPredictor(_linear(older_profile, tmp_path), tiny_context)
    predictor.predict(make_batch(decodes=[32] * 16))
    facts = predictor.describe()
    assert facts["fallback_predictions"] == 1
    assert facts["fallback_by_feature"]["decodes"] == 1
    assert facts["fallback_by_feature"]["decode_attention"] == 1


def test_fallbacks_reach_system_metrics(tmp_path, older_profile, tiny_model_file):
    """A run with one 200-token prompt reports one fallback in system_metrics.json."""
    data = {
        "model": {"config_path": str(tiny_model_file)},
        "device": {"name": "a800"},
        "predictor": {
            "type": "sklearn",
            "model": "linear",
            "profile_dir": str(older_profile),
            "cache_dir": str(tmp_path / "cache"),
        },
        "workload": {"type": "literal", "requests": [[0.0, 200, 1]]},
        "metrics": {"progress": False},
    }
    _, result = simulate(data, tmp_path / "out")
    written = json.loads((result.output_dir / "system_metrics.json").read_text())
    assert written["predictor"]["fallback_predictions"] == 1


def test_linear_model_interpolates_between_rows(older_profile, tmp_path, tiny_context):
    """48 tokens, between profiled 32 and 64, cost what the linear law says."""
    predictor = SklearnPredictor(_linear(older_profile, tmp_path), tiny_context)
    times = predictor.predict(make_batch(decodes=[16] * 8))
    # Decode step of 8 tokens at 16 cached each. MLP block per layer (ms):
    # post norm 0.003 + 0.0002*8 = 0.0046; up 0.020 + 0.006*8 = 0.068;
    # act 0.005 + 0.0003*8 = 0.0074; down 0.015 + 0.003*8 = 0.039;
    # add 0.002 + 0.0001*8 = 0.0028 -> 0.1218 ms.
    assert times.mlp_s * 1e3 == pytest.approx(0.1218, rel=1e-9)


def test_the_profile_directory_is_required(tiny_context, tmp_path):
    """Without profile_dir the predictor says which field to set."""
    with pytest.raises(ConfigError, match=r"predictor\.profile_dir"):
        SklearnPredictor(SklearnConfig(cache_dir=str(tmp_path)), tiny_context)


def test_operators_the_profile_lacks_are_listed(older_profile, tmp_path, tiny_context):
    """The older format has no LM head: describe() lists it as roofline-answered."""
    predictor = SklearnPredictor(_linear(older_profile, tmp_path), tiny_context)
    assert predictor.describe()["roofline_operators"] == ["lm_head"]


def test_a_tp_the_profile_lacks_is_an_error(tmp_path, tiny_context):
    """The hand-made TP 1 profile cannot serve a TP 2 deployment."""
    import attrs
    from frontier.config import ParallelConfig
    from frontier.errors import InputError

    profile = write_profile(tmp_path / "p")
    context = attrs.evolve(
        tiny_context, parallel=ParallelConfig(tensor_parallel_size=2)
    )
    with pytest.raises(InputError, match="tensor-parallel size 2"):
        SklearnPredictor(_linear(profile, tmp_path / "c"), context)


def test_real_profile_has_no_step_down_at_its_edges(tmp_path):
    """On the A800 Llama-2-7B profile (decode batches up to 128, prefills up to
    4096 tokens) decode steps of 120..140 requests and prefills of 4090..4100
    tokens never get cheaper as they grow, across the profiled edge."""
    data_dir = require_shared_data()
    profile = data_dir / "profiling/compute/a800/meta-llama/Llama-2-7b-hf"
    from frontier.config import ParallelConfig
    from frontier.devices import load_device
    from frontier.models import load_model
    from frontier.plugins import ExecutionContext

    context = ExecutionContext(
        model=load_model("llama-2-7b"),
        device=load_device("a800"),
        parallel=ParallelConfig(),
        dtype="float16",
        kv_cache_dtype="float16",
    )
    config = SklearnConfig(profile_dir=str(profile), cache_dir=str(tmp_path))
    predictor = SklearnPredictor(config, context)

    def step_s(batch):
        return sum(predictor.predict(batch))

    decodes = [step_s(make_batch(decodes=[16] * n)) for n in range(120, 141)]
    assert all(b >= a for a, b in pairwise(decodes))
    # Before the continuation, 129 decodes were 19 % cheaper than 128.
    assert decodes[9] >= decodes[8]
    prefills = [step_s(make_batch(prefills=[(q, 0)])) for q in range(4090, 4101)]
    assert all(b >= a for a, b in pairwise(prefills))
    # 4096 -> 4097 is one more token: well under 1 % more time
    assert prefills[7] / prefills[6] < 1.01


def test_a_table_of_one_size_warns(tmp_path, tiny_context):
    """A linear profile of one row trains (it is valid) but is no curve: every
    other token count is the roofline scaled through that row. It says so."""
    from frontier.errors import FrontierWarning

    from .conftest import linear_rows, write_csv

    directory = write_profile(tmp_path / "p")
    write_csv(directory / "mlp.csv", linear_rows(False)[:1])
    config = SklearnConfig(
        profile_dir=str(directory), cache_dir=str(tmp_path / "c"), model="linear"
    )
    with pytest.warns(FrontierWarning, match="measured at a single size"):
        SklearnPredictor(config, tiny_context)
