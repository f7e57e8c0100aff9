#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 on a random loopback port and prints its admin URL.
#   scripts/pg-throwaway.sh start DIR   -> prints postgresql://postgres@127.0.0.1:PORT/postgres
#   scripts/pg-throwaway.sh stop DIR
#   scripts/pg-throwaway.sh crash DIR    -> stops it as a crash would (-m immediate), keeps its data
#   scripts/pg-throwaway.sh resume DIR   -> starts it again on the same port (crash recovery)
# PostgreSQL refuses to run as root, so the server runs as the `postgres` user.
set -euo pipefail
cmd=${1:?start|stop|crash|resume}
dir=${2:?data directory}

pg_bin() {
  for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    [ -x "$d/$1" ] && { echo "$d/$1"; return; }
  done
  command -v "$1"
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    su -s /bin/sh postgres -c "$*"
  else
    sh -c "$*"
  fi
}

case "$cmd" in
start)
  if [ -z "$(pg_bin initdb)" ]; then
    echo "PostgreSQL binaries not found; installing postgresql" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
  fi
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
  fi
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_postgres "'$(pg_bin initdb)' -D '$dir/data' -U postgres --auth=trust -E UTF8 >'$dir/initdb.log' 2>&1"
  as_postgres "'$(pg_bin pg_ctl)' -D '$dir/data' -l '$dir/server.log' -w -t 60 \
    -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200\" start >/dev/null"
  echo "postgresql://postgres@127.0.0.1:$port/postgres"
  ;;
crash)
  as_postgres "'$(pg_bin pg_ctl)' -D '$dir/data' -m immediate stop >/dev/null"
  ;;
resume)
  # `restart` reuses the options of the last start (postmaster.opts), the port among them.
  as_postgres "'$(pg_bin pg_ctl)' -D '$dir/data' -l '$dir/server.log' -w -t 60 restart >/dev/null 2>&1"
  ;;
stop)
  [ -d "$dir/data" ] && as_postgres "'$(pg_bin pg_ctl)' -D '$dir/data' -m immediate stop >/dev/null 2>&1" || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop|crash|resume DIR" >&2
  exit 2
  ;;
esac
