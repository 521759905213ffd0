"""Profile files written row by row: resume keys, cut lines, foreign headers."""

from __future__ import annotations

import pytest
from frontier.errors import InputError
from frontier_profiling.rows import cell
from frontier_profiling.writer import ProfileFile

COLUMNS = ("time_stats.op.median", "num_tokens", "num_tensor_parallel_workers")
KEY = ("num_tensor_parallel_workers", "num_tokens")


def test_cells_are_written_as_the_shared_profiles_spell_them():
    """Flags True/False, floats by shortest repr, lists [a, b], None empty."""
    assert [cell(True), cell(0.1), cell(7), cell([1, 1]), cell(None)] == [
        "True",
        "0.1",
        "7",
        "[1, 1]",
        "",
    ]


def test_appended_rows_are_known_when_the_file_is_reopened(tmp_path):
    """A row's key is found again by a later run; other keys are not."""
    path = tmp_path / "linear_op.csv"
    first = ProfileFile(path, COLUMNS, KEY)
    first.append(
        {"time_stats.op.median": 0.5, "num_tokens": 8, "num_tensor_parallel_workers": 1}
    )
    first.close()
    again = ProfileFile(path, COLUMNS, KEY)
    assert again.has({"num_tokens": 8, "num_tensor_parallel_workers": 1})
    assert not again.has({"num_tokens": 16, "num_tensor_parallel_workers": 1})
    assert path.read_text() == (
        "time_stats.op.median,num_tokens,num_tensor_parallel_workers\n0.5,8,1\n"
    )


def test_a_line_cut_by_an_interruption_is_dropped(tmp_path):
    """A last line without its newline is removed; the complete rows stay."""
    path = tmp_path / "linear_op.csv"
    path.write_text(",".join(COLUMNS) + "\n0.5,8,1\n0.7,1")
    file = ProfileFile(path, COLUMNS, KEY)
    assert file.done == {("1", "8")}
    assert path.read_text().endswith("0.5,8,1\n")


def test_a_dry_run_reads_without_repairing(tmp_path):
    """repair=False leaves a cut line in place."""
    path = tmp_path / "linear_op.csv"
    path.write_text(",".join(COLUMNS) + "\n0.5,8,1\n0.7,1")
    ProfileFile(path, COLUMNS, KEY, repair=False)
    assert path.read_text().endswith("0.7,1")


def test_a_file_with_other_columns_is_not_appended_to(tmp_path):
    """Another profiler's file is refused with the column that differs."""
    path = tmp_path / "linear_op.csv"
    path.write_text("time_stats.op.median,num_tokens\n0.5,8\n")
    with pytest.raises(InputError, match=r"missing 'num_tensor_parallel_workers'"):
        ProfileFile(path, COLUMNS, KEY)
