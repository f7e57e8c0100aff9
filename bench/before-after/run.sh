#!/usr/bin/env bash
# Before/after: the same twinloop-only workloads of the tracking, registry and serving benchmarks
# on two twinloop binaries, alternating per benchmark so both see the same machine, then one
# table of after/before ratios. For refactors that must not regress ("no change beyond noise").
#   bench/before-after/run.sh BEFORE_BIN AFTER_BIN [--out DIR] [--serving-duration S] [--rounds N] [--quick]
# Each benchmark's own run.sh makes its venv; serving needs wrk (apt-get install wrk).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
before="${1:?before binary}" after="${2:?after binary}"
shift 2
out="$(mktemp -d /tmp/bench-before-after.XXXXXX)" duration=5 rounds=2 quick=() matrix=(--batches 1,32 --concurrency 1,64)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --serving-duration) duration="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --quick) quick=(--quick); duration=2; matrix=(--models rf --batches 1 --concurrency 1,8); shift ;;
    *) echo "unknown option $1 (hint: --out DIR, --serving-duration S, --rounds N, --quick)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
for bin in "$before" "$after"; do
  [[ -x "$bin" ]] || { echo "$bin is not an executable twinloop binary" >&2; exit 2; }
done

# Rounds alternate the order (before, after; then after, before) so a drift in the machine's
# load during the run does not favour one side.
for round in $(seq 1 "$rounds"); do
  if (( round % 2 )); then order=(before after); else order=(after before); fi
  for side in "${order[@]}"; do
    bin="$before"; [[ $side == after ]] && bin="$after"
    echo "== round $round: $side ($bin)" >&2
    TWINLOOP_BIN="$bin" bash "$repo/bench/tracking/run.sh" --only twinloop --no-save "${quick[@]}" \
      --json "$out/tracking-$side-$round.json" >"$out/tracking-$side-$round.log" 2>&1
    TWINLOOP_BIN="$bin" bash "$repo/bench/registry/run.sh" --only twinloop --no-save "${quick[@]}" \
      --json "$out/registry-$side-$round.json" >"$out/registry-$side-$round.log" 2>&1
    TWINLOOP_BIN="$bin" bash "$repo/bench/serving/run.sh" --only twinloop --duration "$duration" "${matrix[@]}" \
      --json "$out/serving-$side-$round.json" >"$out/serving-$side-$round.log" 2>&1
  done
done
python3 "$here/compare.py" "$out"
echo "results and logs: $out" >&2
