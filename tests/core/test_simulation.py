"""Building a simulation: start-up checks, dtypes, the output folder, the summary."""

from __future__ import annotations

import pytest
from conftest import simulate, tiny_config
from conftest import test_plugins as plugin_host
from frontier.config_build import build_config
from frontier.errors import ConfigError
from frontier.models import load_model
from frontier.simulation import Simulation, resolve_dtypes, run_directory


def _config(requests=((0.0, 8, 2),), **sections):
    host = plugin_host()
    return build_config(
        tiny_config(list(requests), **sections), host.registry.config_classes()
    )


def _build(**sections):
    return Simulation(_config(**sections), plugin_host())


def test_tp_that_does_not_divide_the_heads_is_refused():
    """Llama-2-7B's 32 heads cannot be split over 3 GPUs."""
    with pytest.raises(ConfigError, match="tensor_parallel_size=3 does not divide"):
        _build(parallel={"tensor_parallel_size": 3})


def test_more_stages_than_layers_is_refused():
    """33 pipeline stages for 32 layers is refused."""
    with pytest.raises(ConfigError, match="pipeline_parallel_size=33"):
        _build(parallel={"pipeline_parallel_size": 33})


def test_async_scheduling_with_pipeline_stages_is_refused():
    """Asynchronous scheduling is modelled for one-stage replicas; with two
    stages it used to be dropped while the summary still said it was on."""
    with pytest.raises(ConfigError, match="async_scheduling = true is modelled"):
        _build(
            parallel={"pipeline_parallel_size": 2},
            replica_scheduler={"type": "vllm_v1", "async_scheduling": True},
        )
    _build(
        parallel={"pipeline_parallel_size": 2},
        replica_scheduler={"type": "vllm_v1", "async_scheduling": False},
    )


def test_a_dummy_batch_larger_than_a_step_is_refused():
    """100,000 dummy tokens slowed a lockstep group 13x without a word; a dummy
    batch may hold at most the step's token budget."""
    with pytest.raises(ConfigError, match="lockstep_dummy_tokens=4097 is more than"):
        _build(
            replica_scheduler={"type": "vllm_v1", "max_num_batched_tokens": 4096},
            parallel={"lockstep_dummy_tokens": 4097},
        )


def test_max_model_len_beyond_the_trained_context_is_refused():
    """Llama-2-7B was trained for 4096 tokens; 8192 is refused as vLLM does."""
    with pytest.raises(ConfigError, match="max_model_len=8192 is longer than the 4096"):
        _build(model={"max_model_len": 8192})


def test_max_model_len_defaults_to_the_model_context():
    """Unset, max_model_len is max_position_embeddings (4096 for Llama-2-7B)."""
    assert _build().max_model_len == 4096


def test_unknown_model_is_a_config_error_at_build():
    """An unknown model name fails when the simulation is built."""
    with pytest.raises(ConfigError, match="unknown model"):
        _build(model={"name": "gpt-9"})


def test_auto_dtypes_follow_the_model_and_kv_follows_compute():
    """``auto`` takes the model's dtype; an explicit KV dtype wins."""
    llama2 = load_model("llama-2-7b")  # float16 checkpoint
    assert resolve_dtypes(_config(), llama2) == ("float16", "float16")
    config = _config(model={"dtype": "bfloat16", "kv_cache_dtype": "fp8"})
    assert resolve_dtypes(config, llama2) == ("bfloat16", "fp8")


def test_run_directory_is_model_workload_run_id(tmp_path):
    """<output_dir>/<last part of the model id>/<workload>/<run_id>."""
    config = _config(metrics={"output_dir": str(tmp_path), "run_id": "exp 1/a"})
    path = run_directory(config, "meta-llama/Llama-2-7b-hf", "synthetic_poisson")
    # the run id is made safe for a folder name: space and slash become _
    assert path == tmp_path / "Llama-2-7b-hf" / "synthetic_poisson" / "exp_1_a"


def test_saved_config_holds_absolute_paths(tmp_path, monkeypatch):
    """Paths are read against the working directory; the saved config.toml
    stores them absolute, so it runs again from another directory."""
    import tomllib

    monkeypatch.chdir(tmp_path)
    config = _config(metrics={"output_dir": "out", "run_id": "r"})
    assert config.metrics.output_dir == "out"
    folder = run_directory(config, "llama-2-7b", "literal")
    Simulation(config, plugin_host()).run(folder)
    saved = tomllib.loads((folder / "config.toml").read_text("utf-8"))
    assert saved["metrics"]["output_dir"] == str(tmp_path / "out")
    assert saved["metrics"]["run_id"] == "r"  # not a path: as given

    # a workload file, given relative, runs again from another directory
    (tmp_path / "t.csv").write_text(
        "arrived_at,num_prefill_tokens,num_decode_tokens\n0,8,2\n", "utf-8"
    )
    data = tiny_config([])
    data["workload"] = {"type": "trace", "path": "t.csv"}
    data["metrics"] = {"output_dir": "out", "run_id": "t", "progress": False}
    host = plugin_host()
    config = build_config(data, host.registry.config_classes())
    folder = run_directory(config, "llama-2-7b", "t")
    Simulation(config, host).run(folder)
    text = (folder / "config.toml").read_text("utf-8")
    assert tomllib.loads(text)["workload"]["path"] == str(tmp_path / "t.csv")
    monkeypatch.chdir(tmp_path / "out")
    again = build_config(tomllib.loads(text), host.registry.config_classes())
    result = Simulation(again, host).run(None)
    assert result.summary["requests"]["completed"] == 1


