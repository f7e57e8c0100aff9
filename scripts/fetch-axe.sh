#!/usr/bin/env bash
# Fetches axe-core (the accessibility checker tests/compat/test_ui.py injects into every page)
# from the npm registry at a pinned version, checks the tarball against the registry's sha512
# integrity pinned here, and keeps axe.min.js in a test-only cache. It is never embedded in the
# binary nor committed: only the browser tests load it. Idempotent (a file already fetched for
# this pin is kept). Prints the file's path on its last line.
#   TWINLOOP_AXE_DIR   where to keep it (default: $HOME/.cache/twinloop/axe)
set -euo pipefail

version="4.14.1"
integrity="sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="

dir="${TWINLOOP_AXE_DIR:-$HOME/.cache/twinloop/axe}"
out="$dir/axe-core-$version.min.js"
stamp="$out.integrity"

if [[ -f "$out" && "$(cat "$stamp" 2>/dev/null)" == "$integrity" ]]; then
  echo "$out"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# npm fetches the package by name from the registry it is configured with.
tgz="$work/$(cd "$work" && npm pack --silent "axe-core@$version" | tail -n 1)"
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [[ "$got" != "$integrity" ]]; then
  echo "fetch-axe: axe-core@$version: tarball integrity $got, expected $integrity" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$work" package/axe.min.js
mkdir -p "$dir"
cp "$work/package/axe.min.js" "$out.tmp"
mv "$out.tmp" "$out"
echo "$integrity" >"$stamp"
echo "$out"
