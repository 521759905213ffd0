"""Profile readers: both generations of the format, and clear errors for bad files."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from frontier.errors import InputError
from frontier_predictors.profiles import read_profile

from .conftest import (
    DECODE,
    PREFILL,
    TOKENS,
    attention_rows,
    decode_ms,
    linear_rows,
    prefill_ms,
    token_ms,
    write_csv,
    write_profile,
)


def test_older_format_maps_operators_to_the_taxonomy(older_profile, tiny_model):
    """mlp.csv's attn_pre_proj becomes qkv_proj, one sample per token count."""
    profile = read_profile(older_profile, tiny_model)
    qkv = profile.samples["qkv_proj"]
    assert profile.generation == "older"
    assert qkv.x.tolist() == list(TOKENS)
    # 0.010 + 0.003 * 32 = 0.106 ms at 32 tokens
    assert qkv.time_ms[TOKENS.index(32)] == pytest.approx(0.106)
    assert "lm_head" not in profile.samples


def test_newer_format_reads_the_lm_head(newer_profile, tiny_model):
    """linear_op.csv's lm_head_linear becomes lm_head."""
    profile = read_profile(newer_profile, tiny_model)
    assert profile.generation == "newer"
    # 0.030 + 0.002 * 16 = 0.062 ms at 16 tokens
    head = profile.samples["lm_head"]
    assert head.time_ms[TOKENS.index(16)] == pytest.approx(0.062)


def test_final_norm_comes_from_the_input_norm_rows(older_profile, tiny_model):
    """The final norm is learned from input_layernorm's measurements."""
    profile = read_profile(older_profile, tiny_model)
    norm, final = profile.samples["input_norm"], profile.samples["final_norm"]
    assert np.array_equal(norm.time_ms, final.time_ms)


def test_attention_rows_become_prefill_and_decode_samples(older_profile, tiny_model):
    """Prefill rows give (q, c) samples; decode rows (n, m) samples."""
    profile = read_profile(older_profile, tiny_model)
    prefill = profile.samples["attention_prefill"]
    decode = profile.samples["attention_decode"]
    assert [tuple(x) for x in prefill.x] == PREFILL
    assert [tuple(x) for x in decode.x] == DECODE
    # 0.005 + 1e-4 * 32 + 1e-6 * 32 * 64 + 2e-6 * 32^2 = 0.012296 ms
    assert prefill.time_ms[PREFILL.index((32, 64))] == pytest.approx(prefill_ms(32, 64))
    assert prefill_ms(32, 64) == pytest.approx(0.012296)
    # 0.006 + 2e-4 * 4 + 2e-6 * 4 * 128 = 0.007824 ms
    assert decode.time_ms[DECODE.index((4, 128))] == pytest.approx(decode_ms(4, 128))


def test_kv_cache_write_is_split_by_phase(older_profile, tiny_model):
    """Prefill rows train the prefill write on tokens, decode rows on decodes."""
    profile = read_profile(older_profile, tiny_model)
    prefill = profile.samples["kv_cache_write_prefill"]
    decode = profile.samples["kv_cache_write_decode"]
    assert sorted(set(prefill.x.tolist())) == [16, 32, 64, 128]
    assert sorted(set(decode.x.tolist())) == [1, 2, 4, 8]


def test_samples_remember_their_rows(older_profile, tiny_model):
    """Each sample records its line in the file (header = line 1)."""
    profile = read_profile(older_profile, tiny_model)
    assert profile.samples["qkv_proj"].rows.tolist() == [2, 3, 4, 5, 6]


def test_rows_of_another_tp_size_are_left_out(tmp_path, tiny_model):
    """A profile with rows at TP 1 and 2 gives TP 1 the TP 1 rows only."""
    directory = tmp_path / "mixed_tp"
    directory.mkdir()
    write_csv(directory / "mlp.csv", linear_rows(False, 1) + linear_rows(False, 2))
    write_csv(directory / "attention.csv", attention_rows(1))
    profile = read_profile(directory, tiny_model, tp=1)
    assert len(profile.samples["qkv_proj"]) == len(TOKENS)


def test_missing_directory_is_named(tmp_path, tiny_model):
    """A directory that does not exist is an InputError naming it."""
    with pytest.raises(InputError, match="nowhere"):
        read_profile(tmp_path / "nowhere", tiny_model)


