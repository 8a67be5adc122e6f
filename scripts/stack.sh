#!/usr/bin/env bash
# Local stand-ins for the cloud, no Docker:
#   kafka   tansu (Apache-Kafka-compatible broker, sqlite storage)
#   s3      moto_server (S3, also Glue, with Glue's UpdateTable VersionId check: tests/py/moto_server.py)
#   lambda  cargo lambda watch: the Lambda Invoke REST API for every binary of the workspace
#   lambda-aws  a second cargo lambda watch whose functions run the deployed configuration:
#               the Glue catalog and S3 (warehouse, dead letters) on this stack's moto
#
#   scripts/stack.sh up DIR [kafka] [s3] [lambda] [lambda-aws]   (default: kafka s3)
#   scripts/stack.sh down DIR
#   scripts/stack.sh env DIR                         (print DIR/stack.env)
#
# `up` picks free ports on 127.0.0.1, waits until each service answers, and writes
# DIR/stack.env (sourceable, KEY=VALUE lines):
#   REFOLD_KAFKA_BROKERS=127.0.0.1:P   REFOLD_S3_ENDPOINT=http://127.0.0.1:P
#   REFOLD_LAMBDA_ENDPOINT=http://127.0.0.1:P   (only with `lambda`), and the functions'
#   REFOLD_PIPELINE/WAREHOUSE/CATALOG_URI/DEAD_LETTER as REFOLD_LAMBDA_PIPELINE etc.
#   REFOLD_LAMBDA_AWS_ENDPOINT/WAREHOUSE/DEAD_LETTER (only with `lambda-aws`)
#   AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_REGION (dummy, for moto)
# Logs and PIDs go to DIR/*.log and DIR/*.pid; each service runs in its own process group
# and `down` stops exactly those groups.
# The lambda service runs `cargo lambda watch --release --ignore-changes` with
# CARGO_TARGET_DIR=$HOME/.cache/refold/target; the functions get the variables of
# DIR/lambda.env when that file exists (write it before `up`), or of $REFOLD_LAMBDA_ENV_FILE;
# without one, DIR/lambda.default.env is written: the seed pipeline, DIR/warehouse,
# DIR/dead-letters.
# Tools come from scripts/install-test-tools.sh ($HOME/.cache/refold/{venv,tools}).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${REFOLD_CACHE:-$HOME/.cache/refold}"
export PATH="$CACHE/venv/bin:$CACHE/tools/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"

die() { echo "stack.sh: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() { # port seconds name log
  local n=$(( $2 * 20 ))
  for _ in $(seq 1 "$n"); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "stack.sh: $3 did not open port $1 within $2 s; last log lines ($4):" >&2
  tail -20 "$4" >&2 || true
  return 1
}

start() { # name log cmd...   (own session/process group; PID file DIR/name.pid)
  local name=$1 log=$2; shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  echo $! >"$DIR/$name.pid"
}

# The variables every function gets, after its catalog and warehouse: the seed pipeline,
# the brokers (from the stack.env being written, $2: list `kafka` first), the replay
# fan-out through this emulator (port $1), dummy credentials.
function_env() {
  echo "REFOLD_PIPELINE=$ROOT/pipelines/order-events-pipeline.yaml"
  local kc; kc=$(sed -n 's/^REFOLD_KAFKA_BROKERS=//p' "$2")
  echo "KAFKA_CONNECTION=${kc:-127.0.0.1:9092}"
  # replay-api fans shards out to replay-worker (and a worker continues itself) through
  # the same Invoke API, with the AWS SDK's Lambda client.
  echo "REFOLD_REPLAY_WORKER_FUNCTION=replay-worker"
  echo "AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:$1"
  echo "AWS_REGION=${AWS_REGION:-us-east-1}"
  echo "AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}"
  echo "AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}"
  # Small replay batches, two per invocation: every shard of the tests' replays spans
  # several invocations (a worker continuing itself).
  echo "REFOLD_REPLAY_BATCH_RECORDS=${REFOLD_REPLAY_BATCH_RECORDS:-500}"
  echo "REFOLD_REPLAY_MAX_BATCHES_PER_INVOCATION=${REFOLD_REPLAY_MAX_BATCHES_PER_INVOCATION:-2}"
  echo "RUST_LOG=info"
}

