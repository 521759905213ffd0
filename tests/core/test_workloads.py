"""Workloads: seeded synthetic arrivals and lengths, CSV trace replay with its
block ids, and the errors of malformed trace and request JSONL files."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import simulate, tiny_config
from frontier.config import FieldValueError
from frontier.errors import ConfigError, InputError
from frontier.plugins import WorkloadContext
from frontier.workloads.arrivals import LengthDistribution, arrival_times, lengths
from frontier.workloads.jsonl import VllmJsonlConfig, VllmJsonlGenerator
from frontier.workloads.resample import ResampleConfig, ResampleGenerator
from frontier.workloads.synthetic import SyntheticConfig, SyntheticGenerator
from frontier.workloads.trace import (
    TraceConfig,
    TraceGenerator,
    chain_block_hashes,
    trace_block_hashes,
)

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


def _trace(tmp_path, text, name="trace.csv", block_size=16, **fields):
    path = tmp_path / name
    path.write_text(text, "utf-8")
    context = WorkloadContext(seed=0, block_size=block_size, max_model_len=4096)
    return TraceGenerator(TraceConfig(path=str(path), **fields), context)


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


def test_trace_jsonl_file_is_named_as_jsonl_with_a_short_quote(tmp_path):
    """A request JSONL given as a trace says so, suggests ``vllm_jsonl`` and quotes
    only the start of its 20 KB first line."""
    ids = ", ".join(str(i) for i in range(4000))  # about 22,000 characters
    line = f'{{"input_toks": 4000, "output_toks": 5, "input_tok_ids": [{ids}]}}\n'
    with pytest.raises(InputError) as error:
        _trace(tmp_path, line, name="requests.jsonl")
    message = str(error.value)
    assert str(tmp_path / "requests.jsonl") in message
    assert 'workload.type = "vllm_jsonl"' in message
    assert "workload.path" in message
    assert "..." in message
    assert len(message) < 1000


def test_trace_first_line_with_a_brace_is_named_as_jsonl(tmp_path):
    """A ``.csv`` whose first line starts with ``{`` is also named as JSONL."""
    with pytest.raises(InputError, match="looks like a request JSONL"):
        _trace(tmp_path, '{"input_toks": 3, "output_toks": 1}\n')


def test_trace_long_header_without_the_columns_is_quoted_short(tmp_path):
    """A 300-column header missing the token columns is quoted in part."""
    header = ",".join(f"column_{i}" for i in range(300))
    with pytest.raises(InputError, match="missing column") as error:
        _trace(tmp_path, header + "\n")
    message = str(error.value)
    assert "column_0, column_1" in message
    assert "column_299" not in message
    assert "vllm_jsonl" not in message


def test_trace_duplicated_column_is_refused(tmp_path):
    """A column the reader uses, given twice, names the file, column and places."""
    text = "arrived_at,num_prefill_tokens,num_decode_tokens,num_prefill_tokens\n"
    with pytest.raises(InputError) as error:
        _trace(tmp_path, text + "0,100,10,5\n")
    message = str(error.value)
    assert str(tmp_path / "trace.csv") in message
    assert "column num_prefill_tokens appears 2 times" in message
    assert "columns 2, 4" in message


def test_trace_duplicated_ignored_column_is_accepted(tmp_path):
    """A column the reader does not use may repeat: nothing is ambiguous."""
    text = "note,num_prefill_tokens,num_decode_tokens,note\nx,10,2,y\n"
    assert _rows(_trace(tmp_path, text, arrival="offline")) == [(0.0, 10, 2)]


def test_trace_long_field_is_read(tmp_path):
    """Block ids longer than the csv module's 128 KiB default field are read."""
    ids = [100_000 + i for i in range(30_000)]  # 7 characters each: 210,000
    text = (
        "arrived_at,num_prefill_tokens,num_decode_tokens,block_hash_ids\n"
        f"0,{16 * len(ids)},1,{'|'.join(map(str, ids))}\n"
    )
    (request,) = list(_trace(tmp_path, text))
    assert request.block_hashes == chain_block_hashes(ids)


def test_trace_bad_bytes_after_the_header_are_an_input_error(tmp_path):
    """Bytes that are not UTF-8, far into the file, name the file, not a traceback."""
    path = tmp_path / "trace.csv"
    rows = "".join(f"{i},10,2\n" for i in range(5000))  # past the first read
    path.write_bytes(
        b"arrived_at,num_prefill_tokens,num_decode_tokens\n"
        + rows.encode()
        + b"5000,\xff\xfe,2\n"
    )
    generator = TraceGenerator(TraceConfig(path=str(path)), CONTEXT)
    with pytest.raises(InputError, match="cannot be read as UTF-8"):
        _rows(generator)


# ------------------------------------------------ trace block hashes and sizes


HASH_HEADER = "arrived_at,num_prefill_tokens,num_decode_tokens,block_hash_ids\n"


def test_trace_more_block_ids_than_prompt_blocks_is_refused(tmp_path):
    """100 tokens hold 6 full blocks of 16 (96 tokens), so 12 ids are refused,
    naming the file, row, both counts and the block size assumed."""
    text = HASH_HEADER + "0,100,10,1|2|3|4|5|6|7|8|9|10|11|12\n"
    with pytest.raises(InputError) as error:
        _rows(_trace(tmp_path, text))
    message = str(error.value)
    assert f"{tmp_path / 'trace.csv'}, row 2, column block_hash_ids" in message
    assert "12 block ids" in message
    assert "only 6 full blocks of 16 tokens" in message
    assert "workload.hash_block_size" in message


def test_trace_one_id_per_full_block_is_accepted(tmp_path):
    """100 tokens with 6 ids (6 x 16 = 96 tokens) is exactly the prompt's blocks."""
    text = HASH_HEADER + "0,100,10,1|2|3|4|5|6\n"
    (request,) = list(_trace(tmp_path, text))
    assert request.block_hashes == chain_block_hashes([1, 2, 3, 4, 5, 6])


def test_trace_fewer_ids_than_blocks_leave_the_rest_unshared(tmp_path):
    """Ids for the first 2 of 6 blocks give 2 hashes; the rest is never shared."""
    (request,) = list(_trace(tmp_path, HASH_HEADER + "0,100,10,1|2\n"))
    assert request.block_hashes == chain_block_hashes([1, 2])


def test_trace_empty_block_id_is_refused(tmp_path):
    """``1||2`` would shift every later block; it names its row."""
    with pytest.raises(InputError, match=r"row 2, column block_hash_ids: '1\|\|2'"):
        _rows(_trace(tmp_path, HASH_HEADER + "0,48,1,1||2\n"))


def test_trace_hash_block_size_declares_the_trace_block_size(tmp_path):
    """32 tokens with 4 ids is 4 blocks of 8 tokens: refused at the default 16,
    read with ``hash_block_size = 8``."""
    text = HASH_HEADER + "0,32,1,1|2|3|4\n"
    with pytest.raises(InputError, match="only 2 full blocks of 16 tokens"):
        _rows(_trace(tmp_path, text))
    (request,) = list(_trace(tmp_path, text, hash_block_size=8, block_size=8))
    assert request.block_hashes == chain_block_hashes([1, 2, 3, 4])


def test_trace_hash_block_size_without_block_ids_is_refused(tmp_path):
    """``hash_block_size`` on a trace without ``block_hash_ids`` has no effect."""
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,1\n"
    with pytest.raises(ConfigError, match="hash_block_size = 8 has no effect"):
        _trace(tmp_path, text, hash_block_size=8)


def test_block_hashes_at_equal_sizes_are_the_chained_ids():
    """With the trace's block size the mapping is :func:`chain_block_hashes`."""
    assert trace_block_hashes([1, 2, 3], 16, 16) == chain_block_hashes([1, 2, 3])


def test_block_hashes_onto_larger_blocks_pair_the_ids():
    """Ids of 16-token blocks on 32-token blocks: one hash per pair of ids, equal
    where both ids of the pair (and all before) agree; a lone last id gives none."""
    a = trace_block_hashes([1, 2, 3, 4], 16, 32)
    b = trace_block_hashes([1, 2, 3, 5], 16, 32)
    assert len(a) == 2  # 4 x 16 = 64 tokens = 2 blocks of 32
    assert a[0] == b[0]
    assert a[1] != b[1]
    assert trace_block_hashes([1, 2, 3], 16, 32) == a[:1]  # 48 tokens: 1 full block


def test_block_hashes_onto_smaller_blocks_split_each_id():
    """Ids of 16-token blocks on 8-token blocks: two hashes per id; prompts that
    differ in their second id share the first two 8-token blocks only."""
    a = trace_block_hashes([1, 2], 16, 8)
    b = trace_block_hashes([1, 3], 16, 8)
    assert len(a) == 4  # 2 x 16 = 32 tokens = 4 blocks of 8
    assert a[:2] == b[:2]
    assert a[2] != b[2] and a[3] != b[3]
    assert len(set(a)) == 4


def test_block_hashes_onto_unaligned_blocks_need_every_overlapped_id():
    """16-token ids on 24-token blocks: block 0 (tokens 0-23) overlaps ids 0 and 1,
    block 1 (tokens 24-47) ids 1 and 2; a block is shared only where every id up
    to its end agrees."""
    a = trace_block_hashes([1, 2, 3], 16, 24)
    second_differs = trace_block_hashes([1, 9, 3], 16, 24)
    third_differs = trace_block_hashes([1, 2, 9], 16, 24)
    assert len(a) == 2  # 3 x 16 = 48 tokens = 2 blocks of 24
    assert second_differs[0] != a[0]
    assert third_differs[0] == a[0]
    assert third_differs[1] != a[1]


def test_trace_hashes_follow_the_simulation_block_size(tmp_path):
    """A trace made for 16-token blocks replayed at block size 8 carries one hash
    per 8-token block: 2 ids on a 32-token prompt give 4."""
    text = HASH_HEADER + "0,32,2,11|22\n"
    (request,) = list(_trace(tmp_path, text, block_size=8))
    assert request.block_hashes == trace_block_hashes([11, 22], 16, 8)
    assert len(request.block_hashes) == 4


@pytest.mark.parametrize(
    ("block_size", "hit_tokens"),
    # Two identical 32-token prompts; the second reuses the full blocks before its
    # last token (31 tokens): the largest multiple of the block size up to 31.
    [(1, 31), (8, 24), (16, 16), (32, 0)],
)
def test_shared_prompt_hits_the_cache_at_any_block_size(
    tmp_path, block_size, hit_tokens
):
    """The shared-session trace (made for 16-token blocks) hits as the engine
    would at every simulated block size."""
    trace = tmp_path / "shared.csv"
    trace.write_text(HASH_HEADER + "0.0,32,2,11|22\n10.0,32,2,11|22\n", "utf-8")
    data = tiny_config([], cache={"block_size": block_size})
    data["workload"] = {"type": "trace", "path": str(trace)}
    _, result = simulate(data)
    assert result.summary["prefix_cache"]["first_attempt_hit_tokens"] == hit_tokens


def test_resample_does_not_read_block_ids(tmp_path):
    """Resampling draws lengths only, so block ids (even too many) are not read."""
    path = tmp_path / "trace.csv"
    path.write_text(HASH_HEADER + "0,20,3,1|2|3|4\n", "utf-8")
    config = ResampleConfig(path=str(path), num_requests=3, arrival="offline")
    requests = list(ResampleGenerator(config, CONTEXT))
    assert [(r.num_prompt_tokens, r.block_hashes) for r in requests] == [(20, None)] * 3


# --------------------------------------------------------------- vllm_jsonl


def _jsonl(tmp_path, data: bytes, name="requests.jsonl"):
    path = tmp_path / name
    path.write_bytes(data)
    return VllmJsonlGenerator(VllmJsonlConfig(path=str(path)), CONTEXT)


def test_jsonl_empty_file_is_refused_without_mentioning_a_header(tmp_path):
    """An empty JSONL file says it has no requests; JSONL has no header."""
    with pytest.raises(InputError, match="no requests") as error:
        _jsonl(tmp_path, b"\n  \n")
    assert "header" not in str(error.value)
    assert str(tmp_path / "requests.jsonl") in str(error.value)


def test_jsonl_given_a_csv_trace_suggests_the_trace_workload(tmp_path):
    """A CSV trace given as JSONL names its first line and ``type = "trace"``."""
    text = b"arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,2\n"
    with pytest.raises(InputError, match=r'workload\.type = "trace"'):
        _jsonl(tmp_path, text, name="trace.csv")


def test_jsonl_with_a_byte_order_mark_is_read(tmp_path):
    """A UTF-8 byte-order mark before the first request is skipped."""
    line = b'{"input_toks": 3, "output_toks": 2, "arrival_time_ns": 0}\n'
    (request,) = list(_jsonl(tmp_path, b"\xef\xbb\xbf" + line))
    assert (request.num_prompt_tokens, request.num_output_tokens) == (3, 2)


def test_jsonl_bad_bytes_are_an_input_error(tmp_path):
    """A file that is not UTF-8 is refused naming it, not with a traceback."""
    with pytest.raises(InputError, match="cannot be read as UTF-8"):
        _jsonl(tmp_path, b"\xff\xfe\x00b\x00i\x00n")


def test_jsonl_folder_is_named_as_a_folder(tmp_path):
    """A folder given as the request file is a config error saying so."""
    config = VllmJsonlConfig(path=str(tmp_path))
    with pytest.raises(ConfigError, match="is a folder"):
        VllmJsonlGenerator(config, CONTEXT)


def test_a_request_count_past_a_billion_is_refused():
    """1e20 requests ran silently for days."""
    from frontier.config import FieldValueError

    with pytest.raises(FieldValueError, match="the most is 1,000,000,000"):
        SyntheticConfig(num_requests=10**20)
    SyntheticConfig(num_requests=10**9)  # a day's run, allowed
