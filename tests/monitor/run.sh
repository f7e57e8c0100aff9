#!/usr/bin/env bash
# Compare `twinloop monitor drift` with Evidently 0.7.23 on generated data: types, tests,
# scores (abs 1e-9) and verdicts per column, and the dataset verdict.
#   small  500/500     KS (exact), chi-square, Z
#   medium 20k/20k     Wasserstein, Jensen-Shannon; and --method psi / jensenshannon (Sturges
#                      bins) / ks (asymptotic KS), without the ±inf column that crashes Evidently
# Venv: $TWINLOOP_MONITOR_VENV (default ~/.cache/twinloop/monitor-venv), made from requirements.txt.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${TWINLOOP_MONITOR_VENV:-$HOME/.cache/twinloop/monitor-venv}"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
fi
py="$venv/bin/python"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/twinloop/target-monitor}"
cargo build -q -p twinloop-cli --manifest-path "$root/Cargo.toml"
bin="$CARGO_TARGET_DIR/debug/twinloop"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail=0
check() { # name ref cur evidently-args twinloop-args
    local name=$1 ref=$2 cur=$3 eargs=$4 targs=$5
    # shellcheck disable=SC2086
    "$py" -W ignore "$here/evidently_drift.py" "$ref" "$cur" "$work/$name.ev.json" $eargs >/dev/null 2>&1
    # shellcheck disable=SC2086
    "$bin" monitor drift --reference "$ref" --current "$cur" --json "$work/$name.tw.json" $targs >/dev/null
    echo "== $name"
    python3 "$here/compare.py" "$work/$name.ev.json" "$work/$name.tw.json" || fail=1
}
for size in "small 500 500" "medium 20000 20000"; do
    set -- $size
    "$py" "$here/gen_data.py" "$work/$1" "$2" "$3"
    "$py" - "$work/$1" <<'PY'
import sys, pandas as pd
d = sys.argv[1]
for f in ["reference", "current"]:
    pd.read_parquet(f"{d}/{f}.parquet").drop(columns=["num_normal_3"]).to_parquet(f"{d}/{f}_noinf.parquet")
PY
    check "$1-auto" "$work/$1/reference.parquet" "$work/$1/current.parquet" "" ""
    check "$1-psi" "$work/$1/reference_noinf.parquet" "$work/$1/current_noinf.parquet" "psi" "--method psi"
    check "$1-js" "$work/$1/reference_noinf.parquet" "$work/$1/current_noinf.parquet" "jensenshannon" "--method jensenshannon"
done
check "medium-ks" "$work/medium/reference.parquet" "$work/medium/current.parquet" "num_method=ks" "--method ks"
exit $fail
