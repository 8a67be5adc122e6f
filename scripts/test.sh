#!/usr/bin/env bash
# The README's test command (`make test`, and CI's `.ci/run`): installs what the tests need
# (idempotent, cached under ~/.cache/refold), starts the local stand-ins on 127.0.0.1
# (PostgreSQL, tansu for Kafka, moto for S3 and Glue, and two `cargo lambda watch` emulators
# for the Invoke API: one with a local warehouse, one with the deployed configuration), runs
# every test, and stops the stand-ins whatever happens.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/refold/target}"
CACHE="${REFOLD_CACHE:-$HOME/.cache/refold}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "install test tools"
scripts/install-test-tools.sh
export REFOLD_PYTHON="$CACHE/venv/bin/python"
export PATH="$CACHE/venv/bin:$CACHE/tools/bin:$PATH"

step "format"
cargo fmt --all --check

step "build (release profile: tests, benches and binaries share one build)"
cargo build --release --workspace --all-targets

RUN="$(mktemp -d "${TMPDIR:-/tmp}/refold-test.XXXXXX")"
cleanup() {
  scripts/stack.sh down "$RUN" >/dev/null 2>&1 || true
  scripts/pg.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "start PostgreSQL, Kafka (tansu), S3 and Glue (moto), Lambda (cargo lambda watch: local and deployed configuration)"
eval "$(scripts/pg.sh start)"
scripts/stack.sh up "$RUN" kafka s3 lambda lambda-aws
set -a
# shellcheck disable=SC1091
source "$RUN/stack.env"
set +a

step "test"
cargo test --release --workspace --no-fail-fast
