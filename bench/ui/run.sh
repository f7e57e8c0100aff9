#!/usr/bin/env bash
# Web UI benchmark: twinloop's UI vs MLflow 3.17.2's on the same data, in headless Chromium.
#   bench/ui/run.sh [--quick] [--only twinloop|both] [--runs N] [--points N] [--repeats N] [--markdown FILE]
# It uses the compat suite's venv (scripts/venv.sh: the pinned mlflow and Playwright) and Debian's
# chromium; see bench.py beside this file for what is measured.
# Environment:
#   TWINLOOP_BIN      a twinloop binary to use as is (skips the release build)
#   CARGO_TARGET_DIR  cargo's target dir (default ~/.cache/twinloop/target)
#   TWINLOOP_VENV     the compat venv (default ~/.cache/twinloop/venv)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# Nothing leaves the machine: no telemetry, no browser download.
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

venv="$(bash "$repo/scripts/venv.sh" | tail -n 1)"
source "$repo/bench/common/lib.sh"
bench_twinloop "$repo" "$@"
bench_run "$venv" "$here" "$repo" "bench/ui/run.sh" "$@"
