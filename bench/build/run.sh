#!/usr/bin/env bash
# The first build a user meets: `cargo install --locked --path crates/twinloop-cli` (the README's
# set-up line) is a release build of the `twinloop` binary from nothing. This runs the same build
# in an empty target directory (crates already downloaded) and prints wall time, CPU time, peak
# memory, the binary's size and the target directory's size.
#   bash bench/build/run.sh [--keep DIR]     (DIR: keep the target directory there)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="$(mktemp -d /tmp/twinloop-build.XXXXXX)"
keep=""
[ "${1:-}" = "--keep" ] && keep="${2:?--keep needs a directory}"
cd "$repo"
cargo fetch --locked >/dev/null
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)'), $(nproc) cores, $(rustc --version)"
/usr/bin/time -f '%e %U %S %M' -o "$target/time" \
  env CARGO_TARGET_DIR="$target" CARGO_INCREMENTAL=0 cargo build --locked --release --bin twinloop --quiet
read -r wall user sys rss_kb < "$target/time"
binary="$target/release/twinloop"
python3 - "$wall" "$user" "$sys" "$rss_kb" "$(stat -c %s "$binary")" "$(du -sb "$target" | cut -f1)" <<'PY'
import sys
wall, user, sys_, rss_kb, binary, tdir = map(float, sys.argv[1:])
print(f"wall        {wall / 60:.1f} min")
print(f"CPU         {(user + sys_):.0f} s ({(user + sys_) / wall:.2f} cores busy on average)")
print(f"peak RSS    {rss_kb / 1024:.0f} MiB (one process: the largest rustc or the linker)")
print(f"binary      {binary / 1e6:.0f} MB")
print(f"target dir  {tdir / 1e9:.2f} GB")
PY
if [ -n "$keep" ]; then
  rm -rf "$keep" && mv "$target" "$keep"
else
  rm -rf "$target"
fi
