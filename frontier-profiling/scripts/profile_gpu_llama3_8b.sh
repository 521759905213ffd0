#!/usr/bin/env bash
# Profile a Llama-3-8B-shaped model in bf16 on this machine's GPU, in under ten
# minutes, then fit the roofline calibration of the GPU from the profile.
#
#   frontier-profiling/scripts/profile_gpu_llama3_8b.sh [ROOT]
#
# Needs: a CUDA GPU, torch with CUDA in the project's environment (run from the
# repository root), and nothing from the network. Writes
#   ROOT/compute/<device>/meta-llama/Meta-Llama-3-8B/{linear_op,attention}.csv,
#   metadata.json, roofline_calibration.json, and timings.txt
# ROOT defaults to $OUT when set (the device runner's result folder), else
# ./profiles. Each step prints its progress and duration. A rerun resumes: rows
# already measured are skipped.
#
# SMOKE=1 checks the script itself on any machine, GPU or not: numpy on the CPU,
# a grid of a few rows at TP 8, and the calibration fitted as if for an H100
# (meaningless figures; every step runs).
#
# The grid (704 rows at TP 1, 2, 4 and 8; `--dry-run` estimates under a minute of
# kernel time on an H100) is bounded by a time budget per family, so the whole
# script stays under ten minutes even where the estimate is optimistic; rows cut
# by a budget are measured by the next run.
set -euo pipefail

ROOT="${1:-${OUT:-profiles}}"
MODEL="meta-llama/Meta-Llama-3-8B"
if command -v frontier >/dev/null 2>&1; then
    FRONTIER=(frontier)
else
    FRONTIER=(uv run --no-sync frontier)
fi
PYTHON=(python)
command -v python >/dev/null 2>&1 || PYTHON=(uv run --no-sync python)

started=$SECONDS
step() { printf '\n== %s (at %ds)\n' "$1" "$((SECONDS - started))"; }

if [[ "${SMOKE:-0}" == 1 ]]; then
    step "smoke run: numpy on the CPU, a tiny grid"
    GRID=(
        --model "$MODEL" --dtype bfloat16 --out "$ROOT" --device cpu --backend numpy
        --tp 8 --warmup 1 --repeats 3 --num-tokens 1,8,64 --batch-sizes 1,4
        --context-lengths 128,512 --prefill-lengths 16,128 --chunk-sizes 128
        --chunk-contexts 256 --attention-backend NUMPY
    )
    SIM_DEVICE=h100
    # The CPU's times stand in for an H100's only to exercise the steps.
    CHECK_DEVICE=(--set check_device=false)
    TP=8
else
step "checking torch and the GPU"
GPU_NAME="$("${PYTHON[@]}" - <<'PY'
import sys
try:
    import torch
except ImportError:
    sys.exit("torch is not installed: install a CUDA build of torch first")
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device")
print(torch.cuda.get_device_name(0))
PY
)"
echo "GPU: $GPU_NAME"
ATTENTION="$("${PYTHON[@]}" -c 'import importlib.util as u; print("FLASH_ATTN" if u.find_spec("flash_attn") else "TORCH_SDPA")')"
echo "attention kernel: $ATTENTION"

GRID=(
    --model "$MODEL" --dtype bfloat16 --out "$ROOT" --device "$GPU_NAME"
    --backend torch --torch-device cuda --tp 1,2,4,8 --warmup 5 --repeats 20
    --num-tokens 1,2,4,8,16,24,32,48,64,96,128,192,256,384,512,768,1024,1536,2048,3072,4096,6144,8192
    --batch-sizes 1,2,4,8,16,32,48,64,96,128,192,256
    --context-lengths 128,256,512,1024,2048,3072,4096,6144,8192
    --prefill-lengths 16,32,64,128,256,384,512,768,1024,1536,2048,3072,4096,6144,8192
    --chunk-sizes 128,256,512,1024,2048
    --chunk-contexts 256,512,1024,2048,4096,6144
    --attention-backend "$ATTENTION"
)
SIM_DEVICE=""
CHECK_DEVICE=()
TP=1
fi

step "plan"
"${FRONTIER[@]}" profile all "${GRID[@]}" --dry-run

step "linear operators (budget 150 s)"
"${FRONTIER[@]}" profile linear "${GRID[@]}" --time-budget-s 150

step "attention (budget 270 s)"
"${FRONTIER[@]}" profile attention "${GRID[@]}" --time-budget-s 270

DIR="$(find "$ROOT/compute" -type d -path "*/$MODEL" | head -n 1)"
DEVICE="${SIM_DEVICE:-$(basename "$(dirname "$(dirname "$DIR")")")}"
echo "profile: $DIR (catalogue device $DEVICE)"

step "validate"
"${FRONTIER[@]}" profile validate "$DIR"

step "roofline calibration (TP $TP rows)"
"${FRONTIER[@]}" train --predictor roofline --profiles "$DIR" --model "$MODEL" \
    --device "$DEVICE" --tp "$TP" --output "$DIR/roofline_calibration.json"

step "sklearn training error (a check of the profile)"
"${FRONTIER[@]}" train --predictor sklearn --profiles "$DIR" --model "$MODEL" \
    --device "$DEVICE" --tp "$TP" --cache-dir "$ROOT/.cache" "${CHECK_DEVICE[@]}"

step "done"
printf 'total %ds\n' "$((SECONDS - started))" | tee "$DIR/timings.txt"
