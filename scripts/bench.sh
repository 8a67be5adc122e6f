#!/usr/bin/env bash
# `make bench`: refold against what a team would use instead, every figure beside its
# baseline measured in the same run (the machine is shared and noisy: read the ratios).
#
#   1. `refold fold` vs CPython running the seed fold (tests/py/seed_fold.py, the strict
#      oracle, and bench/py/fold_lean.py, json.loads and the fold with no checks) over the same
#      order stream (events/gen_orders.py, 302,000 lines): wall time, peak RSS.
#   2. fold-batch end to end (ESM payload in, committed table out; functions/fold-batch
#      benches/e2e.rs) at 10 k and 1 M keys, 10,000-event batches, with the table on the
#      local filesystem and on local S3 (moto, started here by scripts/stack.sh; SQLite
#      catalog on both sides); the Python way (bench/py/fold_batch_py.py: seed fold +
#      PyIceberg upsert) on 1,000-event batches of the same generator, on the same stores.
#      These figures are the release build's (the tests' profile); the build that ships
#      (REFOLD_BENCH_COLD_PROFILE's, `lambda` by default) runs the same batches once more on
#      the largest filesystem table, reported beside them.
#      And the ESM event's parse alone: fold-batch's parse_layer against lambda_runtime's own
#      (functions/fold-batch/benches/parse.rs, the repository's 4,853-record payload).
#   3. The state table's merge alone (`cargo bench --workspace --bench table`).
#   4. Cold start against a Runtime API stand-in (init, and init + first invocation) and
#      zip size, for each of the four functions built with the size-tuned `lambda` profile.
#   5. Cost per million events on Lambda arm64, from measured CPU time and peak memory.
#
# Knobs: REFOLD_BENCH_DIR (default /tmp/refold-bench), REFOLD_BENCH_SIZES (keys, default
# "10000 1000000"), REFOLD_BENCH_BATCHES (warm 10k-event batches per size, default 7),
# REFOLD_BENCH_PY_BATCHES (default 3), REFOLD_BENCH_LINES (default 302000),
# REFOLD_BENCH_STORES (default "fs s3"), REFOLD_BENCH_COLD_PROFILE (the functions' build for
# cold start and zip size: `lambda`, the default, or `release`, stripped here: a quicker
# build when the lambda profile's is not cached), REFOLD_BENCH_SKIP (words: fold e2e py parse
# table cold), REFOLD_BENCH_APPEND=1 (add to the results of an earlier run in the same
# REFOLD_BENCH_DIR instead of starting afresh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${REFOLD_CACHE:-$HOME/.cache/refold}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
PY="${REFOLD_PYTHON:-$CACHE/venv/bin/python}"
DIR="${REFOLD_BENCH_DIR:-/tmp/refold-bench}"
SIZES="${REFOLD_BENCH_SIZES:-10000 1000000}"
BATCHES="${REFOLD_BENCH_BATCHES:-7}"
PY_BATCHES="${REFOLD_BENCH_PY_BATCHES:-3}"
LINES="${REFOLD_BENCH_LINES:-302000}"
STORES="${REFOLD_BENCH_STORES:-fs s3}"
COLD_PROFILE="${REFOLD_BENCH_COLD_PROFILE:-lambda}"
SKIP=" ${REFOLD_BENCH_SKIP:-} "
OUT="$DIR/results.jsonl"
PIPELINE="$ROOT/pipelines/order-events-pipeline.yaml"
export KAFKA_CONNECTION="${KAFKA_CONNECTION:-localhost:9092}"

log() { printf '[bench] %s\n' "$*" >&2; }
want() { [[ "$SKIP" != *" $1 "* ]]; }
record() { echo "$1" >>"$OUT"; }

