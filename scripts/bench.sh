#!/usr/bin/env bash
# `make bench`: refold against what a team would use instead, every figure beside its
# baseline measured in the same run (the machine is shared and noisy: read the ratios).
#
#   1. `refold fold` vs CPython running the seed fold (tests/py/seed_fold.py, the strict
#      oracle, and bench/py/fold_lean.py, json.loads and the fold with no checks) over the same
#      order stream (events/gen_orders.py, 302,000 lines): wall time, peak RSS.
#   2. fold-batch end to end (ESM payload in, committed table out; functions/fold-batch
#      benches/e2e.rs) at 10 k and 1 M keys, 10,000-event batches, on the local filesystem
#     ; the Python way (bench/py/fold_batch_py.py:
#      seed fold + PyIceberg upsert) on 1,000-event batches of the same generator.
#   3. The state table's merge alone (`cargo bench --workspace --bench table`).
#   4. Cold start against a Runtime API stand-in and zip size, per function binary built
#      with the size-tuned `lambda` profile.
#   5. Cost per million events on Lambda arm64, from measured CPU time and peak memory.
#
# Knobs: REFOLD_BENCH_DIR (default /tmp/refold-bench), REFOLD_BENCH_SIZES (keys, default
# "10000 1000000"), REFOLD_BENCH_BATCHES (warm 10k-event batches per size, default 7),
# REFOLD_BENCH_PY_BATCHES (default 3), REFOLD_BENCH_LINES (default 302000),
# REFOLD_BENCH_SKIP (words: fold e2e py table cold), REFOLD_BENCH_APPEND=1 (add to the
# results of an earlier run in the same REFOLD_BENCH_DIR instead of starting afresh).
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
E2E="$(ls -t "$CARGO_TARGET_DIR"/release/deps/e2e-* | grep -v '\.d$' | head -1)"
if want cold; then cargo build -q --profile lambda -p fold-batch -p snapshot-compactor; fi

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
if want e2e; then
  for keys in $SIZES; do
    d="$DIR/e2e-$keys"
    "$PY" bench/py/esm_payloads.py "$d/esm" --keys "$keys" --events 10000 --batches $(( BATCHES + 1 ))
    log "fold-batch: loading $keys keys"
    # MALLOC_ARENA_MAX: the functions' environment as deployed (infra/template.yaml).
    MALLOC_ARENA_MAX=2 "$E2E" load "$d" "$keys"
    log "fold-batch: 1 + $BATCHES batches of 10,000 events into $keys keys"
    MALLOC_ARENA_MAX=2 "$E2E" run "$d" "$d"/esm/batch-*.json | while read -r line; do
      record "{\"what\":\"e2e\",\"who\":\"refold\",\"store\":\"fs\",\"keys\":$keys,\"r\":$line}"
    done
  done
fi
if want py; then
  for keys in $SIZES; do
    d="$DIR/py-$keys"
    "$PY" bench/py/esm_payloads.py "$d/esm" --keys "$keys" --events 1000 --batches "$PY_BATCHES"
    log "Python way: $PY_BATCHES batches of 1,000 events into $keys keys (PyIceberg upsert)"
    "$PY" bench/py/fold_batch_py.py "$d/work" --keys "$keys" "$d"/esm/batch-*.json | while read -r line; do
      record "{\"what\":\"e2e\",\"who\":\"python\",\"store\":\"fs\",\"keys\":$keys,\"r\":$line}"
    done
  done
fi

# --- 3. the merge alone -------------------------------------------------------------------
if want table; then
  log "state table merge (cargo bench --workspace --bench table)"
  MALLOC_ARENA_MAX=2 cargo bench -q --workspace --bench table 2>/dev/null | tee "$DIR/table.txt" >&2
fi

# --- 4. cold start and zip size -------------------------------------------------------------
if want cold; then
  cs="$DIR/cold"
  mkdir -p "$cs"
  "$PY" bench/py/esm_payloads.py "$cs/esm" --keys 0 --events 10 --batches 1
  envs=(--env "REFOLD_PIPELINE=$PIPELINE" --env "KAFKA_CONNECTION=$KAFKA_CONNECTION"
        --env "REFOLD_WAREHOUSE=$cs/warehouse")
  for f in fold-batch snapshot-compactor; do
    bin="$CARGO_TARGET_DIR/lambda/$f"
    event="$cs/esm/batch-000.json"
    [ "$f" = snapshot-compactor ] && event="events/eventbridge/schedule.json"
    # The first run creates the table; the measured runs open it, as a real cold start does.
    "$PY" bench/py/cold_start.py "$bin" "$event" --runs 1 "${envs[@]}" >/dev/null
    r=$("$PY" bench/py/cold_start.py "$bin" "$event" --runs 7 "${envs[@]}")
    rm -rf "$cs/zip" && mkdir -p "$cs/zip" && cp "$bin" "$cs/zip/bootstrap"
    (cd "$cs/zip" && zip -q -9 "$f.zip" bootstrap)
    record "{\"what\":\"cold\",\"fn\":\"$f\",\"binary_bytes\":$(stat -c %s "$bin"),\"zip_bytes\":$(stat -c %s "$cs/zip/$f.zip"),\"r\":$r}"
  done
fi

"$PY" bench/py/report.py "$OUT" "$DIR/table.txt"
