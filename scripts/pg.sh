#!/usr/bin/env bash
# A private PostgreSQL 15 cluster for the tests (Debian's packages, no system service).
#   eval "$(scripts/pg.sh start)"   -> exports REFOLD_PG_URL=postgres://refold@127.0.0.1:PORT/refold
#   scripts/pg.sh stop
#   scripts/pg.sh url
# Data under $REFOLD_PG_DIR (default: $HOME/.cache/refold/pg, or /tmp/refold-pg-root as root,
# since the server runs as the `postgres` user then and cannot enter /root).
set -euo pipefail
bin="${REFOLD_PG_BIN:-/usr/lib/postgresql/15/bin}"
if [ "$(id -u)" = 0 ]; then
  dir="${REFOLD_PG_DIR:-/tmp/refold-pg-root}"
  as() { runuser -u postgres -- "$@"; }
else
  dir="${REFOLD_PG_DIR:-$HOME/.cache/refold/pg}"
  as() { "$@"; }
fi
data="$dir/data"
url() { echo "postgres://refold@127.0.0.1:$(cat "$dir/port")/refold"; }

case "${1:-}" in
  start)
    if [ -f "$dir/port" ] && as "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      echo "export REFOLD_PG_URL=$(url)"; exit 0
    fi
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    if [ ! -f "$data/PG_VERSION" ]; then
      as "$bin/initdb" -D "$data" -U refold --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    echo "$port" > "$dir/port"
    as "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 30 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >&2 \
      || { cat "$dir/server.log" >&2; exit 1; }
    as "$bin/psql" -h 127.0.0.1 -p "$port" -U refold -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='refold'" | grep -q 1 \
      || as "$bin/createdb" -h 127.0.0.1 -p "$port" -U refold refold
    echo "export REFOLD_PG_URL=$(url)"
    ;;
  stop)
    if [ -f "$data/PG_VERSION" ]; then as "$bin/pg_ctl" -D "$data" -m fast stop >&2 || true; fi
    ;;
  url) url ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
