"""The config: strict structuring, errors that name the field, overrides, TOML."""

from __future__ import annotations

import tomllib

import pytest
from frontier.config import CacheConfig, Config
from frontier.config_build import (
    apply_overrides,
    build_config,
    config_to_dict,
    config_to_toml,
    parse_override,
    read_config_file,
)
from frontier.errors import ConfigError
from frontier.plugins import default_plugins


@pytest.fixture(scope="module")
def classes():
    return default_plugins().registry.config_classes()


def _error(data, classes) -> str:
    with pytest.raises(ConfigError) as error:
        build_config(data, classes)
    return str(error.value)


def test_empty_config_gives_the_defaults(classes):
    """An empty mapping builds the default config with the default plugins."""
    config = build_config({}, classes)
    assert config == build_config({"cache": {}}, classes)
    assert config.cache == CacheConfig()
    assert config.replica_scheduler.type == "vllm_v1"
    assert config.workload.type == "synthetic"


def test_unknown_key_names_its_dotted_path_and_the_allowed_keys(classes):
    """A misspelt ``cache.blok_size`` is named with its table, and cache's keys."""
    message = _error({"cache": {"blok_size": 16}}, classes)
    assert "cache: unknown key(s) blok_size" in message
    for key in ("block_size", "gpu_memory_utilization", "enable_prefix_caching"):
        assert key in message


def test_unknown_nested_key_names_its_dotted_path(classes):
    """A bad key two tables down is named by its whole path."""
    data = {"workload": {"prompt_tokens": {"distribution": "zipf", "valu": 3}}}
    message = _error(data, classes)
    assert "workload.prompt_tokens: unknown key(s) valu" in message
    assert "theta" in message  # one of the allowed keys


def test_unknown_top_level_key_lists_the_sections(classes):
    """A bad top-level key lists the top-level keys."""
    message = _error({"modle": {"name": "x"}}, classes)
    assert "modle" in message
    for key in ("model", "device", "parallel", "cache", "workload", "metrics"):
        assert key in message


def test_unknown_key_of_a_plugin_names_the_slot(classes):
    """A key the chosen plugin does not take is named under its slot, with the
    plugin's own keys."""
    message = _error({"replica_scheduler": {"type": "vllm_v1", "max_seqs": 3}}, classes)
    assert "replica_scheduler: unknown key(s) max_seqs" in message
    assert "max_num_seqs" in message


def test_unknown_key_of_an_option_less_plugin_names_the_slot(classes):
    """A plugin without options accepts only ``type``; the error names the slot."""
    message = _error({"cluster_scheduler": {"type": "round_robin", "foo": 1}}, classes)
    assert "cluster_scheduler: unknown key(s) foo; allowed keys: type" in message
    assert "top level" not in message


def test_wrong_type_names_the_field_and_what_it_expects(classes):
    """A string where an integer belongs names the field and says so."""
    message = _error({"cache": {"block_size": "sixteen"}}, classes)
    assert "cache.block_size" in message
    assert "integer" in message


def test_bool_is_not_accepted_as_an_integer(classes):
    """``seed = true`` is refused rather than read as 1."""
    assert "seed: expected an integer" in _error({"seed": True}, classes)


def test_section_given_as_a_value_asks_for_a_table(classes):
    """``model = "x"`` says that model is a table."""
    assert "model: expected a table" in _error({"model": "x"}, classes)


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"cache": {"block_size": 0}}, "cache.block_size"),
        ({"cache": {"gpu_memory_utilization": 1.5}}, "cache.gpu_memory_utilization"),
        ({"parallel": {"tensor_parallel_size": -2}}, "parallel.tensor_parallel_size"),
        ({"model": {"max_model_len": 0}}, "model.max_model_len"),
        ({"workload": {"qps": 0}}, "workload.qps"),
        (
            {"workload": {"prompt_tokens": {"min": 10, "max": 5}}},
            "workload.prompt_tokens.min",
        ),
        (
            {"cc_backend": {"bandwidth_efficiency": 2.0}},
            "cc_backend.bandwidth_efficiency",
        ),
    ],
)
def test_value_out_of_range_names_the_field(classes, data, path):
    """A value outside its range is named by its dotted path with the bad value."""
    assert f"{path}:" in _error(data, classes)