def test_missing_attention_file_is_named(tmp_path, tiny_model):
    """A profile without attention.csv is an InputError naming the file."""
    directory = write_profile(tmp_path / "p")
    (directory / "attention.csv").unlink()
    with pytest.raises(InputError, match=r"no attention\.csv"):
        read_profile(directory, tiny_model)


def test_a_non_number_names_file_row_and_column(tmp_path, tiny_model):
    """A bad cell is reported with its file, line and column."""
    directory = write_profile(tmp_path / "p")
    rows = linear_rows(False)
    rows[2]["num_tokens"] = "lots"
    write_csv(directory / "mlp.csv", rows)
    # The third data row is line 4 (the header is line 1).
    with pytest.raises(InputError, match=r"mlp\.csv, row 4, column 'num_tokens'"):
        read_profile(directory, tiny_model)


def test_a_short_row_is_reported(tmp_path, tiny_model):
    """A row with fewer fields than the header is an InputError with its line."""
    directory = write_profile(tmp_path / "p")
    path = directory / "attention.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 2)[0]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"attention\.csv, row 4: .* fields"):
        read_profile(directory, tiny_model)


def test_a_missing_shape_column_is_named(tmp_path, tiny_model):
    """A file without a shape column says which column is missing."""
    directory = write_profile(tmp_path / "p")
    rows = [
        {k: v for k, v in row.items() if k != "n_embd"} for row in linear_rows(False)
    ]
    write_csv(directory / "mlp.csv", rows)
    with pytest.raises(InputError, match=r"column 'n_embd' is missing"):
        read_profile(directory, tiny_model)


def test_a_negative_time_is_rejected(tmp_path, tiny_model):
    """A negative time names its file, row and column."""
    directory = write_profile(tmp_path / "p")
    rows = attention_rows()
    rows[0]["time_stats.attn_prefill.median"] = -1.0
    write_csv(directory / "attention.csv", rows)
    with pytest.raises(InputError, match=r"row 2, column 'time_stats\.attn_prefill"):
        read_profile(directory, tiny_model)


@pytest.mark.parametrize(
    ("file", "column", "value", "minimum"),
    [
        ("mlp.csv", "num_tokens", "7.5", 1),
        ("mlp.csv", "num_tokens", "0", 1),
        ("attention.csv", "batch_size", "0", 1),
        ("attention.csv", "kv_cache_size", "-16", 0),
    ],
)
def test_a_shape_that_is_not_a_whole_size_is_refused(
    tmp_path, tiny_model, file, column, value, minimum
):
    """The rows ``frontier profile validate`` refuses are refused when training
    too (they used to be read as they stood)."""
    directory = write_profile(tmp_path / "p")
    rows = linear_rows(False) if file == "mlp.csv" else attention_rows()
    rows[0][column] = value
    write_csv(directory / file, rows)
    with pytest.raises(
        InputError,
        match=rf"row 2, column '{column}': '{value}' is not a whole "
        rf"number >= {minimum}",
    ):
        read_profile(directory, tiny_model)


def test_statistics_must_agree_within_a_row(tmp_path, tiny_model):
    """A median outside its row's [min, max], or a statistic left empty while
    the others are set, names the row and column."""
    directory = write_profile(tmp_path / "p")
    rows = linear_rows(False)
    op = next(c.split(".")[1] for c in rows[0] if c.startswith("time_stats."))
    rows[0][f"time_stats.{op}.min"] = 5.0  # above the row's max
    write_csv(directory / "mlp.csv", rows)
    with pytest.raises(InputError, match=r"row 2, column .*median.*outside the row"):
        read_profile(directory, tiny_model)
    rows = linear_rows(False)
    rows[0][f"time_stats.{op}.mean"] = ""
    write_csv(directory / "mlp.csv", rows)
    with pytest.raises(InputError, match=rf"'time_stats\.{op}\.mean': empty while"):
        read_profile(directory, tiny_model)


def test_a_byte_order_mark_is_not_part_of_the_header(tmp_path, tiny_model):
    """A CSV saved with a byte-order mark reads like one without."""
    directory = write_profile(tmp_path / "p")
    path = directory / "mlp.csv"
    from frontier_predictors.csv_table import CsvTable

    first = CsvTable(path).header[0]  # time_stats.<op>.min: the mark hid it
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert CsvTable(path).header[0] == first
    assert read_profile(directory, tiny_model).samples


