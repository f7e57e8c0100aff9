#!/usr/bin/env bash
# Evidently 0.7.23 vs twinloop on the same generated data (50 columns, tests/monitor/gen_data.py),
# each a fresh child process: wall time, CPU time and peak RSS, and the ratios.
#   SIZES="100000 1000000" (default "100000"); each size means N reference + N current rows.
# twinloop is `twinloop monitor drift --json` from $TWINLOOP_BIN, else a release build of the CLI.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${TWINLOOP_MONITOR_VENV:-$HOME/.cache/twinloop/monitor-venv}"
[[ -x "$venv/bin/python" ]] || { python3 -m venv "$venv"; "$venv/bin/pip" install -q -r "$root/tests/monitor/requirements.txt"; }
py="$venv/bin/python"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/twinloop/target}"
if [[ -z "${TWINLOOP_BIN:-}" ]]; then
    cargo build -q --release -p twinloop-cli --manifest-path "$root/Cargo.toml"
fi
bin="${TWINLOOP_BIN:-$CARGO_TARGET_DIR/release/twinloop}"
data="${BENCH_DATA:-$HOME/.cache/twinloop/bench-monitoring-data}"
for n in ${SIZES:-100000}; do
    d="$data/$n"
    [[ -f "$d/current.parquet" ]] || "$py" "$root/tests/monitor/gen_data.py" "$d" "$n" "$n"
    echo "== $n / $n rows x 50 columns (load $(cut -d' ' -f1 /proc/loadavg))"
    ev=$("$py" "$here/measure.py" evidently -- "$py" -W ignore "$root/tests/monitor/evidently_drift.py" "$d/reference.parquet" "$d/current.parquet" "$d/ev.json")
    tw=$("$py" "$here/measure.py" twinloop -- "$bin" monitor drift --reference "$d/reference.parquet" --current "$d/current.parquet" --json "$d/tw.json")
    echo "$ev"; echo "$tw"
    python3 - "$ev" "$tw" <<'PY'
import sys
def parse(line):
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
e, t = parse(sys.argv[1]), parse(sys.argv[2])
print(f"speed: twinloop {e['wall_s'] / t['wall_s']:.1f}x faster (wall); memory: {t['peak_rss_mb'] / e['peak_rss_mb']:.2f} of Evidently's peak RSS")
PY
    python3 "$root/tests/monitor/compare.py" "$d/ev.json" "$d/tw.json" | head -4 || true
done