def test_value_outside_a_literal_lists_the_allowed_values(classes):
    """``workload.arrival = "bursty"`` lists the arrival processes."""
    message = _error({"workload": {"arrival": "bursty"}}, classes)
    assert "workload.arrival" in message
    for allowed in ("poisson", "gamma", "fixed", "offline"):
        assert allowed in message


def test_unknown_plugin_type_lists_the_installed_ones(classes):
    """An unknown scheduler name lists the installed schedulers."""
    message = _error({"replica_scheduler": {"type": "fifo9000"}}, classes)
    assert "replica_scheduler.type" in message
    assert "'fifo9000'" in message
    assert "vllm_v1" in message


def test_required_plugin_field_is_named(classes):
    """A trace workload without ``path`` names ``workload.path``."""
    assert "workload.path: required" in _error({"workload": {"type": "trace"}}, classes)


def test_every_bad_field_is_reported_at_once(classes):
    """Two bad fields give two lines, one per field."""
    message = _error({"cache": {"block_size": 0}, "seed": "x"}, classes)
    assert "cache.block_size" in message
    assert "seed" in message


def test_error_names_the_source(classes):
    """The error says which config it came from."""
    with pytest.raises(ConfigError, match=r"\(my.toml\)"):
        build_config({"seed": "x"}, classes, source="my.toml")


# --------------------------------------------------------------- overrides


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model.max_model_len=4096", (["model", "max_model_len"], 4096)),
        (
            "cache.gpu_memory_utilization=0.85",
            (["cache", "gpu_memory_utilization"], 0.85),
        ),
        (
            "cache.enable_prefix_caching=false",
            (["cache", "enable_prefix_caching"], False),
        ),
        ("model.name=llama-2-7b", (["model", "name"], "llama-2-7b")),
        ('model.name="quoted name"', (["model", "name"], "quoted name")),
        ("seed = 7", (["seed"], 7)),
        ("metrics.run_id=a=b", (["metrics", "run_id"], "a=b")),
        ("metrics.run_id=2024-06-01", (["metrics", "run_id"], "2024-06-01")),
        ("metrics.run_id=07:30:00", (["metrics", "run_id"], "07:30:00")),
    ],
)
def test_parse_override_reads_toml_values_or_falls_back_to_a_string(text, expected):
    """Integers, floats and booleans are typed; anything else (dates included, as
    no field takes one) stays a string."""
    assert parse_override(text) == expected


def test_parse_override_types_are_exact():
    """``4096`` is an int, ``0.85`` a float, ``true`` a bool."""
    assert type(parse_override("a=4096")[1]) is int
    assert type(parse_override("a=0.85")[1]) is float
    assert type(parse_override("a=true")[1]) is bool


@pytest.mark.parametrize("text", ["no-equals-sign", "a..b=1", "=3"])
def test_parse_override_refuses_malformed_text(text):
    """A missing ``=`` or an empty path part is refused, quoting the text."""
    with pytest.raises(ConfigError, match="--set"):
        parse_override(text)


def test_apply_overrides_sets_nested_values_and_creates_tables():
    """Overrides reach into existing tables and create missing ones."""
    data = {"cache": {"block_size": 16, "gpu_memory_utilization": 0.9}}
    result = apply_overrides(
        data,
        [(["cache", "block_size"], 32), (["workload", "prompt_tokens", "value"], 64)],
    )
    assert result == {
        "cache": {"block_size": 32, "gpu_memory_utilization": 0.9},
        "workload": {"prompt_tokens": {"value": 64}},
    }
    assert data["cache"]["block_size"] == 16  # the input is not changed


def test_apply_overrides_refuses_a_path_through_a_value():
    """``seed.x=1`` fails because ``seed`` holds a value, not a table."""
    with pytest.raises(ConfigError, match="seed is a value, not a table"):
        apply_overrides({"seed": 3}, [(["seed", "x"], 1)])


def test_override_of_an_unknown_key_reaches_the_config_error(classes):
    """An override with a misspelt key fails on building, naming the path."""
    data = apply_overrides({}, [parse_override("cache.blocksize=32")])
    assert "cache: unknown key(s) blocksize" in _error(data, classes)


# --------------------------------------------------------------- TOML


