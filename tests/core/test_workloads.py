"""Workloads: seeded synthetic arrivals and lengths, and CSV trace replay."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from frontier.config import FieldValueError
from frontier.errors import ConfigError, InputError
from frontier.plugins import WorkloadContext
from frontier.workloads.arrivals import LengthDistribution, arrival_times, lengths
from frontier.workloads.synthetic import SyntheticConfig, SyntheticGenerator
from frontier.workloads.trace import TraceConfig, TraceGenerator, chain_block_hashes

CONTEXT = WorkloadContext(seed=0, block_size=16, max_model_len=4096)


def _synthetic(run_seed=0, **fields):
    config = SyntheticConfig(**fields)
    context = WorkloadContext(seed=run_seed, block_size=16, max_model_len=4096)
    generator = SyntheticGenerator(config, context)
    return [(r.arrived_at, r.num_prompt_tokens, r.num_output_tokens) for r in generator]


def _draw(spec: LengthDistribution, count: int, seed: int = 1) -> np.ndarray:
    return np.fromiter(
        itertools.islice(lengths(spec, np.random.default_rng(seed)), count), dtype=float
    )


# --------------------------------------------------------------- synthetic


def test_same_seed_gives_the_same_requests():
    """Two generators with one seed produce identical requests."""
    assert _synthetic(run_seed=5, num_requests=50) == _synthetic(
        run_seed=5, num_requests=50
    )


def test_different_seeds_give_different_requests():
    """Another seed changes arrivals and lengths."""
    a, b = (
        _synthetic(run_seed=5, num_requests=50),
        _synthetic(run_seed=6, num_requests=50),
    )
    assert [r[0] for r in a] != [r[0] for r in b]
    assert [r[1] for r in a] != [r[1] for r in b]


def test_workload_seed_wins_over_the_run_seed():
    """``workload.seed`` fixes the workload whatever the run's seed."""
    first = _synthetic(run_seed=1, num_requests=20, seed=9)
    second = _synthetic(run_seed=2, num_requests=20, seed=9)
    assert first == second
    assert first != _synthetic(run_seed=1, num_requests=20)


def test_request_ids_count_from_zero_and_arrivals_never_decrease():
    """Ids are 0..n-1 and arrival times are non-decreasing, starting at 0."""
    requests = list(SyntheticGenerator(SyntheticConfig(num_requests=100), CONTEXT))
    assert [r.request_id for r in requests] == list(range(100))
    times = [r.arrived_at for r in requests]
    assert times[0] == 0.0
    assert times == sorted(times)


def test_offline_arrivals_are_all_at_zero():
    """``arrival = "offline"`` puts every request at t = 0."""
    assert {r[0] for r in _synthetic(num_requests=30, arrival="offline")} == {0.0}


def test_fixed_arrivals_are_exactly_one_over_qps_apart():
    """qps = 4 gives arrivals at 0, 0.25, 0.5, 0.75, 1.0 s."""
    times = [r[0] for r in _synthetic(num_requests=5, arrival="fixed", qps=4.0)]
    assert times == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_poisson_mean_gap_is_one_over_qps():
    """Over 20,000 Poisson gaps at qps = 5 the mean gap is 0.2 s within 2 %."""
    times = np.fromiter(
        itertools.islice(
            arrival_times("poisson", 5.0, 1.0, np.random.default_rng(3)), 20_001
        ),
        dtype=float,
    )
    gaps = np.diff(times)
    # standard error 0.2 / sqrt(20000) = 0.0014 s, so 2 % (0.004 s) is ~3 sigma
    assert gaps.mean() == pytest.approx(0.2, rel=0.02)
    # exponential gaps: standard deviation equals the mean
    assert gaps.std() == pytest.approx(0.2, rel=0.05)


