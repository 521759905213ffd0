"""From an empty machine to a simulation of it: profile, validate, train, run.

The real ``frontier`` entry point runs each step in a fresh process, as a user
would type them. The profile is measured with torch when it is installed and with
numpy otherwise (CI has no torch); both write the same format.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.util import find_spec

from .conftest import TINY_DENSE, write_model


def _frontier(*args: str, cwd) -> subprocess.CompletedProcess:
    script = [sys.executable, "-c", "from frontier.cli.app import main; main()"]
    env = {k: v for k, v in os.environ.items() if k != "FRONTIER_PLUGINS"}
    env["COLUMNS"] = "120"
    return subprocess.run(
        [*script, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_profile_all_feeds_train_and_run(tmp_path):
    """`profile all` on the CPU writes a valid profile that `train` accepts and
    `run --predictor sklearn` simulates with (for a GPU only with
    check_device = false: it is the CPU's times)."""
    model = write_model(
        tmp_path / "tiny-llama", {**TINY_DENSE, "max_position_embeddings": 4096}
    )
    backend = "torch" if find_spec("torch") else "numpy"

    profiled = _frontier(
        "profile",
        "all",
        "--model",
        model,
        "--out",
        "profiles",
        "--backend",
        "auto",
        "--num-tokens",
        "1,2,4,8,16,32,64,128,256,512",
        "--batch-sizes",
        "1,2,4,8,16",
        "--context-lengths",
        "64,256,1024",
        "--prefill-lengths",
        "16,64,256,1024",
        "--chunk-sizes",
        "64,256",
        "--chunk-contexts",
        "256,1024",
        "--warmup",
        "1",
        "--repeats",
        "5",
        "--quiet",
        cwd=tmp_path,
    )
    assert profiled.returncode == 0, profiled.stderr
    folder = tmp_path / "profiles" / "compute" / "cpu" / "tiny-llama"
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["backend"] == backend and meta["status"] == "complete"
    # 10 token counts; 5 x 3 decodes + 4 prefills + 2 x 2 chunks = 23
    assert meta["rows"] == {"linear_op.csv": 10, "attention.csv": 23}

    validated = _frontier("profile", "validate", str(folder), cwd=tmp_path)
    assert validated.returncode == 0, validated.stdout
    assert "valid (0 warnings)" in validated.stdout

    train_args = [
        "train",
        "--profiles",
        str(folder),
        "--predictor",
        "sklearn",
        "--model",
        model,
        "--device",
        "a100",
        "--cache-dir",
        "cache",
    ]
    refused = _frontier(*train_args, cwd=tmp_path)
    assert refused.returncode != 0
    assert "measured on the CPU" in refused.stderr
    assert "metadata.json" in refused.stderr

    # A CPU profile stands in for the A100 only when the user says so.
    trained = _frontier(*train_args, "--set", "check_device=false", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr + trained.stdout
    assert "attention_decode" in trained.stdout and "trained in" in trained.stdout

    ran = _frontier(
        "run",
        "--model",
        model,
        "--device",
        "a100",
        "--predictor",
        "sklearn",
        "--set",
        f"predictor.profile_dir={folder}",
        "--set",
        "predictor.check_device=false",
        "--set",
        "predictor.cache_dir=cache",
        "--set",
        "workload.prompt_tokens.max=1024",
        "--set",
        "workload.output_tokens.max=64",
        "-n",
        "40",
        "--qps",
        "20",
        "--no-output",
        "--json",
        "-q",
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["requests"]["completed"] == 40
    assert summary["predictor"]["type"] == "sklearn"
    assert summary["ttft_ms"]["mean"] > 0
