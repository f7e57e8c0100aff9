# Sourced by the benchmark runners (bench/common/run-bench.sh, bench/features/run.sh).

# bench_venv VENV REQUIREMENTS: makes VENV (with $PYTHON, default python3) and installs
# REQUIREMENTS into it, again only when that file has changed.
bench_venv() {
  local venv="$1" req="$2"
  local stamp="$venv/.bench-requirements.sha256"
  local want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
    echo "bench venv: installing $(tr '\n' ' ' <"$req")into $venv" >&2
    [[ -x "$venv/bin/python" ]] || "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" >"$stamp"
  fi
}

# bench_twinloop REPO ARGS…: exports TWINLOOP_BIN, building twinloop in release mode unless it
# is set, --twinloop-bin is given, --help is asked, or --only leaves twinloop out.
bench_twinloop() {
  local repo="$1"
  shift
  local need=1 prev="" a only
  for a in "$@"; do
    only=""
    case "$a" in
      --twinloop-bin | --twinloop-bin=*) need=0 ;;
      -h | --help) need=0 ;;
      --only=*) only="${a#--only=}" ;;
    esac
    [[ "$prev" == "--only" ]] && only="$a"
    [[ -n "$only" && "$only" != *twinloop* && "$only" != both ]] && need=0
    prev="$a"
  done
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/twinloop/target}"
  if [[ $need == 1 && -z "${TWINLOOP_BIN:-}" ]]; then
    echo "building twinloop (release) into $CARGO_TARGET_DIR …" >&2
    (cd "$repo" && cargo build --release -p twinloop-cli)
    export TWINLOOP_BIN="$CARGO_TARGET_DIR/release/twinloop"
  fi
}

# bench_run VENV SCRIPT_DIR REPO RUNNER ARGS…: runs SCRIPT_DIR/bench.py in VENV from REPO, with
# the command line that reproduces the run in TWINLOOP_BENCH_CMD.
bench_run() {
  local venv="$1" dir="$2" repo="$3" cmd="$4" a
  shift 4
  for a in "$@"; do cmd+=" $(printf '%q' "$a")"; done
  export TWINLOOP_BENCH_CMD="$cmd"
  cd "$repo"
  exec "$venv/bin/python" "$dir/bench.py" "$@"
}
