"""Held-out accuracy of every predictor, and the roofline across devices.

On the A800 Llama-2-7B profile, 20% of each file's rows (seed 0) are held out and
each predictor is trained or calibrated on the rest; the figure is the MAPE of
whole-iteration times built from held-out rows (see
``frontier_predictors.validation``). Then a roofline calibrated on all A800 rows
predicts every row of the H800 ``llama2_7b_dense_example`` profile. Needs the
shared data (``FRONTIER_SHARED_DATA`` or ``../shared/data``).

Run: ``uv run python benchmarks/predictors_accuracy.py``
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
A800 = "profiling/compute/a800/meta-llama/Llama-2-7b-hf"
H800 = "profiling/compute/h800/llama2_7b_dense_example"


def shared_data() -> Path:
    """The shared data folder, or exit with the reason."""
    env = os.environ.get("FRONTIER_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    if not path.is_dir():
        sys.exit(
            "shared data not found: set FRONTIER_SHARED_DATA or place ../shared/data"
        )
    return path


def context_on(device: str):
    """Llama-2-7B in FP16 at TP 1 on ``device``."""
    from frontier.config import ParallelConfig
    from frontier.devices import load_device
    from frontier.models import load_model
    from frontier.plugins import ExecutionContext

    return ExecutionContext(
        model=load_model("llama-2-7b"),
        device=load_device(device),
        parallel=ParallelConfig(),
        dtype="float16",
        kv_cache_dtype="float16",
    )


def main() -> None:
    """Print held-out iteration MAPE per predictor and the cross-device figure."""
    from frontier_predictors.calibration import calibrate
    from frontier_predictors.learned import train_from_samples
    from frontier_predictors.lightgbm_predictor import LightGBMConfig
    from frontier_predictors.profiles import read_profile
    from frontier_predictors.roofline import default_factors, roofline_for
    from frontier_predictors.sklearn_predictor import SklearnConfig
    from frontier_predictors.validation import validate

    data = shared_data()
    a800 = context_on("a800")
    profile = read_profile(data / A800, a800.model)
    candidates = {
        "sklearn (random forest)": SklearnConfig(),
        "sklearn (linear)": SklearnConfig(model="linear"),
        "lightgbm": LightGBMConfig(),
        "roofline (calibrated, max)": "max",
        "roofline (calibrated, best of max and sum)": "best",
    }
    for label, config in candidates.items():
        train, combine = None, "max"
        if isinstance(config, str):
            combine = config
        else:

            def train(samples, config=config):
                return train_from_samples(samples, config, a800)

        result = validate(profile, a800, train, fraction=0.2, seed=0, combine=combine)
        iteration = result["iteration"]
        print(
            f"A800 held-out iteration MAPE, {label}: {iteration['mape_percent']:.2f} % "
            f"(p90 {iteration['p90_percent']:.2f} %, {iteration['samples']} steps)"
        )

    plain = validate(profile, a800, None, factors=default_factors())["iteration"]
    figure = plain["mape_percent"]
    print(f"A800 iteration MAPE, roofline with default factors: {figure:.2f} %")

    h800 = context_on("h800")
    other = read_profile(data / H800, h800.model)
    for combine in ("max", "best"):
        factors = default_factors()
        fitted, _ = calibrate(profile.samples, roofline_for(a800, factors), combine)
        factors.update(fitted)
        iteration = validate(other, h800, None, factors=factors)["iteration"]
        print(
            f"H800 iteration MAPE, roofline calibrated on A800 ({combine}): "
            f"{iteration['mape_percent']:.2f} % (p90 {iteration['p90_percent']:.2f} %, "
            f"{iteration['samples']} steps)"
        )
    plain = validate(other, h800, None, factors=default_factors())["iteration"]
    print(
        f"H800 iteration MAPE, roofline with default factors: "
        f"{plain['mape_percent']:.2f} % (p90 {plain['p90_percent']:.2f} %)"
    )


if __name__ == "__main__":
    main()
