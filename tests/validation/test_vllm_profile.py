"""The ``vllm_profile`` predictor: per-layer vLLM profiles read as tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from frontier.batch import Batch
from frontier.errors import ConfigError, InputError
from frontier.plugins import load_plugins
from frontier.request import Request
from frontier_predictors.vllm_profile import (
    VllmProfileConfig,
    VllmProfilePredictor,
    merged_prefill,
)

from .conftest import context, tiny_model


def predictor(
    path: Path, moe: bool = False, ep: int = 1, **options
) -> VllmProfilePredictor:
    """The predictor on ``path`` for the tiny model (``ep`` replicas of TP 1
    sharing the experts when ``ep`` is above 1)."""
    config = VllmProfileConfig(path=str(path), **options)
    model = tiny_model(moe)
    return VllmProfilePredictor(config, context(model, replicas=ep, ep=ep))


def decode(request_id: int, history: int) -> Request:
    """A request about to decode one token over ``history`` cached tokens."""
    request = Request(request_id, 0.0, history, 10)
    request.num_computed_tokens = history
    request.num_generated = 1
    request.num_tokens = history + 1
    return request


def prefill(request_id: int, cached: int, chunk: int) -> Request:
    """A request whose next chunk of ``chunk`` tokens follows ``cached`` ones."""
    request = Request(request_id, 0.0, cached + chunk, 10)
    request.num_computed_tokens = cached
    return request


def batch_of(*items: tuple[Request, int]) -> Batch:
    batch = Batch()
    for request, tokens in items:
        batch.add(request, tokens)
    return batch


def test_decode_step_maps_every_operator(profile):
    """Two decodes at 16 and 32 cached tokens: each block adds its operators."""
    times = predictor(profile).predict(batch_of((decode(0, 16), 1), (decode(1, 32), 1)))
    # tokens = 2, mean history 24. Kernel 4 + 2 + 0.1 * 2 * 24 = 10.8 us.
    # Attention: layernorm 3 + qkv 12 + rotary 1.5 + o_proj 6 + 10.8 = 33.3 us.
    assert times.attention_s == pytest.approx(33.3e-6)
    # MLP: layernorm 3 + gate_up 24 + act 1.5 + down 12 = 40.5 us.
    assert times.mlp_s == pytest.approx(40.5e-6)
    # Head: final_layernorm 2.5 + lm_head 102 + sampler 14 = 118.5 us.
    assert times.head_s == pytest.approx(118.5e-6)
    assert times.embedding_s == pytest.approx(1e-6)
    assert times.moe_s == 0.0


def test_tokens_between_grid_points_interpolate_linearly(profile):
    """A 40-token chunk lies between the 32 and 64 rows: linear in tokens."""
    times = predictor(profile).predict(batch_of((prefill(0, 0, 40), 40)))
    # qkv 10 + 40 = 50, layernorm 2 + 20 = 22, rotary 1 + 10 = 11, o_proj 5 + 20 = 25;
    # kernel 4 + 0.5 * 40 = 24 (between chunks 32 and 64). Sum 132 us.
    assert times.attention_s == pytest.approx(132e-6)


def test_chunk_shorter_than_the_smallest_profiled_costs_the_smallest(profile):
    """A 3-token prefill alone costs what the 16-token one does in the kernel."""
    times = predictor(profile).predict(batch_of((prefill(0, 0, 3), 3)))
    # Kernel t(16, 0, 0, 0) = 4 + 8 = 12; layernorm 3.5 + qkv 13 + rotary 1.75
    # + o_proj 6.5 = 24.75. Sum 36.75 us.
    assert times.attention_s == pytest.approx(36.75e-6)


def test_several_chunks_map_to_one_of_equal_attention_work():
    """Chunks (8 over 32) and (8 over 48) do the work of 16 over 36."""
    # work = 8 (32 + 9/2) + 8 (48 + 9/2) = 712; K = 712 / 16 - 17 / 2 = 36.
    assert merged_prefill([8, 8], [32, 48]) == (16.0, 36.0)


def test_short_chunks_never_map_below_no_context():
    """Two fresh 16-token chunks do less work than one of 32; K stays at 0."""
    # work = 2 * 16 * 17 / 2 = 272 < 32 * 33 / 2 = 528, so K would be negative.
    assert merged_prefill([16, 16], [0, 0]) == (32.0, 0.0)


def test_mixed_step_uses_the_merged_chunk_and_the_decodes(profile):
    """One chunk (16 over 32) and one decode over 64: the 4-D point (16, 32, 1, 64)."""
    times = predictor(profile).predict(
        batch_of((prefill(0, 32, 16), 16), (decode(1, 64), 1))
    )
    # Kernel 4 + 8 + 0.01 * 16 * 32 + 1 + 0.1 * 64 = 24.52; tokens 17:
    # layernorm 10.5 + qkv 27 + rotary 5.25 + o_proj 13.5 = 56.25. Sum 80.77 us.
    assert times.attention_s == pytest.approx(80.77e-6)


def test_inside_the_grid_is_no_fallback(profile):
    """A step inside every table's range is not counted as a fallback."""
    model = predictor(profile)
    model.predict(batch_of((decode(0, 40), 1)))
    assert model.describe()["fallback_predictions"] == 0


