#!/usr/bin/env bash
# Build the SAM stack (the four functions for arm64) with the size-tuned profile, then
# report each function's binary and zip size. Usage: scripts/sam-build.sh [sam build args]
# Needs cargo-lambda (with zig) and aws-sam-cli on PATH; runs from the workspace root.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# SAM runs `cargo lambda build --release` and copies from ./target/lambda: it cannot take a
# Cargo profile or another target dir. Give the release profile the `lambda` profile's
# settings (root Cargo.toml) through Cargo's environment instead.
unset CARGO_TARGET_DIR
export CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_LTO=thin \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_STRIP=true \
  CARGO_PROFILE_RELEASE_PANIC=abort
# librdkafka's configure reads only CC/CXX (see scripts/target-cc).
export CC="$root/scripts/target-cc" CXX="$root/scripts/target-c++" HOST_CC=cc HOST_CXX=c++

sam build "$@"

printf '%-28s %12s %12s\n' function binary_bytes zip_bytes
for dir in .aws-sam/build/*Function; do
  [ -f "$dir/bootstrap" ] || continue
  zip_path="$(mktemp -d)/bootstrap.zip"
  (cd "$dir" && zip -q -9 "$zip_path" bootstrap)
  printf '%-28s %12s %12s\n' "$(basename "$dir")" "$(stat -c %s "$dir/bootstrap")" "$(stat -c %s "$zip_path")"
  rm -rf "$(dirname "$zip_path")"
done
