#!/usr/bin/env bash
# Creates (or updates) the Python venv the table tests use for PyIceberg and moto, and prints
# the variable to export. Usage: eval "$(bash tests/py/venv.sh)"
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${REFOLD_VENV:-$HOME/.cache/refold/venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
stamp="$venv/.requirements.sha"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  "$venv/bin/pip" install -q -r "$here/requirements.txt" >&2
  echo "$want" > "$stamp"
fi
echo "export REFOLD_PYTHON=$venv/bin/python"