def test_an_operator_the_model_needs_must_be_profiled(tmp_path, tiny_model):
    """Without mlp_up_proj columns a dense model cannot be learned."""
    directory = write_profile(tmp_path / "p")
    rows = [
        {k: v for k, v in row.items() if ".mlp_up_proj." not in k}
        for row in linear_rows(False)
    ]
    write_csv(directory / "mlp.csv", rows)
    with pytest.raises(
        InputError, match=r"mlp\.csv: the profile lacks .*'mlp_up_gate'"
    ):
        read_profile(directory, tiny_model)


def test_another_models_profile_is_refused(older_profile, tiny_model):
    """A model of another width matches no row: the error shows what the file has."""
    wider = attrs.evolve(tiny_model, hidden_size=128)
    with pytest.raises(InputError, match=r"no row matches the model .*n_embd=64"):
        read_profile(older_profile, wider)


def test_a_tp_size_the_profile_lacks_is_refused(older_profile, tiny_model):
    """Asking for TP 2 from a TP 1 profile names the sizes it has."""
    with pytest.raises(InputError, match=r"no row at tensor-parallel size 2 .*sizes 1"):
        read_profile(older_profile, tiny_model, tp=2)


def test_token_times_match_the_hand_made_values(newer_profile, tiny_model):
    """Every linear-file operator reads back intercept + slope * tokens."""
    profile = read_profile(newer_profile, tiny_model)
    up = profile.samples["mlp_up_gate"]
    expected = [token_ms("mlp_up_proj", t) for t in TOKENS]
    assert up.time_ms.tolist() == pytest.approx(expected)


def _mixed_row(prefill_lens: str, prefill_kv: str, decode_kv: str) -> dict:
    row = dict(attention_rows()[0])
    row.update(
        batch_size=3,
        prefill_chunk_size=0,
        kv_cache_size=0,
        is_prefill=True,
        prefill_seq_lens=prefill_lens,
        prefill_kv_cache_sizes=prefill_kv,
        decode_kv_cache_sizes=decode_kv,
    )
    return row


def test_a_mixed_batch_row_gives_pooled_prefill_and_decode(tmp_path, tiny_model):
    """A newer-format mixed row: chunks (30, 40), (40, 0) and decodes at 10, 20."""
    directory = write_profile(tmp_path / "p", newer=True)
    plain = [
        dict(
            r, prefill_seq_lens="", prefill_kv_cache_sizes="", decode_kv_cache_sizes=""
        )
        for r in attention_rows()
    ]
    rows = [*plain, _mixed_row("[30, 40]", "[40, 0]", "[10, 20]")]
    write_csv(directory / "attention.csv", rows)
    profile = read_profile(directory, tiny_model)
    prefill = profile.samples["attention_prefill"]
    decode = profile.samples["attention_decode"]
    # Pooled: q = sqrt(30^2 + 40^2) = 50, c = (30 * 40) / 50 = 24; decodes n = 2,
    # mean cached (10 + 20) / 2 = 15. The mixed row is the last line.
    last = len(rows) + 1
    assert prefill.x[prefill.rows == last].tolist() == [[50.0, 24.0]]
    assert decode.x[decode.rows == last].tolist() == [[2.0, 15.0]]
    assert last not in profile.samples["kv_cache_write_prefill"].rows


def test_a_malformed_list_names_its_cell(tmp_path, tiny_model):
    """A chunk list that is not integers is reported with its row and column."""
    directory = write_profile(tmp_path / "p", newer=True)
    plain = [
        dict(
            r, prefill_seq_lens="", prefill_kv_cache_sizes="", decode_kv_cache_sizes=""
        )
        for r in attention_rows()
    ]
    rows = [*plain, _mixed_row("[30, many]", "[0, 0]", "[]")]
    write_csv(directory / "attention.csv", rows)
    line = len(rows) + 1
    with pytest.raises(InputError, match=rf"row {line}, column 'prefill_seq_lens'"):
        read_profile(directory, tiny_model)


def test_a_file_whose_every_time_is_zero_is_refused(tmp_path, tiny_model):
    """One operator may time 0 everywhere (the A800 profile's attn_input_reshape,
    a view), but a file of zeros was not measured and predicted free steps."""
    directory = write_profile(tmp_path / "p")
    rows = linear_rows(False)
    for row in rows:
        for key in row:
            if key.startswith("time_stats."):
                row[key] = 0.0
    write_csv(directory / "mlp.csv", rows)
    with pytest.raises(InputError, match=r"mlp\.csv: every time of every operator"):
        read_profile(directory, tiny_model)