# `cargo lambda watch` on port $2 with the variables of file $3 (log and PID as $1).
start_emulator() {
  command -v cargo-lambda >/dev/null || die "cargo-lambda not found; run scripts/install-test-tools.sh"
  # Build first so the first invoke does not wait for cargo: the emulator runs `cargo run
  # --bin NAME`, which resolves features over the whole workspace as `--workspace --bins`
  # does (and, with the feature pins in Cargo.toml, as the test build does).
  (cd "$ROOT" && cargo build --release -q --workspace --bins) || die "cargo build failed"
  # Instances per function: the emulator runs an asynchronous invoke to completion before
  # answering, so a replay's shards and each continuation of a shard (a worker invoking
  # itself) hold one instance each until the chain ends.
  start "$1" "$DIR/$1.log" bash -c "cd '$ROOT' && exec cargo lambda watch --release \
    --ignore-changes --invoke-address 127.0.0.1 --invoke-port $2 \
    --concurrency ${REFOLD_LAMBDA_CONCURRENCY:-12} --env-file '$3'"
  wait_port "$2" 120 "cargo lambda watch ($1)" "$DIR/$1.log"
}

up() {
  local want=("$@")
  [ ${#want[@]} -eq 0 ] && want=(kafka s3)
  mkdir -p "$DIR"
  DIR="$(cd "$DIR" && pwd)"
  local env="$DIR/stack.env"
  : >"$env.tmp"
  for svc in "${want[@]}"; do
    case "$svc" in
      kafka)
        local tansu="${REFOLD_TANSU:-$(command -v tansu || true)}"
        [ -x "$tansu" ] || die "tansu not found; run scripts/install-test-tools.sh (or set REFOLD_TANSU)"
        local kp; kp=$(free_port)
        mkdir -p "$DIR/tansu"
        # tansu resolves the sqlite path against its working directory: run it in DIR/tansu.
        # Its maintenance task applies retention (topics with cleanup.policy=delete) every
        # maintenance_interval (default 10 min): 1 s, so a test can wait for it.
        start kafka "$DIR/kafka.log" bash -c "cd '$DIR/tansu' && RUST_LOG='${TANSU_LOG:-warn}' exec '$tansu' broker \
          --listener-url tcp://127.0.0.1:$kp --advertised-listener-url tcp://127.0.0.1:$kp \
          --storage-engine 'sqlite://tansu.db?maintenance_interval=1s'"
        wait_port "$kp" 20 tansu "$DIR/kafka.log"
        echo "REFOLD_KAFKA_BROKERS=127.0.0.1:$kp" >>"$env.tmp"
        ;;
      s3)
        "$CACHE/venv/bin/python" -c 'import moto.server' 2>/dev/null \
          || die "moto not found in $CACHE/venv; run scripts/install-test-tools.sh"
        local sp; sp=$(free_port)
        # moto_server, with Glue's VersionId check on UpdateTable (moto skips it).
        start s3 "$DIR/s3.log" "$CACHE/venv/bin/python" "$ROOT/tests/py/moto_server.py" -H 127.0.0.1 -p "$sp"
        wait_port "$sp" 30 moto "$DIR/s3.log"
        {
          echo "REFOLD_S3_ENDPOINT=http://127.0.0.1:$sp"
          echo "AWS_ACCESS_KEY_ID=testing"
          echo "AWS_SECRET_ACCESS_KEY=testing"
          echo "AWS_REGION=us-east-1"
        } >>"$env.tmp"
        ;;
      lambda)
        local lp; lp=$(free_port)
        local envfile="${REFOLD_LAMBDA_ENV_FILE:-$DIR/lambda.env}"
        if [ ! -f "$envfile" ]; then
          # The default function environment, written on every `up` (its ports are this
          # run's): the seed pipeline, a local warehouse and a local dead-letter folder under
          # DIR (tests read them through stack.env).
          envfile="$DIR/lambda.default.env"
          mkdir -p "$DIR/warehouse" "$DIR/dead-letters"
          {
            echo "REFOLD_WAREHOUSE=$DIR/warehouse"
            echo "REFOLD_DEAD_LETTER=$DIR/dead-letters"
            function_env "$lp" "$env.tmp"
          } >"$envfile"
        fi
        grep -E '^REFOLD_(PIPELINE|WAREHOUSE|CATALOG_URI|DEAD_LETTER)=' "$envfile" \
          | sed 's/^REFOLD_/REFOLD_LAMBDA_/' >>"$env.tmp" || true
        start_emulator lambda "$lp" "$envfile"
        echo "REFOLD_LAMBDA_ENDPOINT=http://127.0.0.1:$lp" >>"$env.tmp"
        ;;
      lambda-aws)
        # A second emulator with the deployed configuration (infra/template.yaml's
        # variables): the Glue catalog, the warehouse and the dead letters on S3, all on this
        # stack's moto (start `s3` first).
        local sp; sp=$(sed -n 's|^REFOLD_S3_ENDPOINT=http://127.0.0.1:||p' "$env.tmp")
        [ -n "$sp" ] || die "lambda-aws needs the s3 service before it (stack.sh up DIR s3 lambda-aws)"
        local ap; ap=$(free_port)
        local bucket=refold-lambda-aws
        local wh="s3://$bucket/warehouse" dl="s3://$bucket/dead-letters/order-events-pipeline"
        curl -fsS -X PUT "http://127.0.0.1:$sp/$bucket" >/dev/null || die "could not create bucket $bucket on moto"
        {
          echo "REFOLD_CATALOG=glue"
          echo "REFOLD_WAREHOUSE=$wh"
          echo "REFOLD_DEAD_LETTER=$dl"
          echo "REFOLD_GLUE_ENDPOINT=http://127.0.0.1:$sp"
          echo "REFOLD_S3_ENDPOINT=http://127.0.0.1:$sp"
          function_env "$ap" "$env.tmp"
        } >"$DIR/lambda-aws.env"
        start_emulator lambda-aws "$ap" "$DIR/lambda-aws.env"
        {
          echo "REFOLD_LAMBDA_AWS_ENDPOINT=http://127.0.0.1:$ap"
          echo "REFOLD_LAMBDA_AWS_WAREHOUSE=$wh"
          echo "REFOLD_LAMBDA_AWS_DEAD_LETTER=$dl"
        } >>"$env.tmp"
        ;;
      *) die "unknown service $svc (kafka, s3, lambda, lambda-aws)" ;;
    esac
  done
  mv "$env.tmp" "$env"
  echo "stack up ($DIR):"
  sed 's/^/  /' "$env"
}

down() {
  [ -d "$DIR" ] || return 0
  local pids=()
  for f in "$DIR"/*.pid; do
    [ -f "$f" ] || continue
    local pid; pid=$(cat "$f")
    # Each service leads its own process group (setsid): stop the group, children included.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
    rm -f "$f"
  done
  for pid in ${pids[@]+"${pids[@]}"}; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  rm -f "$DIR/stack.env"
  echo "stack down ($DIR)"
}

cmd="${1:-}"; DIR="${2:-}"
[ -n "$cmd" ] && [ -n "$DIR" ] || die "usage: stack.sh up|down|env DIR [kafka] [s3] [lambda] [lambda-aws]"
shift 2
case "$cmd" in
  up)
    down >/dev/null
    # A service that fails to come up takes the others down with it (`die` exits, which an
    # ERR trap would not see).
    trap 'down >/dev/null 2>&1' EXIT
    up "$@"
    trap - EXIT
    ;;
  down) down ;;
  env) cat "$DIR/stack.env" ;;
  *) die "usage: stack.sh up|down|env DIR [kafka] [s3] [lambda] [lambda-aws]" ;;
esac