[ -x "$PY" ] || { log "no $PY: run scripts/install-test-tools.sh"; exit 1; }
if [ -z "${REFOLD_BENCH_APPEND:-}" ]; then rm -rf "$DIR"; mkdir -p "$DIR"; : >"$OUT"; fi
record "{\"what\":\"machine\",\"cpus\":$(nproc),\"model\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\",\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"date\":\"$(date -u +%FT%TZ)\",\"commit\":\"$(git -C "$ROOT" rev-parse --short HEAD)\"}"

cd "$ROOT"
log "building (release; the lambda profile for the functions)"
# --workspace: the feature set of the test build, so nothing of the tree builds again
cargo build --release -q --workspace --bins
cargo bench -q --workspace --bench e2e --no-run 2>/dev/null
# newest_e2e PROFILE: the e2e bench binary cargo built last with PROFILE.
newest_e2e() { ls -t "$CARGO_TARGET_DIR/$1"/deps/e2e-* | grep -v '\.d$' | head -1; }
E2E="$(newest_e2e release)"
FUNCTIONS="fold-batch snapshot-compactor replay-api replay-worker"
if want cold && [ "$COLD_PROFILE" != release ]; then
  cargo build -q --profile "$COLD_PROFILE" $(printf -- '-p %s ' $FUNCTIONS)
fi
# The e2e figures are the release build's (the tests' profile); the functions ship with
# COLD_PROFILE's settings, which run slower (BENCHMARKS.md, "The deployed build against the
# benched one"). The shipped build runs beside it on the largest filesystem table.
E2E_SHIPPED=""
if want e2e && [ "$COLD_PROFILE" != release ]; then
  cargo bench -q --profile "$COLD_PROFILE" -p fold-batch --bench e2e --no-run 2>/dev/null
  E2E_SHIPPED="$(newest_e2e "$COLD_PROFILE")"
fi

# timed OUTFILE CMD...: runs CMD (stdout to OUTFILE, stderr dropped), prints
# {"s": wall seconds, "cpu_s": user + system, "rss_kb": peak RSS}.
timed() {
  local out=$1 f="$DIR/time.$$"; shift
  /usr/bin/time -f '{"s":%e,"cpu_s":%U+%S,"rss_kb":%M}' -o "$f" "$@" >"$out" 2>/dev/null
  sed -E 's/"cpu_s":([0-9.]+)\+([0-9.]+)/"user_s":\1,"sys_s":\2/' "$f"
}

# --- 1. refold fold vs CPython -----------------------------------------------------------
if want fold; then
  EVENTS="$DIR/orders.jsonl"
  python3 events/gen_orders.py --orders $(( LINES * 3 / 10 )) --lines "$LINES" >"$EVENTS"
  log "refold fold over $LINES lines (3 runs) and CPython seed_fold.py (1 run)"
  for i in 1 2 3; do
    t=$(timed "$DIR/fold-refold.jsonl" \
      "$CARGO_TARGET_DIR/release/refold" fold "$PIPELINE" --events "$EVENTS")
    record "{\"what\":\"fold\",\"who\":\"refold\",\"lines\":$LINES,\"rows\":$(wc -l <"$DIR/fold-refold.jsonl"),\"t\":$t}"
  done
  t=$(timed "$DIR/fold-python.jsonl" "$PY" tests/py/seed_fold.py "$PIPELINE" "$EVENTS" --quiet)
  record "{\"what\":\"fold\",\"who\":\"cpython\",\"lines\":$LINES,\"rows\":$(wc -l <"$DIR/fold-python.jsonl"),\"t\":$t}"
  # The lean way a Python team would write it (json.loads, the fold, a dict): no validation.
  t=$(timed "$DIR/fold-lean.jsonl" "$PY" bench/py/fold_lean.py "$PIPELINE" "$EVENTS")
  record "{\"what\":\"fold\",\"who\":\"cpython-lean\",\"lines\":$LINES,\"rows\":$(wc -l <"$DIR/fold-lean.jsonl"),\"t\":$t}"
fi

