#!/usr/bin/env bash
# Vendors the web UI's third-party files from the npm registry at pinned versions, so that no
# build (and no CI run) ever needs node, npm or the network:
#   scripts/vendor-ui.sh            download, check against crates/twinloop-ui/assets/VENDOR.lock,
#                                   write crates/twinloop-ui/assets/vendor/
#   scripts/vendor-ui.sh --update   the same, but (re)write VENDOR.lock from what was downloaded
#                                   (after changing a version below; review and commit both)
# Each tarball is checked against the registry's own sha512 integrity pinned here before
# anything is extracted. The offline check of the committed files is a Rust test
# (twinloop-ui's `vendored_files_match_the_lock`), which runs with every `cargo test`.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
assets="$repo/crates/twinloop-ui/assets"
lock="$assets/VENDOR.lock"
update=0
[ "${1:-}" = "--update" ] && update=1

# package  version  npm integrity  files to take (tarball path=vendored name)
packages=(
  "htmx.org 2.0.11 sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA== package/dist/htmx.min.js=htmx.min.js package/LICENSE=htmx.LICENSE"
  "uplot 1.6.32 sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw== package/dist/uPlot.iife.min.js=uPlot.iife.min.js package/dist/uPlot.min.css=uPlot.min.css package/LICENSE=uPlot.LICENSE"
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
new_lock="$work/VENDOR.lock"
{
  echo "# sha256 of each vendored file, as sha256sum writes it (check: cd assets && sha256sum -c VENDOR.lock)."
  echo "# Written by scripts/vendor-ui.sh --update; the versions are in that script."
} >"$new_lock"

for entry in "${packages[@]}"; do
  read -r name version integrity files <<<"$entry"
  # npm fetches the package by name from the registry it is configured with.
  tgz="$work/$(cd "$work" && npm pack --silent "$name@$version" | tail -n 1)"
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  if [ "$got" != "$integrity" ]; then
    echo "vendor-ui: $name@$version: tarball integrity $got, expected $integrity" >&2
    exit 1
  fi
  mkdir -p "$work/$name"
  tar -xzf "$tgz" -C "$work/$name"
  for pair in $files; do
    src="${pair%%=*}"
    dst="${pair#*=}"
    cp "$work/$name/$src" "$work/$dst"
    echo "$(sha256sum "$work/$dst" | cut -d' ' -f1)  vendor/$dst" >>"$new_lock"
  done
done

if [ "$update" = 1 ]; then
  cp "$new_lock" "$lock"
elif ! diff -u "$lock" "$new_lock"; then
  echo "vendor-ui: downloaded files differ from VENDOR.lock (run with --update after a version change)" >&2
  exit 1
fi
mkdir -p "$assets/vendor"
grep -v '^#' "$lock" | while read -r _ path; do
  cp "$work/${path#vendor/}" "$assets/$path"
done
(cd "$assets" && sha256sum --quiet -c VENDOR.lock)
echo "vendor-ui: $(grep -vc '^#' "$lock") files in $assets/vendor match VENDOR.lock"