def test_context_past_the_grid_extrapolates_and_counts(profile):
    """A decode over 100 tokens (grid ends at 64) continues the last slope."""
    model = predictor(profile)
    times = model.predict(batch_of((decode(0, 100), 1)))
    # Kernel 4 + 1 + 0.1 * 100 = 15 (the table is affine in the context);
    # layernorm 2.5 + qkv 11 + rotary 1.25 + o_proj 5.5 = 20.25. Sum 35.25 us.
    assert times.attention_s == pytest.approx(35.25e-6)
    assert model.describe()["fallback_predictions"] == 1


def test_tokens_past_the_grid_count_as_fallback(profile):
    """A 100-token chunk is past the 64-token dense grid."""
    model = predictor(profile)
    times = model.predict(batch_of((prefill(0, 0, 100), 100)))
    # qkv 10 + 100 = 110 continues the 32..64 slope exactly.
    assert times.mlp_s == pytest.approx((52 + 220 + 26 + 110) * 1e-6)
    assert model.describe()["fallback_predictions"] == 1


SKEW_META = """skew_fit:
  bucket_axes:
    pc: raw pc value (profiled grid point)
    n_bins: [0, 2, 4, 1000000]
    n_labels: [n<=2, n<=4, n>4]
    skew_rate_bins: [-0.01, 0.05, 0.15, 0.4, 0.7, 1.01]
    skew_rate_labels: [sr<=5%, sr<=15%, sr<=40%, sr<=70%, sr>70%]
    kv_big_bins: [0, 1024, 1000000000]
    kv_big_labels: [kvB<=1k, kvB>1k]
    kp_bins: [-1, 0, 1000000000]
    kp_labels: [kp=0, kp>0]
"""


@pytest.fixture
def skewed_profile(profile):
    """The tiny profile with a skew fit: alpha 0.5 for two decodes, 0.2 pooled."""
    (profile / "meta.yaml").write_text(SKEW_META, "utf-8")
    (profile / "tp1" / "skew_fit.csv").write_text(
        "pc,n_label,skew_rate_label,kv_big_label,kp_label,alpha,n_samples\n"
        "0,n<=2,sr<=70%,kvB<=1k,kp=0,0.5,4\n",
        "utf-8",
    )
    (profile / "tp1" / "skew.csv").write_text(
        "regime,n,nb,ratio,skew,pc,kp,kvs,kv_big,kv_mean,t_mean_us,t_max_us,"
        "t_skew_us,alpha\npure,2,1,0.5,4,0,0,16,64,40,10,20,12,0.2\n",
        "utf-8",
    )
    return profile


def test_uneven_decodes_add_the_fitted_share_of_the_gap(skewed_profile):
    """Decodes over 16 and 48: t_mean + 0.5 (t_max - t_mean)."""
    times = predictor(skewed_profile).predict(
        batch_of((decode(0, 16), 1), (decode(1, 48), 1))
    )
    # t_mean at 32: 4 + 2 + 6.4 = 12.4; t_max at 48: 4 + 2 + 9.6 = 15.6;
    # skew rate (32 - 16) / (48 - 16) = 0.5 -> bucket sr<=70%, alpha 0.5: 14.0.
    # Dense attention ops at 2 tokens: 22.5. Sum 36.5 us.
    assert times.attention_s == pytest.approx(36.5e-6)


