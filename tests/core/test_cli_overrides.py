"""Short CLI flags and --set, applied to the raw config mapping."""

from __future__ import annotations

import pytest
from frontier.cli.overrides import collect_overrides
from frontier.errors import ConfigError


def test_flags_land_on_their_config_paths():
    """--tp, --device, --seed and friends set their dotted paths."""
    data = collect_overrides({}, [], tp=2, device="h200", seed=4, num_requests=10)
    assert data == {
        "parallel": {"tensor_parallel_size": 2},
        "device": {"name": "h200"},
        "seed": 4,
        "workload": {"num_requests": 10},
    }


def test_set_wins_over_flags():
    """A --set of the same field as a flag is applied last."""
    data = collect_overrides({}, ["parallel.tensor_parallel_size=8"], tp=2)
    assert data["parallel"]["tensor_parallel_size"] == 8


def test_the_input_mapping_is_not_changed():
    """Overrides return a new mapping."""
    original = {"seed": 1}
    collect_overrides(original, ["seed=2"])
    assert original == {"seed": 1}


def test_model_name_flag_drops_a_config_path():
    """--model with a catalogue name replaces a config file's config_path."""
    data = {"model": {"name": "x", "config_path": "x.json"}}
    assert collect_overrides(data, [], model="llama-2-7b")["model"] == {
        "name": "llama-2-7b"
    }


def test_model_json_flag_sets_the_path_and_its_label():
    """--model my/model.json loads that file and labels the run ``model``, even
    over a name the config file had."""
    data = {"model": {"name": "meta-llama/Meta-Llama-3-8B"}}
    section = collect_overrides(data, [], model="my/model.json")["model"]
    assert section == {"name": "model", "config_path": "my/model.json"}


def test_scheduler_flag_keeps_the_options_of_the_same_plugin():
    """--scheduler naming the configured plugin keeps its options."""
    data = {"replica_scheduler": {"type": "vllm_v1", "max_num_seqs": 8}}
    result = collect_overrides(data, [], scheduler="vllm_v1")
    assert result["replica_scheduler"] == {"type": "vllm_v1", "max_num_seqs": 8}


def test_scheduler_flag_drops_the_options_of_another_plugin():
    """--scheduler naming another plugin starts its section afresh."""
    data = {"replica_scheduler": {"type": "vllm_v1", "max_num_seqs": 8}}
    result = collect_overrides(data, [], scheduler="sarathi")
    assert result["replica_scheduler"] == {"type": "sarathi"}


def test_untyped_section_belongs_to_the_default_plugin():
    """A section without ``type`` configures the default (vllm_v1), so switching to
    another scheduler drops its options."""
    data = {"replica_scheduler": {"max_num_seqs": 8}}
    assert collect_overrides(data, [], scheduler="sarathi")["replica_scheduler"] == {
        "type": "sarathi"
    }
    kept = collect_overrides(data, [], scheduler="vllm_v1")["replica_scheduler"]
    assert kept == {"type": "vllm_v1", "max_num_seqs": 8}


def test_trace_flag_replaces_a_synthetic_workload():
    """--trace switches a synthetic workload to replay of that file."""
    data = {"workload": {"type": "synthetic", "arrival": "gamma"}}
    result = collect_overrides(data, [], trace="t.csv", qps=3.0)
    assert result["workload"] == {"type": "trace", "path": "t.csv", "qps": 3.0}


def test_trace_flag_replays_a_jsonl_file_with_the_jsonl_reader():
    """A ``.jsonl`` file is a request JSONL file, not a CSV trace: --trace picks
    the ``vllm_jsonl`` workload, dropping a CSV trace's options."""
    data = {"workload": {"type": "trace", "path": "a.csv", "time_scale": 0.5}}
    result = collect_overrides(data, [], trace="requests.JSONL")
    assert result["workload"] == {"type": "vllm_jsonl", "path": "requests.JSONL"}


def test_trace_flag_keeps_the_options_of_a_trace_workload():
    """--trace on a config that replays a trace changes only the file."""
    data = {"workload": {"type": "trace", "path": "a.csv", "time_scale": 0.5}}
    result = collect_overrides(data, [], trace="b.csv")
    assert result["workload"] == {"type": "trace", "path": "b.csv", "time_scale": 0.5}


def test_qps_over_a_jsonl_replay_points_to_time_scale():
    """A JSONL replay keeps its own arrival times: --qps says how to re-time it
    instead of failing on an unknown key."""
    with pytest.raises(ConfigError, match=r"workload\.time_scale"):
        collect_overrides({}, [], trace="requests.jsonl", qps=100.0)


def test_a_table_value_merges_into_the_table_there():
    """``--set 'workload={type="synthetic"}'`` dropped -n 30 (the docs say
    --set never drops anything); nested tables merge too."""
    data = collect_overrides(
        {"workload": {"prompt_tokens": {"min": 10, "max": 20}}},
        ['workload={type="synthetic", prompt_tokens={max=50}}'],
        num_requests=30,
    )
    assert data["workload"] == {
        "type": "synthetic",
        "num_requests": 30,
        "prompt_tokens": {"min": 10, "max": 50},
    }
