"""The trained-table cache: reused when nothing changed, retrained when anything did."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from frontier_predictors.cache import TrainedTables, load_or_train
from frontier_predictors.sklearn_predictor import SklearnConfig, SklearnPredictor
from frontier_predictors.tables import OperatorTable

from .conftest import attention_rows, write_csv


def _config(profile, cache, **settings):
    settings.setdefault("model", "linear")
    return SklearnConfig(profile_dir=str(profile), cache_dir=str(cache), **settings)


def test_a_second_run_reads_the_cache(older_profile, tmp_path, tiny_context):
    """The first predictor trains; an identical second one loads its tables."""
    first = SklearnPredictor(_config(older_profile, tmp_path / "c"), tiny_context)
    second = SklearnPredictor(_config(older_profile, tmp_path / "c"), tiny_context)
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert first.cache_file == second.cache_file


def test_cached_tables_answer_like_fresh_ones(older_profile, tmp_path, tiny_context):
    """Tables read back from the cache give the same times as freshly trained ones."""
    from .conftest import make_batch

    batch = make_batch(prefills=[(48, 16)], decodes=[40, 100])
    first = SklearnPredictor(_config(older_profile, tmp_path / "c"), tiny_context)
    second = SklearnPredictor(_config(older_profile, tmp_path / "c"), tiny_context)
    assert first.predict(batch) == second.predict(batch)


def test_a_changed_profile_is_retrained(older_profile, tmp_path, tiny_context):
    """Editing one measured time changes the key: the next run trains again."""
    SklearnPredictor(_config(older_profile, tmp_path / "c"), tiny_context)
    rows = attention_rows()
    for statistic in ("min", "max", "mean", "median"):  # one re-measured row
        rows[0][f"time_stats.attn_prefill.{statistic}"] = 0.5
    write_csv(older_profile / "attention.csv", rows)
    again = SklearnPredictor(_config(older_profile, tmp_path / "c"), tiny_context)
    assert again.cache_hit is False


def test_changed_settings_are_retrained(older_profile, tmp_path, tiny_context):
    """A forest and a linear model of one profile are two cache entries."""
    linear = SklearnPredictor(_config(older_profile, tmp_path / "c"), tiny_context)
    forest = SklearnPredictor(
        _config(older_profile, tmp_path / "c", model="random_forest", n_estimators=4),
        tiny_context,
    )
    assert forest.cache_hit is False
    assert forest.cache_file != linear.cache_file


def test_thread_count_does_not_change_the_key(older_profile, tmp_path, tiny_context):
    """n_jobs only changes how fast training runs, so the entry is shared."""
    first = SklearnPredictor(
        _config(older_profile, tmp_path / "c", model="random_forest", n_jobs=1),
        tiny_context,
    )
    second = SklearnPredictor(
        _config(older_profile, tmp_path / "c", model="random_forest", n_jobs=2),
        tiny_context,
    )
    assert second.cache_hit is True
    assert first.cache_file == second.cache_file


def test_a_corrupt_entry_is_retrained(older_profile, tmp_path, tiny_context):
    """A foreign cache file is ignored and rewritten, not an error."""
    first = SklearnPredictor(_config(older_profile, tmp_path / "c"), tiny_context)
    with open(first.cache_file, "wb") as handle:
        handle.write(b"not an npz")
    again = SklearnPredictor(_config(older_profile, tmp_path / "c"), tiny_context)
    assert again.cache_hit is False


def test_a_truncated_entry_is_retrained(older_profile, tmp_path, tiny_context):
    """An entry cut short (a full disk, a killed copy) is retrained; the zip
    reader's BadZipFile used to escape as a traceback."""
    first = SklearnPredictor(_config(older_profile, tmp_path / "c"), tiny_context)
    entry = Path(first.cache_file)
    whole = entry.read_bytes()
    entry.write_bytes(whole[:1000])
    again = SklearnPredictor(_config(older_profile, tmp_path / "c"), tiny_context)
    assert again.cache_hit is False
    rewritten = SklearnPredictor(_config(older_profile, tmp_path / "c"), tiny_context)
    assert rewritten.cache_hit is True


def _trained() -> TrainedTables:
    table = OperatorTable("qkv_proj", (np.array([1.0, 2.0]),), np.array([1e-5, 2e-5]))
    return TrainedTables({"qkv_proj": table}, {}, {}, {"training_s": 0.0})


def test_concurrent_runs_train_once(tmp_path):
    """Two runs starting together share one training: the lock makes one wait."""
    calls = []

    def train():
        calls.append(1)
        time.sleep(0.2)
        return _trained()

    results = []

    def run():
        results.append(load_or_train(tmp_path, "key", train)[1])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert sorted(results) == [False, True]


def test_the_run_summary_does_not_say_whether_the_cache_hit(
    older_profile, tmp_path, tiny_context
):
    """A trained and a cached predictor describe themselves identically, so two
    runs of one config write the same system_metrics.json (training time and the
    cache hit used to be in it)."""
    first = SklearnPredictor(_config(older_profile, tmp_path / "c"), tiny_context)
    second = SklearnPredictor(_config(older_profile, tmp_path / "c"), tiny_context)
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert first.describe() == second.describe()