# --- 2. fold-batch end to end, and the Python way ------------------------------------------
# Local S3: moto on a free port of 127.0.0.1 (stopped on exit), one bucket; both sides keep
# their SQLite catalog on the local filesystem, so the stores differ only in where the
# table's files are.
S3_ENV=()
PY_S3=()
if [[ " $STORES " == *" s3 "* ]] && { want e2e || want py; }; then
  STACK="$DIR/stack"
  trap 'scripts/stack.sh down "$STACK" >/dev/null 2>&1 || true' EXIT
  scripts/stack.sh up "$STACK" s3 >/dev/null
  S3="$(sed -n 's|^REFOLD_S3_ENDPOINT=||p' "$STACK/stack.env")"
  curl -fsS -X PUT "$S3/refold-bench" >/dev/null
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
  log "local S3 (moto) at $S3"
fi

# store_env STORE KEYS WORKDIR: the e2e bench's environment for a table on STORE.
store_env() {
  if [ "$1" = s3 ]; then
    echo "REFOLD_S3_ENDPOINT=$S3" "REFOLD_WAREHOUSE=s3://refold-bench/e2e-$2" \
      "REFOLD_CATALOG_URI=sqlite:$3/catalog.db" "REFOLD_DEAD_LETTER=s3://refold-bench/dl-$2"
  fi
}

# e2e_pass BIN PROFILE WHO STORE KEYS DIR: loads a table of KEYS keys on STORE with BIN (built
# with PROFILE), runs the payloads in DIR/esm through it as one warm container, and records
# each batch as WHO's.
e2e_pass() {
  local bin=$1 profile=$2 who=$3 store=$4 keys=$5 d=$6
  log "fold-batch ($store, $profile build): loading $keys keys"
  # MALLOC_ARENA_MAX: the functions' environment as deployed (infra/template.yaml).
  # shellcheck disable=SC2046  # store_env prints whole KEY=VALUE words
  env MALLOC_ARENA_MAX=1 $(store_env "$store" "$keys" "$d") "$bin" load "$d" "$keys"
  log "fold-batch ($store, $profile build): 1 + $BATCHES batches of 10,000 events into $keys keys"
  # shellcheck disable=SC2046
  env MALLOC_ARENA_MAX=1 $(store_env "$store" "$keys" "$d") "$bin" run "$d" "$d"/esm/batch-*.json \
    | while read -r line; do
      record "{\"what\":\"e2e\",\"who\":\"$who\",\"profile\":\"$profile\",\"store\":\"$store\",\"keys\":$keys,\"r\":$line}"
    done
}

if want e2e; then
  for store in $STORES; do
    for keys in $SIZES; do
      d="$DIR/e2e-$store-$keys"
      mkdir -p "$d"
      "$PY" bench/py/esm_payloads.py "$d/esm" --keys "$keys" --events 10000 --batches $(( BATCHES + 1 ))
      e2e_pass "$E2E" release refold "$store" "$keys" "$d"
      if [ -n "$E2E_SHIPPED" ] && [ "$store" = fs ] && [ "$keys" = "${SIZES##* }" ]; then
        # The same payloads into a freshly loaded table.
        rm -rf "$d-shipped" && mkdir -p "$d-shipped" && ln -s "$d/esm" "$d-shipped/esm"
        e2e_pass "$E2E_SHIPPED" "$COLD_PROFILE" refold-shipped "$store" "$keys" "$d-shipped"
      fi
    done
  done
fi
if want py; then
  for store in $STORES; do
    for keys in $SIZES; do
      d="$DIR/py-$store-$keys"
      "$PY" bench/py/esm_payloads.py "$d/esm" --keys "$keys" --events 1000 --batches "$PY_BATCHES"
      log "Python way ($store): $PY_BATCHES batches of 1,000 events into $keys keys (PyIceberg upsert)"
      where=()
      [ "$store" = s3 ] && where=(--warehouse "s3://refold-bench/py-$keys" --s3-endpoint "$S3")
      "$PY" bench/py/fold_batch_py.py "$d/work" --keys "$keys" ${where[@]+"${where[@]}"} "$d"/esm/batch-*.json \
        | while read -r line; do
          record "{\"what\":\"e2e\",\"who\":\"python\",\"store\":\"$store\",\"keys\":$keys,\"r\":$line}"
        done
    done
  done