def test_gamma_gaps_have_the_requested_mean_and_cv():
    """Gamma gaps at qps = 2, cv = 2 have mean 0.5 s and std 1.0 s."""
    times = np.fromiter(
        itertools.islice(
            arrival_times("gamma", 2.0, 2.0, np.random.default_rng(4)), 40_001
        ),
        dtype=float,
    )
    gaps = np.diff(times)
    assert gaps.mean() == pytest.approx(0.5, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(2.0, rel=0.1)


def test_fixed_lengths_are_constant():
    """A fixed distribution always gives its value."""
    assert set(_draw(LengthDistribution(distribution="fixed", value=77), 100)) == {77}


def test_uniform_lengths_cover_the_range_with_the_middle_as_mean():
    """Uniform on [100, 200]: mean 150, both ends reached."""
    spec = LengthDistribution(distribution="uniform", min=100, max=200)
    draws = _draw(spec, 20_000)
    assert spec.mean == 150.0  # (100 + 200) / 2
    # std of a discrete uniform of 101 values: sqrt((101^2 - 1) / 12) = 29.2;
    # standard error over 20,000 draws 0.21, tolerance 1.0
    assert draws.mean() == pytest.approx(150.0, abs=1.0)
    assert (draws.min(), draws.max()) == (100, 200)


def test_zipf_mean_by_hand():
    """Zipf on {1, 2, 3} with theta = 1: P ~ 1, 1/2, 1/3, mean 18/11."""
    spec = LengthDistribution(distribution="zipf", min=1, max=3, theta=1.0)
    # weights sum to 11/6; mean = (1 + 2/2 + 3/3) / (11/6) = 18/11 = 1.636
    assert spec.mean == pytest.approx(18 / 11)
    # variance: E[X^2] = (1 + 4/2 + 9/3) / (11/6) = 36/11, minus (18/11)^2 = 0.595;
    # standard error over 20,000 draws 0.0055, tolerance 0.03
    assert _draw(spec, 20_000).mean() == pytest.approx(18 / 11, abs=0.03)


def test_zipf_is_shifted_by_min():
    """Zipf on {10, 11, 12} is the {1, 2, 3} case plus 9: mean 9 + 18/11."""
    spec = LengthDistribution(distribution="zipf", min=10, max=12, theta=1.0)
    assert spec.mean == pytest.approx(9 + 18 / 11)
    draws = _draw(spec, 20_000)
    assert draws.mean() == pytest.approx(9 + 18 / 11, abs=0.03)
    assert set(draws) == {10, 11, 12}


def test_lognormal_lengths_are_clipped_to_the_range():
    """Lognormal draws stay within [min, max] with the median near ``value``."""
    spec = LengthDistribution(
        distribution="lognormal", value=300, sigma=0.5, min=50, max=1000
    )
    draws = _draw(spec, 20_000)
    assert draws.min() >= 50 and draws.max() <= 1000
    assert np.median(draws) == pytest.approx(300, rel=0.03)


def test_length_range_must_not_be_inverted():
    """``min > max`` is refused naming ``min``."""
    with pytest.raises(FieldValueError, match="larger than max") as error:
        LengthDistribution(distribution="uniform", min=10, max=5)
    assert error.value.field == "min"


def test_synthetic_label_names_the_arrival_process():
    """The output folder of a synthetic run is ``synthetic_<arrival>``."""
    generator = SyntheticGenerator(SyntheticConfig(arrival="gamma"), CONTEXT)
    assert generator.label == "synthetic_gamma"
    assert generator.num_requests == 1000


# --------------------------------------------------------------- trace


def _trace(tmp_path, text, name="trace.csv", **fields):
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return TraceGenerator(TraceConfig(path=str(path), **fields), CONTEXT)


def _rows(generator):
    return [(r.arrived_at, r.num_prompt_tokens, r.num_output_tokens) for r in generator]


def test_trace_arrivals_are_used(tmp_path):
    """With an ``arrived_at`` column the trace's times and lengths are replayed."""
    text = (
        "arrived_at,num_prefill_tokens,num_decode_tokens\n"
        "0,100,10\n0.5,200,20\n1.5,300,30\n"
    )
    generator = _trace(tmp_path, text)
    assert _rows(generator) == [(0.0, 100, 10), (0.5, 200, 20), (1.5, 300, 30)]
    assert generator.label == "trace"
    assert not generator.provides_block_hashes


def test_trace_time_scale_multiplies_arrivals(tmp_path):
    """``time_scale = 0.5`` replays twice as fast."""
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n0,1,1\n2,1,1\n3,1,1\n"
    assert [r[0] for r in _rows(_trace(tmp_path, text, time_scale=0.5))] == [
        0,
        1.0,
        1.5,
    ]


def test_trace_extra_columns_and_column_order_do_not_matter(tmp_path):
    """Columns are found by name; unknown ones are ignored."""
    text = "session,num_decode_tokens,arrived_at,num_prefill_tokens\nx,7,0.25,70\n"
    assert _rows(_trace(tmp_path, text)) == [(0.25, 70, 7)]


def test_trace_with_a_byte_order_mark_is_read(tmp_path):
    """A spreadsheet's UTF-8 byte-order mark before the header is skipped."""
    text = "\ufeffnum_prefill_tokens,num_decode_tokens,arrived_at\n10,2,0\n"
    assert _rows(_trace(tmp_path, text)) == [(0.0, 10, 2)]


def test_trace_qps_generates_arrivals(tmp_path):
    """``arrival = "fixed"`` with qps = 2 gives 0, 0.5, 1.0 s, ignoring the file."""
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n5,1,1\n6,1,1\n7,1,1\n"
    rows = _rows(_trace(tmp_path, text, arrival="fixed", qps=2.0))
    assert [r[0] for r in rows] == [0.0, 0.5, 1.0]


def test_trace_without_times_and_with_qps_gets_poisson_arrivals(tmp_path):
    """``auto`` with qps on a trace without times draws Poisson arrivals from 0."""
    text = "num_prefill_tokens,num_decode_tokens\n" + "10,1\n" * 50
    times = [r[0] for r in _rows(_trace(tmp_path, text, qps=10.0))]
    assert times[0] == 0.0
    assert times == sorted(times)
    assert len(set(times)) == 50


def test_trace_without_times_or_qps_asks_for_one(tmp_path):
    """A trace without arrived_at and no qps says to set workload.qps."""
    with pytest.raises(ConfigError, match=r"workload\.qps"):
        _trace(tmp_path, "num_prefill_tokens,num_decode_tokens\n1,1\n")


def test_trace_offline_puts_every_request_at_zero(tmp_path):
    """``arrival = "offline"`` ignores the trace's times."""
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n1,1,1\n2,1,1\n"
    assert [r[0] for r in _rows(_trace(tmp_path, text, arrival="offline"))] == [
        0.0,
        0.0,
    ]


def test_trace_num_requests_limits_the_rows(tmp_path):
    """``num_requests = 2`` replays the first two rows."""
    text = "num_prefill_tokens,num_decode_tokens\n1,1\n2,2\n3,3\n"
    rows = _rows(_trace(tmp_path, text, arrival="offline", num_requests=2))
    assert [r[1] for r in rows] == [1, 2]


def test_trace_missing_column_names_the_file_and_columns(tmp_path):
    """A missing num_decode_tokens column is named with the file and its header."""
    with pytest.raises(InputError) as error:
        _trace(tmp_path, "arrived_at,num_prefill_tokens,output\n0,1,1\n")
    message = str(error.value)
    assert str(tmp_path / "trace.csv") in message
    assert "num_decode_tokens" in message
    assert "arrived_at, num_prefill_tokens, output" in message


def test_trace_non_integer_tokens_name_row_and_column(tmp_path):
    """12.5 prompt tokens on the second data row names row 3 (header is row 1)."""
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,1\n1,12.5,1\n"
    with pytest.raises(InputError, match=r"row 3, column num_prefill_tokens: '12\.5'"):
        _rows(_trace(tmp_path, text))


def test_trace_text_token_count_names_row_and_column(tmp_path):
    """A word where a count belongs names its row and column."""
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,many\n"
    with pytest.raises(InputError, match="row 2, column num_decode_tokens: 'many'"):
        _rows(_trace(tmp_path, text))


def test_trace_whole_float_token_count_is_accepted(tmp_path):
    """``12.0`` tokens (as pandas writes integers) is read as 12."""
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n0,12.0,3\n"
    assert _rows(_trace(tmp_path, text)) == [(0.0, 12, 3)]


def test_trace_zero_tokens_is_refused(tmp_path):
    """A request of 0 output tokens names its row."""
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n0,5,0\n"
    with pytest.raises(InputError, match="row 2, column num_decode_tokens: 0 tokens"):
        _rows(_trace(tmp_path, text))


def test_trace_decreasing_arrival_names_the_row(tmp_path):
    """An arrival earlier than the row before names that row and says to sort."""
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n0,1,1\n2,1,1\n1.5,1,1\n"
    with pytest.raises(
        InputError, match=r"row 4, column arrived_at: 1\.5 is earlier"
    ) as e:
        _rows(_trace(tmp_path, text))
    assert "sort" in str(e.value)


def test_trace_bad_arrival_names_the_row(tmp_path):
    """A negative or non-numeric arrival time names its row."""
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n-1,1,1\n"
    with pytest.raises(InputError, match="row 2, column arrived_at: '-1'"):
        _rows(_trace(tmp_path, text))


def test_trace_row_with_wrong_field_count_is_named(tmp_path):
    """A row with fewer fields than the header is named."""
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n0,1\n"
    with pytest.raises(InputError, match="row 2: 2 fields, the header has 3"):
        _rows(_trace(tmp_path, text))


def test_trace_empty_file_is_refused(tmp_path):
    """An empty file asks for a header row."""
    with pytest.raises(InputError, match="empty"):
        _trace(tmp_path, "")


def test_trace_with_only_a_header_has_no_requests(tmp_path):
    """A header and no rows is an empty workload, not an error."""
    assert (
        _rows(_trace(tmp_path, "arrived_at,num_prefill_tokens,num_decode_tokens\n"))
        == []
    )


def test_trace_blank_lines_are_skipped(tmp_path):
    """Blank lines between rows are ignored and do not take request ids."""
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n0,1,1\n\n1,2,2\n"
    requests = list(_trace(tmp_path, text))
    assert [r.request_id for r in requests] == [0, 1]


def test_trace_missing_file_is_named(tmp_path):
    """A trace path that does not exist is a config error naming it."""
    path = tmp_path / "absent.csv"
    with pytest.raises(ConfigError, match="does not exist") as error:
        TraceGenerator(TraceConfig(path=str(path)), CONTEXT)
    assert str(path) in str(error.value)


def test_chained_hashes_equal_for_equal_prefixes():
    """Equal leading block ids give equal hashes up to the first difference."""
    a = chain_block_hashes([1, 2, 3])
    b = chain_block_hashes([1, 2, 4])
    assert a[:2] == b[:2]
    assert a[2] != b[2]


def test_chained_hashes_all_differ_after_a_different_first_block():
    """A different first block changes every later hash, even for equal ids."""
    a = chain_block_hashes([1, 2, 3])
    c = chain_block_hashes([9, 2, 3])
    assert all(x != y for x, y in zip(a, c, strict=True))


def test_trace_block_hash_ids_become_chained_hashes(tmp_path):
    """``block_hash_ids`` is read as |-separated ids and chained; empty means none."""
    text = (
        "arrived_at,num_prefill_tokens,num_decode_tokens,block_hash_ids\n"
        "0,48,1,1|2|3\n"
        "0,48,1,1|2|4\n"
        "0,10,1,\n"
    )
    generator = _trace(tmp_path, text)
    assert generator.provides_block_hashes
    first, second, third = list(generator)
    assert first.block_hashes == chain_block_hashes([1, 2, 3])
    assert first.block_hashes[:2] == second.block_hashes[:2]
    assert third.block_hashes is None


def test_trace_bad_block_hash_ids_name_the_row(tmp_path):
    """A non-integer block id names its row and column."""
    text = (
        "arrived_at,num_prefill_tokens,num_decode_tokens,block_hash_ids\n0,48,1,1|x\n"
    )
    with pytest.raises(InputError, match="row 2, column block_hash_ids"):
        _rows(_trace(tmp_path, text))
