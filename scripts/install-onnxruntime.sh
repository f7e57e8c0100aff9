#!/usr/bin/env bash
# Puts ONNX Runtime's shared library where twinloop looks for it (see docs/serving.md):
# $TWINLOOP_HOME/onnxruntime/libonnxruntime.so.1.32.0, default ~/.cache/twinloop/onnxruntime/.
# The library comes from the pinned `onnxruntime` wheel on PyPI (the same build the Python
# converters are tested against); pip only downloads it, nothing is installed into a Python.
# Idempotent: does nothing when the library is already there. Prints its path on the last line.
set -euo pipefail

version=1.32.0
home="${TWINLOOP_HOME:-$HOME/.cache/twinloop}"
dest="$home/onnxruntime"
lib="$dest/libonnxruntime.so.$version"

if [[ ! -f "$lib" ]]; then
  mkdir -p "$dest"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  wheel="$(ls "$home"/ort/onnxruntime-"$version"-*.whl 2>/dev/null | head -n 1 || true)"
  if [[ -z "$wheel" ]]; then
    # A throwaway venv gives a pip even where the system Python has none.
    python3 -m venv "$tmp/venv"
    "$tmp/venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
      --only-binary=:all: -d "$tmp" "onnxruntime==$version" >&2
    wheel="$(ls "$tmp"/onnxruntime-"$version"-*.whl | head -n 1)"
  fi
  python3 - "$wheel" "$lib" <<'PY'
import shutil, sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("capi/" + target.rsplit("/", 1)[1]))
    with z.open(name) as src, open(target + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  mv "$lib.part" "$lib"
  echo "install-onnxruntime: $lib" >&2
fi
echo "$lib"
