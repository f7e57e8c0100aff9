#!/usr/bin/env bash
# Model-serving benchmark: twinloop (ONNX, with and without dynamic batching) vs `mlflow models serve`
# 3.17.2 and MLServer 1.7.1 (sklearn runtime), same models, same wrk load, same run.
#   bench/serving/run.sh [--quick] [--only twinloop,mlflow,mlserver] [--models rf,mlp] [--batches 1,32]
#                        [--concurrency 1,8,64] [--duration S] [--json F] [--markdown F] ...
# Environment:
#   TWINLOOP_SERVING_VENV  this benchmark's venv (default ~/.cache/twinloop/bench-serving-venv)
#   TWINLOOP_BIN           a twinloop binary to use as is (skips the cargo build)
#   CARGO_TARGET_DIR       cargo's target dir (default ~/.cache/twinloop/target)
#   ORT_DYLIB_PATH         libonnxruntime for twinloop (default: the one in the venv's onnxruntime wheel)
#   PYTHON                 interpreter that makes the venv (default python3, 3.10–3.12 for MLServer)
# Needs wrk at /usr/bin/wrk (apt-get install wrk).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${TWINLOOP_SERVING_VENV:-$HOME/.cache/twinloop/bench-serving-venv}"

# Nothing may send telemetry off the machine (MLflow's, others that honour DNT).
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true

# --- venv: (re)install only when requirements.txt changed -----------------------------------
source "$here/../common/lib.sh"
bench_venv "$venv" "$here/requirements.txt"

# --- twinloop binary, then the run -------------------------------------------------------------
bench_twinloop "$repo" "$@"
bench_run "$venv" "$here" "$repo" "bench/serving/run.sh" "$@"
