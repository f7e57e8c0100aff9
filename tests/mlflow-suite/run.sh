#!/usr/bin/env bash
# MLflow's own tracking tests as the judge: run the selected files of an MLflow checkout against
# `twinloop server` and/or the pinned `mlflow` (the control), then compare per test.
#
#   tests/mlflow-suite/run.sh MLFLOW_CHECKOUT [--against twinloop|mlflow|both] [-- PYTEST_ARGS…]
#
# MLFLOW_CHECKOUT is a directory holding MLflow's tests/ (and its pyproject.toml, whose pytest
# settings the tests expect); nothing of it is copied into this repository.
#   TWINLOOP_BIN         the binary (default: $CARGO_TARGET_DIR/debug/twinloop, else target/debug)
#   MLFLOW_SUITE_VENV    venv with requirements.txt (default: ~/.cache/twinloop/mlflow-suite-venv)
#   MLFLOW_SUITE_OUT     where junit-<target>.xml, deselected-<target>.json, logs and report.md go
#                        (default: ./mlflow-suite-out)
#   MLFLOW_SUITE_TIMEOUT per-test limit in seconds (default 300)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
checkout="$(cd "$1" && pwd)"; shift
against=both
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --against) against="${2:?--against needs twinloop, mlflow or both}"; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        *) usage ;;
    esac
done
case "$against" in twinloop) targets=(twinloop) ;; mlflow) targets=(mlflow) ;; both) targets=(mlflow twinloop) ;; *) usage ;; esac
[[ -d "$checkout/tests/tracking" ]] || { echo "run.sh: $checkout/tests/tracking not found" >&2; exit 2; }

files=(
    tests/tracking/test_rest_tracking.py
    tests/tracking/test_model_registry.py
    tests/tracking/test_mlflow_artifacts.py
    tests/tracking/test_tracking.py
    tests/tracking/test_client.py
    tests/tracking/fluent/test_fluent.py
    tests/tracking/_model_registry/test_model_registry_fluent.py
)

# --- the venv: pinned mlflow, pytest and what the selected files import ---------------------------
venv="${MLFLOW_SUITE_VENV:-$HOME/.cache/twinloop/mlflow-suite-venv}"
req="$here/requirements.txt"
stamp="$venv/.mlflow-suite-requirements.sha256"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$venv"
    python3 -m venv "$venv"
fi
want="$( { cat "$req"; "$venv/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
if [[ "$want" != "$(cat "$stamp" 2>/dev/null || true)" ]]; then
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req" >&2
    echo "$want" > "$stamp"
fi

out="$(mkdir -p "${MLFLOW_SUITE_OUT:-mlflow-suite-out}" && cd "${MLFLOW_SUITE_OUT:-mlflow-suite-out}" && pwd)"
bin="${TWINLOOP_BIN:-${CARGO_TARGET_DIR:-$repo_root/target}/debug/twinloop}"

# The client fails fast instead of retrying a 5xx for minutes; no telemetry (no network here);
# loopback never goes through a proxy. Both targets run under the same settings.
export MLFLOW_HTTP_REQUEST_MAX_RETRIES=0 MLFLOW_HTTP_REQUEST_TIMEOUT=30
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true GIT_PYTHON_REFRESH=quiet
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
unset MLFLOW_TRACKING_URI MLFLOW_REGISTRY_URI MLFLOW_EXPERIMENT_ID MLFLOW_EXPERIMENT_NAME MLFLOW_RUN_ID

# test_mlflow_artifacts.py launches `mlflow server` by name: the pinned one, from the venv.
export PATH="$venv/bin:$PATH"

status=0
for target in "${targets[@]}"; do
    if [[ "$target" == twinloop && ! -x "$bin" ]]; then
        echo "run.sh: $bin is not an executable twinloop binary (set TWINLOOP_BIN)" >&2
        exit 2
    fi
    echo "run.sh: MLflow's suite against $target (log: $out/pytest-$target.log)" >&2
    (
        cd "$checkout"
        MLFLOW_SUITE_TARGET="$target" TWINLOOP_BIN="$bin" MLFLOW_SUITE_OUT="$out" \
        PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" \
            "$venv/bin/python" -m pytest -p suite_plugin -p no:cacheprovider \
            --timeout "${MLFLOW_SUITE_TIMEOUT:-300}" --color=no -rA \
            --junitxml "$out/junit-$target.xml" "${files[@]}" "${extra[@]}"
    ) > "$out/pytest-$target.log" 2>&1 || status=$?
    tail -n 3 "$out/pytest-$target.log" >&2
done

"$venv/bin/python" "$here/compare.py" "$out" > "$out/report.md"
echo "run.sh: report in $out/report.md" >&2
# pytest's 1 means "some tests failed", which the report classifies; anything else is the harness's.
[[ $status -le 1 ]]
