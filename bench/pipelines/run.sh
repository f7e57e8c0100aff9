#!/usr/bin/env bash
# The pipeline engine's benchmark (issue 13): engine overhead on a 50-step no-op chain (executed,
# with and without the store, and fully cached), the same 5-step chain and 20-wide fan-out in
# twinloop and in Metaflow (local runtime), kfp.local (SubprocessRunner), ZenML (local
# orchestrator) and Dagster (execute_in_process), and `twinloop quickstart`'s wall time.
#   bench/pipelines/run.sh [--quick] [--no-quickstart] [--json F] [--markdown F]
# --quick: one peer run per shape and a single quickstart, about 3 minutes instead of about 8.
# Environment:
#   TWINLOOP_BIN           the twinloop release binary (default $CARGO_TARGET_DIR/release/twinloop;
#                          built when missing with `cargo build --release -p twinloop-cli`, which
#                          takes 15+ minutes on 2 cores)
#   CARGO_TARGET_DIR       cargo's target dir (default ~/.cache/twinloop/target)
#   TWINLOOP_PIPELINES_VENVS  where the peers' venvs go, one per peer so that no peer's pins move
#                          another's dependencies (default ~/.cache/twinloop/bench-pipelines-venv)
#   PYTHON                 interpreter that makes the venvs (default python3, needs >= 3.10)
# A peer that cannot be installed is reported as not measured, with pip's reason.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venvs="${TWINLOOP_PIPELINES_VENVS:-$HOME/.cache/twinloop/bench-pipelines-venv}"

# Nothing may send telemetry off the machine.
export DO_NOT_TRACK=true ZENML_ANALYTICS_OPT_IN=false

peer_args=()
for peer in metaflow kfp zenml dagster; do
  log="$(mktemp)"
  # A shell of its own: `set -e` is ignored inside a function called as an `if` condition, and a
  # failed pip install must not be stamped as done.
  if bash -c 'set -euo pipefail; source "$1"; bench_venv "$2" "$3"' _ "$here/../common/lib.sh" \
    "$venvs/$peer" "$here/requirements-$peer.txt" 2>"$log"; then
    peer_args+=(--peer "$peer=$venvs/$peer/bin/python")
  else
    reason="$(grep -m1 -E '^ERROR' "$log" || tail -n1 "$log")"
    echo "note: $peer not installed: $reason" >&2
    peer_args+=(--missing "$peer=pip install failed: ${reason:0:120}")
  fi
  rm -f "$log"
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/twinloop/target}"
bin="${TWINLOOP_BIN:-$CARGO_TARGET_DIR/release/twinloop}"
if [[ ! -x "$bin" ]]; then
  echo "building twinloop (release) into $CARGO_TARGET_DIR …" >&2
  (cd "$repo" && cargo build --release -p twinloop-cli)
fi

exec python3 "$here/bench.py" --bin "$bin" "${peer_args[@]}" "$@"
