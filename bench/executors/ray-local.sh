#!/usr/bin/env bash
# The Ray executor against a real Ray head on this machine (issue 13, A24's optional job):
# installs ray[default] into a venv, starts `ray start --head --num-cpus 1` with its dashboard
# on loopback, runs the ignored tests of crates/twinloop-executors/tests/ray_real.rs against it
# (submit with a working_dir package, env vars, exit codes, logs, reattach, stop), and stops
# the head again. Not part of CI: the install is large and the head takes seconds to start.
#   bench/executors/ray-local.sh [--port 8265]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
port=8265
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    *) echo "unknown option $1 (hint: --port N)" >&2; exit 2 ;;
  esac
done

venv="${TWINLOOP_RAY_VENV:-$HOME/.cache/twinloop/ray-venv}"
ray_version="2.60.0"
if ! "$venv/bin/ray" --version 2>/dev/null | grep -q "$ray_version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "ray[default]==$ray_version"
fi

# `--block` keeps `ray start` in the foreground as the parent of the head's processes; ending
# it (by its pid, not `ray stop`, which stops every Ray on the machine) takes the head down.
export RAY_TMPDIR="$(mktemp -d /tmp/twinloop-ray.XXXXXX)"
"$venv/bin/ray" start --head --block --num-cpus 1 --include-dashboard true \
  --dashboard-host 127.0.0.1 --dashboard-port "$port" --temp-dir "$RAY_TMPDIR" \
  --disable-usage-stats > "$RAY_TMPDIR/start.log" 2>&1 &
head_pid=$!
cleanup() { kill "$head_pid" 2>/dev/null || true; wait "$head_pid" 2>/dev/null || true; rm -rf "$RAY_TMPDIR"; }
trap cleanup EXIT

export TWINLOOP_RAY_ADDRESS="http://127.0.0.1:$port"
for _ in $(seq 1 120); do
  curl -fsS "$TWINLOOP_RAY_ADDRESS/api/version" >/dev/null 2>&1 && break
  kill -0 "$head_pid" 2>/dev/null || { cat "$RAY_TMPDIR/start.log" >&2; exit 1; }
  sleep 1
done
curl -fsS "$TWINLOOP_RAY_ADDRESS/api/version"; echo

cd "$repo"
cargo test -p twinloop-executors --test ray_real -- --ignored --test-threads 1
