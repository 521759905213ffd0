"""Mistakes a user makes end in a clear error, not a traceback or a wrong answer."""

from __future__ import annotations

import json

import pytest
from conftest import simulate, tiny_config
from conftest import test_plugins as plugin_host
from frontier.config_build import build_config
from frontier.devices import load_device
from frontier.errors import ConfigError, InputError
from frontier.models import load_model
from frontier.simulation import Simulation, run_directory


def build(data: dict) -> Simulation:
    """A simulation of ``data`` with the test plugins."""
    host = plugin_host()
    return Simulation(build_config(data, host.registry.config_classes()), host)


def test_negative_seed_is_refused():
    """A seed below zero is a config error naming the field."""
    with pytest.raises(ConfigError, match=r"seed: must be zero or more, got -1"):
        build({"seed": -1})


def test_unwritable_output_folder_is_a_config_error(tmp_path):
    """An output folder below a file names the folder and the reason."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    simulation = build(tiny_config([[0.0, 10, 2]]))
    with pytest.raises(ConfigError, match=r"metrics\.output_dir: cannot write"):
        simulation.run(blocker / "run")


def test_header_only_trace_is_refused(tmp_path):
    """A trace without rows is an input error, not an empty success."""
    trace = tmp_path / "empty.csv"
    trace.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n")
    with pytest.raises(InputError, match="produced no requests"):
        simulate({"workload": {"type": "trace", "path": str(trace)}})


def test_arrivals_beyond_a_billion_seconds_are_refused():
    """Times too large for step precision are refused with the remedy."""
    # Request 1 arrives at 2e9 s, past the 1e9 s limit.
    with pytest.raises(InputError, match="past 1e\\+09 s"):
        simulate(tiny_config([[0.0, 10, 2], [2e9, 10, 2]]))


def test_qps_with_trace_times_is_a_conflict(tmp_path):
    """A rate that the chosen arrivals would ignore is refused."""
    trace = tmp_path / "t.csv"
    trace.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,2\n")
    workload = {"type": "trace", "path": str(trace), "arrival": "trace", "qps": 5.0}
    with pytest.raises(ConfigError, match="has no effect"):
        build({"workload": workload})


def test_trace_path_that_is_a_folder(tmp_path):
    """A folder given as the trace is named as a folder."""
    with pytest.raises(ConfigError, match="is a folder"):
        build({"workload": {"type": "trace", "path": str(tmp_path)}})


def test_kv_heads_must_divide_heads(tmp_path):
    """32 query heads cannot share 5 KV heads."""
    config = {
        "hidden_size": 4096,
        "num_hidden_layers": 2,
        "num_attention_heads": 32,
        "num_key_value_heads": 5,
        "intermediate_size": 11008,
        "vocab_size": 32000,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="num_key_value_heads=5 must be a positive"):
        load_model(config_path=path)


def test_state_space_models_are_refused(tmp_path):
    """A Mamba config is not simulated as a transformer."""
    config = {
        "architectures": ["MambaForCausalLM"],
        "hidden_size": 768,
        "num_hidden_layers": 2,
        "num_attention_heads": 12,
        "intermediate_size": 1536,
        "vocab_size": 50280,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="not a decoder-only attention transformer"):
        load_model(config_path=path)


def test_tp_must_fit_the_kv_heads():
    """TP 16 on Llama-3-8B's 8 KV heads replicates them; TP 3 is refused anyway."""
    data = {"model": {"name": "llama-3-8b"}, "parallel": {"tensor_parallel_size": 16}}
    build(data)  # 16 is a multiple of 8: each KV head is replicated on two ranks
    with pytest.raises(ConfigError, match="does not divide"):
        build(
            {"model": {"name": "llama-3-8b"}, "parallel": {"tensor_parallel_size": 3}}
        )


def test_device_catalogue_field_of_wrong_type(tmp_path):
    """A text where a number belongs names the field and the file."""
    catalogue = tmp_path / "devices.toml"
    catalogue.write_text('[my-gpu]\nbf16_tflops = "fast"\n')
    with pytest.raises(ConfigError, match=r"device.bf16_tflops of 'my-gpu' .* 'fast'"):
        load_device("my-gpu", catalogue_path=catalogue)


def test_plugin_restriction_is_named(monkeypatch):
    """An unknown plugin under FRONTIER_PLUGINS says the variable restricts loading."""
    monkeypatch.setenv("FRONTIER_PLUGINS", "frontier-core")
    with pytest.raises(ConfigError, match="FRONTIER_PLUGINS=frontier-core"):
        build({"replica_scheduler": {"type": "no_such_scheduler"}})


def test_plugin_restriction_to_nothing_is_refused(monkeypatch):
    """A misspelt FRONTIER_PLUGINS name used to load nothing of it silently."""
    from frontier.errors import PluginError
    from frontier.registry import load_plugins

    monkeypatch.setenv("FRONTIER_PLUGINS", "frontier-core,frontier-shedulers")
    with pytest.raises(PluginError, match="names 'frontier-shedulers', which is"):
        load_plugins()
    monkeypatch.setenv("FRONTIER_PLUGINS", "frontier-core")
    assert load_plugins().registry.entries("request_generator")


def test_pinned_block_count_too_small_names_the_pin():
    """The refusal blames cache.num_gpu_blocks, not the memory budget."""
    # max_model_len 4096 / 16 = 256 blocks needed; 10 pinned.
    with pytest.raises(ConfigError, match=r"cache\.num_gpu_blocks pins 10"):
        build(tiny_config([[0.0, 10, 2]], cache={"num_gpu_blocks": 10}))


def test_model_too_big_for_the_device_says_so():
    """70B weights on one 80 GB GPU: the message says the model does not fit."""
    with pytest.raises(ConfigError, match="does not fit at all"):
        build({"model": {"name": "llama-3-70b"}})


def test_model_name_cannot_leave_the_output_folder(tmp_path):
    """A model named '..' writes below the output folder, not beside it."""
    config = build_config(
        {"metrics": {"output_dir": str(tmp_path)}},
        plugin_host().registry.config_classes(),
    )
    path = run_directory(config, "..", "..")
    assert tmp_path in path.parents


def test_a_plugin_list_of_only_commas_loads_everything(monkeypatch):
    """FRONTIER_PLUGINS=' , ' names nothing: it is read as unset, not as a
    restriction to no plugin at all."""
    from frontier.registry import load_plugins

    monkeypatch.setenv("FRONTIER_PLUGINS", " , ")
    assert load_plugins().registry.entries("replica_scheduler")
