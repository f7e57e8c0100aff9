#!/usr/bin/env bash
# Shared runner of the peer benchmarks (MLflow 3.17.2 vs twinloop, same workloads, same run):
#   bench/common/run-bench.sh tracking|registry [--quick] [--only twinloop|mlflow|both] [--json FILE] [--markdown FILE] ...
# Environment:
#   TWINLOOP_BENCH_VENV  the benchmarks' venv (default ~/.cache/twinloop/bench-venv)
#   TWINLOOP_BIN         a twinloop binary to use as is (skips the cargo build)
#   CARGO_TARGET_DIR     cargo's target dir (default ~/.cache/twinloop/target)
#   PYTHON               interpreter that makes the venv (default python3, needs >= 3.10)
set -euo pipefail

bench="${1:?which benchmark: tracking or registry}"
shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../$bench" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${TWINLOOP_BENCH_VENV:-$HOME/.cache/twinloop/bench-venv}"
# One venv serves every peer benchmark.
req="$repo/bench/tracking/requirements.txt"

# The benchmark must never send telemetry off the machine (client and server both).
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true

# --- venv: (re)install only when requirements.txt changed -----------------------------------
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_venv "$venv" "$req"

# --- twinloop binary, then the run -------------------------------------------------------------
bench_twinloop "$repo" "$@"
bench_run "$venv" "$here" "$repo" "bench/$bench/run.sh" "$@"
