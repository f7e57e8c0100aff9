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
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
bench_venv "$venv" "$req"

# --- twinloop binary ---------------------------------------------------------------------------
need_twinloop=1
have_bin_arg=0
prev=""
for a in "$@"; do
  case "$a" in
    --only=mlflow) need_twinloop=0 ;;
    --twinloop-bin|--twinloop-bin=*) have_bin_arg=1 ;;
  esac
  [[ "$prev" == "--only" && "$a" == "mlflow" ]] && need_twinloop=0
  prev="$a"
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/twinloop/target}"
if [[ $need_twinloop == 1 && $have_bin_arg == 0 && -z "${TWINLOOP_BIN:-}" ]]; then
  echo "building twinloop (release) into $CARGO_TARGET_DIR …" >&2
  (cd "$repo" && cargo build --release -p twinloop-cli)
  export TWINLOOP_BIN="$CARGO_TARGET_DIR/release/twinloop"
fi

# --- run ---------------------------------------------------------------------------------------
cmd="bench/$bench/run.sh"
for a in "$@"; do cmd+=" $(printf '%q' "$a")"; done
export TWINLOOP_BENCH_CMD="$cmd"
cd "$repo"
exec "$venv/bin/python" "$here/bench.py" "$@"
