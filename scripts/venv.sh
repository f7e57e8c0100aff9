#!/usr/bin/env bash
# Create (or reuse) the Python venv for tests/compat and install its pinned requirements.
# Idempotent: pip only runs when tests/compat/requirements.txt changed since the last install.
# Prints the venv path on its last line.
#   TWINLOOP_VENV   venv location (default: $HOME/.cache/twinloop/venv)
#   PYTHON          interpreter used to create it (default: python3)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$repo_root/tests/compat/requirements.txt"
venv="${TWINLOOP_VENV:-$HOME/.cache/twinloop/venv}"
python="${PYTHON:-python3}"
stamp="$venv/.twinloop-requirements.sha256"

if [[ ! -f "$req" ]]; then
    echo "venv.sh: $req not found" >&2
    exit 1
fi

# A venv is usable only if its interpreter runs (a moved or half-made venv is rebuilt).
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "venv.sh: creating venv at $venv" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi

# Hash the requirements plus the interpreter version, so a new Python also reinstalls.
want="$( { cat "$req"; "$venv/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"

if [[ "$want" != "$have" ]]; then
    echo "venv.sh: installing $req" >&2
    rm -f "$stamp"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip >&2 || true
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req" >&2
    echo "$want" > "$stamp"
else
    echo "venv.sh: requirements unchanged, nothing to install" >&2
fi

echo "$venv"
