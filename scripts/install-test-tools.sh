#!/usr/bin/env bash
# Installs everything refold's tests need on a fresh machine (Debian 12, Rust toolchain
# present, no Docker) into $HOME/.cache/refold/ (override with REFOLD_CACHE):
#   venv/   Python venv: pyiceberg, pyarrow, moto[server] (local S3), cargo-lambda, duckdb,
#           plus tests/py/requirements.txt when present
#   tools/  tansu (an Apache-Kafka-compatible broker in Rust, sqlite storage); bin/sam and
#           bin/cfn-lint, linked from
#   sam-venv/ aws-sam-cli and cfn-lint (the SAM template's checks), apart from venv/
# Idempotent: safe to run twice; what is there is not installed again.
#   REFOLD_SKIP_TANSU=1   skip the tansu build (about 11 min cold on 2 cores)
# Prints where each tool is at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${REFOLD_CACHE:-$HOME/.cache/refold}"
VENV="$CACHE/venv"
TOOLS="$CACHE/tools"
LOGS="$CACHE/logs"
mkdir -p "$CACHE" "$TOOLS" "$LOGS"

# Pinned versions (resolved together on Python 3.11, Nov 2026). tests/py/requirements.txt,
# when present, pins pyiceberg/pyarrow/moto itself (with more extras): then only the tools
# it lacks are added (pip's resolver fails on the same package twice with other extras).
PY_BASE_PINS=(
  "pyiceberg[sql-sqlite,pyarrow,glue]==0.12.0"
  "boto3==1.44.8"
  "pyarrow==22.0.0"
  "moto[server]==5.2.5"
)
PY_TOOL_PINS=(
  "cargo-lambda==1.9.2"
  "duckdb==1.4.4"
)
TANSU_VERSION="0.6.0"
# The SAM template's checks (`sam validate --lint`, `cfn-lint`): a venv of their own, since
# aws-sam-cli pins boto3 exactly (and click, pydantic) where pyiceberg/moto want others.
SAM_VENV="$CACHE/sam-venv"
SAM_PINS=(
  "aws-sam-cli==1.170.0"
  "cfn-lint==1.58.0"
)

log() { printf '[install-test-tools] %s\n' "$*" >&2; }

# Serialize concurrent runs of this script (tests may call it in parallel).
exec 9>"$CACHE/.install.lock"
flock 9

# --- apt: nothing is required by default ------------------------------------------------
# rdkafka (default features) bundles librdkafka and needs only make/perl/cc, present on the
# image. Only the optional `cmake-build` feature needs cmake + libcurl4-openssl-dev.
need_apt=()
for p in ${REFOLD_APT_EXTRA:-}; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  log "apt: installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q "${need_apt[@]}"
fi

# --- Python venv -----------------------------------------------------------------------
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  "$PY" -m venv "$VENV"
fi
reqs=("${PY_TOOL_PINS[@]}")
pip_args=()
if [ -f "$ROOT/tests/py/requirements.txt" ]; then
  pip_args+=(-r "$ROOT/tests/py/requirements.txt")
else
  reqs+=("${PY_BASE_PINS[@]}")
fi
# Skip pip entirely when every pin is already satisfied (no network on a second run).
if "$VENV/bin/python" - "${reqs[@]}" ${pip_args[@]+"${pip_args[@]}"} <<'PY' 2>/dev/null
import sys, re
from importlib.metadata import version, PackageNotFoundError
args = sys.argv[1:]
pins = []
i = 0
while i < len(args):
    if args[i] == "-r":
        for line in open(args[i + 1]):
            line = line.split("#")[0].strip()
            if line:
                pins.append(line)
        i += 2
    else:
        pins.append(args[i]); i += 1
for p in pins:
    m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)$", p)
    if not m:
        sys.exit(1)
    try:
        if version(m.group(1)) != m.group(3):
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
sys.exit(0)
PY
then
  log "venv: all pins already installed"
else
  log "venv: pip install ${reqs[*]} ${pip_args[*]:-}"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${reqs[@]}" ${pip_args[@]+"${pip_args[@]}"}
fi

# --- aws-sam-cli, cfn-lint ---------------------------------------------------------------
if [ ! -x "$SAM_VENV/bin/python" ]; then
  log "creating venv $SAM_VENV"
  "$PY" -m venv "$SAM_VENV"
fi
sam_ok=1
for pin in "${SAM_PINS[@]}"; do
  name="${pin%%==*}"; want="${pin##*==}"
  have="$("$SAM_VENV/bin/python" -c "from importlib.metadata import version; print(version('$name'))" 2>/dev/null || true)"
  [ "$have" = "$want" ] || sam_ok=0
done
if [ "$sam_ok" = 1 ]; then
  log "sam-venv: all pins already installed"
else
  log "sam-venv: pip install ${SAM_PINS[*]}"
  "$SAM_VENV/bin/pip" install -q --disable-pip-version-check "${SAM_PINS[@]}"
fi
mkdir -p "$TOOLS/bin"
ln -sf "$SAM_VENV/bin/sam" "$TOOLS/bin/sam"
ln -sf "$SAM_VENV/bin/cfn-lint" "$TOOLS/bin/cfn-lint"

# --- tansu -------------------------------------------------------------------------------
TANSU="$TOOLS/bin/tansu"
if [ -x "$TANSU" ]; then
  log "tansu: already installed"
elif [ "${REFOLD_SKIP_TANSU:-0}" = "1" ]; then
  log "tansu: skipped (REFOLD_SKIP_TANSU=1)"
else
  # A background install started earlier (same root) may still be running: wait for it.
  pidf="$LOGS/tansu-install.pid"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    log "tansu: an install is running (pid $(cat "$pidf")); waiting for it"
    while kill -0 "$(cat "$pidf")" 2>/dev/null; do sleep 10; done
  fi
  if [ ! -x "$TANSU" ]; then
    log "tansu: cargo install tansu $TANSU_VERSION (about 11 min cold; log $LOGS/tansu-install.log)"
    # Not CARGO_TARGET_DIR: keep tansu's build out of the workspace target dir and its lock.
    # Opt-level 1: a broker for tests needs no more, and its build is the longest step of a
    # first `make test`: 642 s on 2 cores (2026-12-03), where an earlier install at the
    # release default of 3 took 1,374 s on the same kind of machine.
    env -u CARGO_TARGET_DIR CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
      nice -n 10 cargo install tansu --version "$TANSU_VERSION" \
      --locked --features libsql --root "$TOOLS" >"$LOGS/tansu-install.log" 2>&1 \
      || { tail -30 "$LOGS/tansu-install.log" >&2; exit 1; }
  fi
fi

# --- report ------------------------------------------------------------------------------
where() { if [ -x "$2" ]; then printf '  %-13s %s\n' "$1" "$2"; else printf '  %-13s (missing) %s\n' "$1" "$2"; fi; }
echo "refold test tools in $CACHE:"
where python "$VENV/bin/python"
where moto_server "$VENV/bin/moto_server"
where cargo-lambda "$VENV/bin/cargo-lambda"
where duckdb-py "$VENV/bin/python"
where tansu "$TANSU"
where sam "$TOOLS/bin/sam"
where cfn-lint "$TOOLS/bin/cfn-lint"
echo "  pyiceberg     $("$VENV/bin/python" -c 'import pyiceberg; print(pyiceberg.__version__)' 2>/dev/null || echo missing)"
echo "  duckdb        $("$VENV/bin/python" -c 'import duckdb; print(duckdb.__version__)' 2>/dev/null || echo missing)"
echo "Use: export PATH=\"$VENV/bin:$TOOLS/bin:\$PATH\""