def test_default_config_round_trips_through_toml(classes):
    """config -> TOML -> config gives an equal config."""
    config = build_config({}, classes)
    assert build_config(tomllib.loads(config_to_toml(config)), classes) == config


def test_customised_config_round_trips_through_toml(classes):
    """Plugin options, nested tables and non-defaults survive the round trip."""
    data = {
        "seed": 11,
        "model": {"name": "llama-2-7b", "max_model_len": 2048},
        "device": {"name": "a100-80gb", "memory_gib": 40.0},
        "parallel": {"tensor_parallel_size": 2, "num_replicas": 3},
        "cache": {"block_size": 32, "enable_prefix_caching": False},
        "replica_scheduler": {"type": "vllm_v1", "max_num_seqs": 8},
        "workload": {
            "type": "synthetic",
            "arrival": "gamma",
            "cv": 2.0,
            "prompt_tokens": {"distribution": "zipf", "min": 10, "max": 100},
        },
        "metrics": {"run_id": "r1", "progress": False},
    }
    config = build_config(data, classes)
    text = config_to_toml(config)
    again = build_config(tomllib.loads(text), classes)
    assert again == config
    assert config_to_toml(again) == text


def test_toml_drops_unset_values():
    """``None`` fields are left out, as TOML has no null."""
    data = config_to_dict(Config())
    assert "max_model_len" not in data["model"]
    assert "memory_gib" not in data["device"]


def test_read_config_file_parses_toml_and_json(tmp_path):
    """A ``.toml`` and a ``.json`` file give the same mapping."""
    toml_path = tmp_path / "run.toml"
    toml_path.write_text('seed = 3\n[model]\nname = "llama-2-7b"\n', "utf-8")
    json_path = tmp_path / "run.json"
    json_path.write_text('{"seed": 3, "model": {"name": "llama-2-7b"}}', "utf-8")
    assert read_config_file(toml_path) == read_config_file(json_path)


def test_bad_toml_file_error_names_the_file_and_line(tmp_path):
    """A TOML syntax error names the file and the parser's line."""
    path = tmp_path / "bad.toml"
    path.write_text("seed = 3\n[model\nname = 'x'\n", "utf-8")
    with pytest.raises(ConfigError, match="not valid TOML") as error:
        read_config_file(path)
    assert str(path) in str(error.value)
    assert "line 2" in str(error.value)


def test_bad_json_file_error_names_the_file(tmp_path):
    """A JSON syntax error names the file."""
    path = tmp_path / "bad.json"
    path.write_text('{"seed": ', "utf-8")
    with pytest.raises(ConfigError, match="not valid JSON") as error:
        read_config_file(path)
    assert str(path) in str(error.value)


def test_missing_config_file_is_named(tmp_path):
    """A config path that does not exist is named."""
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match="does not exist") as error:
        read_config_file(path)
    assert str(path) in str(error.value)


def test_json_config_must_be_a_table(tmp_path):
    """A JSON config holding a list is refused."""
    path = tmp_path / "list.json"
    path.write_text("[1]", "utf-8")
    with pytest.raises(ConfigError, match="table at the top level"):
        read_config_file(path)


def test_an_empty_output_dir_is_refused(classes):
    """An empty metrics.output_dir would write into the working directory."""
    message = _error({"metrics": {"output_dir": " "}}, classes)
    assert "metrics.output_dir: must not be empty" in message


def test_a_partial_length_table_keeps_the_workload_defaults(classes):
    """Setting one field of a synthetic length distribution used to replace the
    documented default (uniform 128 to 2048 prompt tokens) by the class's own
    (fixed 512): the other fields now keep the workload's default values."""
    config = build_config({"workload": {"prompt_tokens": {"min": 500}}}, classes)
    prompt = config.workload.prompt_tokens
    assert (prompt.distribution, prompt.min, prompt.max) == ("uniform", 500, 2048)
    config = build_config(
        {"workload": {"output_tokens": {"distribution": "zipf"}}}, classes
    )
    output = config.workload.output_tokens
    assert (output.distribution, output.min, output.max) == ("zipf", 32, 512)
    # an unknown key in the partial table is still refused
    message = _error({"workload": {"prompt_tokens": {"mean": 5}}}, classes)
    assert "workload.prompt_tokens: unknown key(s) mean" in message
