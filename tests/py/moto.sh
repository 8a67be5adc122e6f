#!/usr/bin/env bash
# Starts/stops a local S3 (moto_server) for the table tests.
#   eval "$(bash tests/py/moto.sh start)"   -> exports REFOLD_S3_ENDPOINT
#   bash tests/py/moto.sh stop
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${REFOLD_VENV:-$HOME/.cache/refold/venv}"
state="${REFOLD_MOTO_DIR:-$HOME/.cache/refold/moto}"
mkdir -p "$state"
case "${1:-}" in
  start)
    if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      echo "export REFOLD_S3_ENDPOINT=$(cat "$state/endpoint")"; exit 0
    fi
    eval "$(bash "$here/venv.sh")" >&2
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    # moto_server with Glue's UpdateTable VersionId check (moto_server.py)
    nohup "$venv/bin/python" "$here/moto_server.py" -H 127.0.0.1 -p "$port" >"$state/log" 2>&1 &
    echo $! > "$state/pid"
    for _ in $(seq 1 100); do
      if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then break; fi
      sleep 0.1
    done
    echo "http://127.0.0.1:$port" > "$state/endpoint"
    echo "export REFOLD_S3_ENDPOINT=http://127.0.0.1:$port"
    ;;
  stop)
    if [ -f "$state/pid" ]; then kill "$(cat "$state/pid")" 2>/dev/null || true; rm -f "$state/pid"; fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
