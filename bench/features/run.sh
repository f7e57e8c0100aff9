#!/usr/bin/env bash
# Feature-store benchmark: twinloop vs DuckDB (ASOF JOIN) and Feast 0.67.0 (duckdb offline store,
# sqlite online store, feast serve), same data, same run.
#   bench/features/run.sh [--scales small,medium,large] [--only twinloop,duckdb,feast] [--json F] [--markdown F] ...
# Environment:
#   TWINLOOP_FEATURES_VENV  this benchmark's venv (default ~/.cache/twinloop/bench-features-venv)
#   TWINLOOP_BIN            a twinloop binary to use as is (skips the cargo build)
#   CARGO_TARGET_DIR        cargo's target dir (default ~/.cache/twinloop/target)
#   PYTHON                  interpreter that makes the venv (default python3, needs >= 3.10)
# Generated data is cached in ~/.cache/twinloop/bench-features-data (--data-dir); `wrk` must be on
# PATH for the throughput figures (apt-get install wrk).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${TWINLOOP_FEATURES_VENV:-$HOME/.cache/twinloop/bench-features-venv}"
req="$here/requirements.txt"

# Nothing may send telemetry off the machine (Feast's usage reporting, others that honour DNT).
export FEAST_USAGE=False DO_NOT_TRACK=true

# --- venv: (re)install only when requirements.txt changed -----------------------------------
source "$(dirname "${BASH_SOURCE[0]}")/../common/lib.sh"
bench_venv "$venv" "$req"

command -v wrk >/dev/null || echo "note: wrk is not installed; the online throughput rows will be missing" >&2

# --- twinloop binary, then the run -------------------------------------------------------------
bench_twinloop "$repo" "$@"
bench_run "$venv" "$here" "$repo" "bench/features/run.sh" "$@"