def test_bucket_missing_from_the_fit_takes_the_pooled_alpha(skewed_profile):
    """Four uneven decodes fall in n<=4, absent from the fit: pooled alpha 0.2."""
    requests = [decode(i, h) for i, h in enumerate((16, 16, 16, 48))]
    times = predictor(skewed_profile).predict(batch_of(*((r, 1) for r in requests)))
    # Mean history 24: t_mean 4 + 4 + 9.6 = 17.6; t_max 4 + 4 + 19.2 = 27.2;
    # pooled alpha (20 - 10)(12 - 10) / (20 - 10)^2 = 0.2: 17.6 + 1.92 = 19.52.
    # Dense attention ops at 4 tokens: 4 + 14 + 2 + 7 = 27. Sum 46.52 us.
    assert times.attention_s == pytest.approx(46.52e-6)


def test_even_decodes_need_no_correction(skewed_profile):
    """Decodes over equal contexts are what the uniform table measured."""
    times = predictor(skewed_profile).predict(
        batch_of((decode(0, 32), 1), (decode(1, 32), 1))
    )
    # 12.4 + 22.5 = 34.9 us.
    assert times.attention_s == pytest.approx(34.9e-6)


def test_skew_correction_can_be_switched_off(skewed_profile):
    """With the correction off, uneven decodes cost their mean context."""
    times = predictor(skewed_profile, skew_correction=False).predict(
        batch_of((decode(0, 16), 1), (decode(1, 48), 1))
    )
    assert times.attention_s == pytest.approx((12.4 + 22.5) * 1e-6)


def test_moe_block_at_the_expected_distinct_experts(moe_profile):
    """Four tokens, top 2 of 8 experts: 8 (1 - (6/8)^4) experts are active."""
    times = predictor(moe_profile, moe=True).predict(
        batch_of(*((decode(i, 16), 1) for i in range(4)))
    )
    experts = 8 * (1 - 0.75**4)  # 5.46875
    # layernorm 4 + (20 + 0.5 * 4 + 3 * 5.46875) = 4 + 38.40625 = 42.40625 us.
    assert experts == pytest.approx(5.46875)
    assert times.moe_s == pytest.approx((4 + 20 + 2 + 3 * experts) * 1e-6)
    assert times.mlp_s == 0.0


def test_expert_parallel_rank_sees_the_group_and_half_the_experts(moe_profile):
    """EP 2 over 2 replicas, 8 tokens in the group: 4 local experts, 4 tokens'
    routes."""
    batch = batch_of(*((decode(i, 16), 1) for i in range(4)))
    batch.ep_group_tokens = 8  # this replica's 4 and the other's 4
    times = predictor(moe_profile, moe=True, ep=2).predict(batch)
    experts = 4 * (1 - 0.75**8)  # about 3.5996 of the rank's 4
    # layernorm 4 + (20 + 0.5 * 4 + 3 * experts).
    assert times.moe_s == pytest.approx((4 + 20 + 2 + 3 * experts) * 1e-6)


def test_expert_parallel_uneven_group_reads_its_tokens(moe_profile):
    """EP 2, 4 own tokens in a group of 12: 6 routed tokens per rank."""
    batch = batch_of(*((decode(i, 16), 1) for i in range(4)))
    batch.ep_group_tokens = 12  # the other replica ran 8
    times = predictor(moe_profile, moe=True, ep=2).predict(batch)
    experts = 4 * (1 - 0.75**12)  # about 3.8733 of the rank's 4
    # layernorm 4 + (20 + 0.5 * 12 / 2 + 3 * experts).
    assert times.moe_s == pytest.approx((4 + 20 + 3 + 3 * experts) * 1e-6)


def test_moe_model_without_moe_table_is_an_input_error(profile):
    """An MoE model needs moe.csv; the message names the file."""
    with pytest.raises(InputError, match=r"moe\.csv"):
        predictor(profile, moe=True)


def test_missing_folder_is_a_config_error(tmp_path):
    """A profile path that does not exist names predictor.path."""
    with pytest.raises(ConfigError, match=r"predictor\.path"):
        predictor(tmp_path / "absent")


def test_missing_tp_folder_names_the_ones_there(profile):
    """Asking for TP 2 of a profile with only tp1 lists tp1."""
    with pytest.raises(ConfigError, match=r"no tp2 folder \(it has tp1\)"):
        predictor(profile, tensor_parallel_size=2)


def test_tp_folder_itself_is_accepted(profile):
    """The path may name the tp<N> folder directly."""
    times = predictor(profile / "tp1").predict(batch_of((decode(0, 16), 1)))
    assert times.embedding_s == pytest.approx(1e-6)


