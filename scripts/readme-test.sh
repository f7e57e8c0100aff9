#!/usr/bin/env bash
# Runs README.md's commands literally, in order, as a new user pastes them (see
# scripts/readme_blocks.py for how blocks are chosen), in a copy of the repository, against the
# twinloop binary already built by scripts/test.sh ($TWINLOOP_BIN). Fails on the first command
# that fails. Uses the README's own ports (5000, 6566, 8080, 8081, 9000): they must be free.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${TWINLOOP_BIN:?set TWINLOOP_BIN to the twinloop binary}"
for port in 5000 6566 8080 8081 9000; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "readme-test: port $port is in use; the README's commands need it" >&2
    exit 1
  fi
done

work="$(mktemp -d /tmp/twinloop-readme.XXXXXX)"
export README_LOGS="$work/logs"
mkdir -p "$README_LOGS" "$work/bin" "$work/repo"
ln -s "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" "$work/bin/twinloop"
(cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$work/repo")

python3 "$repo/scripts/readme_blocks.py" "$repo/README.md" > "$work/readme.sh"

cat > "$work/prelude.sh" <<'SH'
wait_for() {
  for _ in $(seq 1 600); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "readme-test: nothing answered at $1; its log:" >&2
  cat "$2" >&2
  return 1
}
SH

status=0
(
  cd "$work/repo"
  export PATH="$work/bin:$PATH"
  # Each run starts from nothing, as a new user does.
  unset MLFLOW_TRACKING_URI VIRTUAL_ENV
  # A session of its own: every process the README starts (servers, `&` jobs) is in its group.
  exec setsid bash -c "source '$work/prelude.sh'; source '$work/readme.sh'"
) > "$work/run.log" 2>&1 </dev/null &
group=$!
wait "$group" || status=$?
cat "$work/run.log"
kill -TERM -- "-$group" 2>/dev/null || true
sleep 2
kill -KILL -- "-$group" 2>/dev/null || true
for log in "$README_LOGS"/*.log; do
  [ -f "$log" ] || continue
  if [ "$status" -ne 0 ]; then
    echo "--- $log"; tail -n 40 "$log"
  fi
done
sleep 1
rm -rf "$work"
if [ "$status" -ne 0 ]; then
  echo "readme-test: FAILED (exit $status)" >&2
  exit "$status"
fi
echo "readme-test: every README command ran"