fi

# --- 2b. the ESM event's parse ----------------------------------------------------------------
if want parse; then
  log "ESM event parse: fold-batch's parse_layer against lambda_runtime's (cargo bench -p fold-batch --bench parse)"
  line=$(cargo bench -q -p fold-batch --bench parse | tail -n 1)
  record "$line"
fi

# --- 3. the merge alone -------------------------------------------------------------------
if want table; then
  log "state table merge (cargo bench --workspace --bench table)"
  # The bench prints its table on stderr; cargo itself is quiet (-q). It reads knobs of the
  # same names as this script's: its own folder (it clears it; a REFOLD_BENCH_DIR given to
  # this script must keep the results), the sizes comma-separated.
  env MALLOC_ARENA_MAX=1 REFOLD_BENCH_DIR="$DIR/table" REFOLD_BENCH_SIZES="${SIZES// /,}" \
    cargo bench -q --workspace --bench table 2>&1 | tee "$DIR/table.txt" >&2
fi

# --- 4. cold start and zip size -------------------------------------------------------------
# Each function on the local warehouse, with an event it handles without a broker or a
# Lambda endpoint: fold-batch an ESM batch, snapshot-compactor its schedule (one maintenance
# pass), replay-api `GET .../replays`, replay-worker a promotion of a replay that does not
# exist (answered with an error after looking it up: --error-ends-run).
if want cold; then
  cs="$DIR/cold"
  mkdir -p "$cs"
  "$PY" bench/py/esm_payloads.py "$cs/esm" --keys 0 --events 10 --batches 1
  envs=(--env "REFOLD_PIPELINE=$PIPELINE" --env "KAFKA_CONNECTION=$KAFKA_CONNECTION"
        --env "REFOLD_WAREHOUSE=$cs/warehouse" --env "REFOLD_REPLAY_WORKER_FUNCTION=replay-worker"
        --env "AWS_ACCESS_KEY_ID=testing" --env "AWS_SECRET_ACCESS_KEY=testing")
  mkdir -p "$cs/bin"
  for f in $FUNCTIONS; do
    bin="$cs/bin/$f"
    cp "$CARGO_TARGET_DIR/$COLD_PROFILE/$f" "$bin"
    strip "$bin"
    extra=()
    case $f in
      fold-batch) event="$cs/esm/batch-000.json" ;;
      snapshot-compactor) event="events/eventbridge/schedule.json" ;;
      replay-api) event="events/apigw/list-replays.json" ;;
      replay-worker) event="events/replay-worker/promote-unknown.json"; extra=(--error-ends-run) ;;
    esac
    # The first run creates the table; the measured runs open it, as a real cold start does.
    "$PY" bench/py/cold_start.py "$bin" "$event" --runs 1 "${envs[@]}" ${extra[@]+"${extra[@]}"} >/dev/null
    r=$("$PY" bench/py/cold_start.py "$bin" "$event" --runs 7 "${envs[@]}" ${extra[@]+"${extra[@]}"})
    rm -rf "$cs/zip" && mkdir -p "$cs/zip" && cp "$bin" "$cs/zip/bootstrap"
    (cd "$cs/zip" && zip -q -9 "$f.zip" bootstrap)
    record "{\"what\":\"cold\",\"fn\":\"$f\",\"profile\":\"$COLD_PROFILE\",\"binary_bytes\":$(stat -c %s "$bin"),\"zip_bytes\":$(stat -c %s "$cs/zip/$f.zip"),\"r\":$r}"
  done
fi

"$PY" bench/py/report.py "$OUT" "$DIR/table.txt"