def test_bad_number_names_row_and_column(profile):
    """A non-numeric time is reported with its file, row and column."""
    path = profile / "tp1" / "dense.csv"
    lines = path.read_text("utf-8").splitlines()
    lines[3] = "embedding,3,fast"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    with pytest.raises(InputError, match=r"dense\.csv, row 4, column time_us"):
        predictor(profile)


def _zero_times(path: Path, layer: str | None = None) -> None:
    """Set time_us to 0 in every row of ``path`` (of ``layer`` only, if given)."""
    lines = path.read_text("utf-8").splitlines()
    for i in range(1, len(lines)):
        cells = lines[i].split(",")
        if layer is None or cells[0] == layer:
            lines[i] = ",".join([*cells[:-1], "0"])
    path.write_text("\n".join(lines) + "\n", "utf-8")


@pytest.mark.parametrize(
    ("file", "layer", "what"),
    [
        ("dense.csv", "qkv_proj", "layer 'qkv_proj'"),
        ("attention.csv", None, "the attention table"),
    ],
)
def test_a_table_of_zero_times_is_refused(profile, file, layer, what):
    """A table whose every time is 0 was not measured: it predicted free steps."""
    _zero_times(profile / "tp1" / file, layer)
    with pytest.raises(InputError, match=rf"{file}: every time_us of {what} is 0"):
        predictor(profile)


def test_an_moe_table_of_zero_times_is_refused(moe_profile):
    _zero_times(moe_profile / "tp1" / "moe.csv")
    with pytest.raises(InputError, match=r"moe\.csv: every time_us of the MoE block"):
        predictor(moe_profile, moe=True)


def test_missing_column_names_the_header(profile):
    """A dense table without ``tokens`` says which columns it has."""
    path = profile / "tp1" / "dense.csv"
    path.write_text("layer,time_us\nembedding,1\n", "utf-8")
    with pytest.raises(InputError, match="missing column"):
        predictor(profile)


def test_registered_as_a_predictor_plugin():
    """``vllm_profile`` is found through the entry points."""
    entry = load_plugins().registry.get("predictor", "vllm_profile")
    assert entry.factory is VllmProfilePredictor


def _append(path: Path, line: str) -> int:
    """Append ``line`` to the CSV ``path``; return its row number (header 1)."""
    lines = path.read_text("utf-8").splitlines()
    path.write_text("\n".join([*lines, line]) + "\n", "utf-8")
    return len(lines) + 1


@pytest.mark.parametrize(
    ("file", "row_of", "what"),
    [
        # a second down_proj time at the first down_proj row's tokens, x100
        ("dense.csv", "down_proj,", "layer 'down_proj' at tokens = "),
        ("attention.csv", "0,0,1,", "prefill_chunk = 0, kv_prefill = 0, n_decode = 1"),
    ],
)
def test_a_point_measured_twice_is_refused_naming_both_rows(
    profile, file, row_of, what
):
    """Conflicting rows for one point were used silently (the last won): a
    profile with every down_proj row doubled at 100x time ran 14x slower."""
    path = profile / "tp1" / file
    lines = path.read_text("utf-8").splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(row_of))
    cells = lines[first].split(",")
    again = _append(path, ",".join([*cells[:-1], str(float(cells[-1]) * 100)]))
    with pytest.raises(
        InputError,
        match=rf"{file}, row {again}: {what}.* again \(first at row {first + 1}\)",
    ):
        predictor(profile)


def test_an_moe_point_measured_twice_is_refused(moe_profile):
    path = moe_profile / "tp1" / "moe.csv"
    first = path.read_text("utf-8").splitlines()[1].split(",")
    again = _append(path, ",".join([*first[:-1], "999"]))
    with pytest.raises(InputError, match=rf"moe\.csv, row {again}: tokens = .* again"):
        predictor(moe_profile, moe=True)


def test_a_skew_fit_without_meta_yaml_says_the_file_is_missing(skewed_profile):
    """The message named a meta.yaml inside tp1/ that never existed as lacking
    its bins."""
    (skewed_profile / "meta.yaml").unlink()
    with pytest.raises(InputError, match=r"needs the profile's meta\.yaml"):
        predictor(skewed_profile)


def test_the_summary_names_the_profile_by_its_absolute_path(profile, monkeypatch):
    """config.toml stores paths absolute; the summary wrote them as typed, so a
    rerun of the saved config from elsewhere differed in that line."""
    monkeypatch.chdir(profile.parent)
    facts = predictor(Path(profile.name)).describe()
    assert facts["profile"] == str(profile.resolve() / "tp1")  # the TP folder
