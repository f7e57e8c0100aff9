#!/usr/bin/env bash
# Load benchmark (issue 17 part 6; docs/reliability.md, "Load"): the full runs of the load tests
# in crates/twinloop-cli/tests/cli/load.rs, against a release build of twinloop.
#   bench/load/run.sh [tracking|overload|v2|soak|all] [--clients N] [--seconds S]
#     tracking  N keep-alive clients (default 1000) of mixed tracking traffic for S s (default 60):
#               60 % log-batch, 10 % get run, 10 % search, 10 % history, 5 % artifact upload and
#               5 % download of 16 KiB; SQLite store, local artifacts
#     overload  log-batch offered at twice the measured saturation rate for S s (default 20),
#               default limits: how much is shed, p99 of the rest, peak RSS, time to recover
#     v2        N concurrent V2 clients (default 256) of `twinloop serve` for S s (default 60)
#     soak      the tracking mix from N clients (default 200) for S s (default 600) on one server,
#               a line a minute; RSS at the end within 5 % of RSS after minute 2 (not in `all`)
# Each prints one line: throughput, p50/p99, errors, shed (429/503, retried), peak server RSS.
# Environment:
#   TWINLOOP_BIN      the server binary to load (default: cargo build --release -p twinloop-cli)
#   CARGO_TARGET_DIR  cargo's target dir (default ~/.cache/twinloop/target)
#   ORT_DYLIB_PATH    libonnxruntime for `v2` (scripts/install-onnxruntime.sh prints it)
# The load client is the test binary itself (a debug build, on the same cores as the server):
# on a small machine it takes a share of the CPU the server would otherwise have.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/twinloop/target}"

what="${1:-all}"
[[ $# -gt 0 ]] && shift
while [[ $# -gt 0 ]]; do
  case "$1" in
    --clients) export TWINLOOP_LOAD_CLIENTS="$2"; shift 2 ;;
    --seconds) export TWINLOOP_LOAD_SECONDS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$what" in
  tracking | overload | v2 | soak) tests=("load::bench_$what") ;;
  all) tests=(load::bench_tracking load::bench_overload load::bench_v2) ;;
  *) echo "usage: $0 [tracking|overload|v2|soak|all] [--clients N] [--seconds S]" >&2; exit 2 ;;
esac

cd "$repo"
if [[ -z "${TWINLOOP_BIN:-}" ]]; then
  echo "building twinloop (release) into $CARGO_TARGET_DIR …" >&2
  cargo build --release -p twinloop-cli
  TWINLOOP_BIN="$CARGO_TARGET_DIR/release/twinloop"
fi
export TWINLOOP_LOAD_BIN="$TWINLOOP_BIN"
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) git $(git rev-parse --short HEAD) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); server $TWINLOOP_LOAD_BIN"
for t in "${tests[@]}"; do
  cargo test -q -p twinloop-cli --test cli -- --ignored --exact "$t" --nocapture --test-threads 1 2>&1 \
    | grep -E '^load |panicked|^test result' || true
done