def test_run_directory_without_run_id_never_reuses_a_folder(tmp_path):
    """A timestamped folder that exists gets a ``-2`` suffix."""
    config = _config(metrics={"output_dir": str(tmp_path)})
    first = run_directory(config, "m", "w")
    first.mkdir(parents=True)
    second = run_directory(config, "m", "w")
    assert second != first
    assert second.parent == first.parent


def test_summary_sections_and_metadata():
    """The summary has every section and metadata naming the deployment."""
    _, result = simulate(tiny_config([(0.0, 8, 2)]))
    summary = result.summary
    for section in (
        "metadata",
        "requests",
        "ttft_ms",
        "tpot_ms",
        "itl_ms",
        "e2e_ms",
        "throughput",
        "preemption",
        "prefix_cache",
        "memory",
        "scheduler",
        "predictor",
        "replicas",
    ):
        assert section in summary, section
    meta = summary["metadata"]
    assert meta["model"] == "meta-llama/Llama-2-7b-hf"
    assert meta["device"] == "a100-80gb"
    assert meta["workload"] == "literal"
    assert summary["requests"]["completed"] == 1


def test_pinned_blocks_reach_the_summary():
    """``cache.num_gpu_blocks`` is the replica's block count."""
    _, result = simulate(tiny_config([(0.0, 8, 2)], cache={"num_gpu_blocks": 300}))
    assert result.summary["memory"]["num_gpu_blocks"] == 300
    assert result.summary["memory"]["num_gpu_blocks_pinned"] is True


def test_a_4_bit_awq_checkpoint_plans_its_own_weights_and_says_so():
    """The example AWQ config of Llama-3.1-8B (hidden 4096, 32 layers, 8 KV heads
    of 128, MLP 14336, vocab 128256) is sized at 4.15625 bits a linear weight.

    linear, one layer: q, o 2 x 4096 x 4096 + k, v 2 x 4096 x 1024 = 41,943,040
                       + gated MLP 3 x 4096 x 14336 = 176,160,768 -> 218,103,808
    32 layers: 6,979,321,856 weights / 8 x 4.15625 = 3,625,975,808 bytes
    other (FP16): norms 32 x 2 x 4096 + final 4096 + embedding and head
                  2 x 128256 x 4096 = 1,050,939,392 x 2 = 2,101,878,784 bytes
    """
    from pathlib import Path

    config = (
        Path(__file__).parents[2]
        / "examples/models/llama-3.1-8b-instruct-awq-int4.json"
    )
    simulation = _build(model={"name": "awq", "config_path": str(config)})
    assert simulation.memory_plan.weight_bytes == 3_625_975_808 + 2_101_878_784
    result = simulation.run()
    metadata = result.summary["metadata"]
    assert metadata["weight_dtype"] == "int4"
    assert metadata["weight_bits"] == 4.15625
    assert metadata["gemm_dtype"] == "float16"  # weight-only: the model dtype


def _llama2_config(folder, quantization: dict):
    """A Llama-2-7B-shaped config.json with ``quantization`` in ``folder``."""
    import json

    config = {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "intermediate_size": 11008,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
        "torch_dtype": "bfloat16",
        "quantization_config": quantization,
    }
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize(
    ("device", "gemm_dtype"), [("h100-sxm", "fp8"), ("a100-80gb", "bfloat16")]
)
def test_the_summary_names_the_dtype_an_fp8_checkpoint_multiplies_in(
    tmp_path, device, gemm_dtype
):
    """FP8 GEMMs on the H100; on the A100, without FP8 tensor cores, vLLM runs
    the weights through a weight-only kernel in the model dtype."""
    path = _llama2_config(tmp_path, {"quant_method": "fp8"})
    simulation = _build(
        model={"name": "fp8", "config_path": str(path)}, device={"name": device}
    )
    metadata = simulation.run().summary["metadata"]
    assert (metadata["weight_dtype"], metadata["weight_bits"]) == ("fp8", 8.0)
    assert metadata["gemm_dtype"] == gemm_dtype


@pytest.mark.parametrize(
    ("device", "runs"), [("h100-sxm", True), ("b200", False), ("a100-80gb", False)]
)
def test_a_w4a8_fp8_checkpoint_runs_on_hopper_only(tmp_path, device, runs):
    """vLLM 0.19 serves W4A8-FP8 with a Hopper kernel only; it was timed at the
    FP8 peak on a B200 and as weight-only on an A100."""
    group = {
        "targets": ["Linear"],
        "weights": {"num_bits": 4, "type": "int", "group_size": 128},
        "input_activations": {"num_bits": 8, "type": "float"},
    }
    quantization = {"quant_method": "compressed-tensors", "config_groups": {"g": group}}
    path = _llama2_config(tmp_path, quantization)
    sections = {"model": {"name": "w4a8", "config_path": str(path)}}
    if runs:
        _build(**sections, device={"name": device})
    else:
        with pytest.raises(ConfigError, match="vLLM runs on Hopper GPUs only"):
            _build(**sections, device={"name": device})
