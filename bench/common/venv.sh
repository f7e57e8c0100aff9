# Sourced by the benchmark runners: bench_venv VENV REQUIREMENTS makes VENV (with $PYTHON, default
# python3) and installs REQUIREMENTS into it, again only when that file has changed.
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
