# The two commands of README.md. Everything builds in one release profile into a target
# directory outside the clone, so CI and local runs share one build.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/refold/target

.PHONY: demo test bench lint

## The main job on the embedded default: local warehouse, no cloud, no server to start.
## (--bin, not -p: features resolve over the workspace as in the test build: one build.)
demo:
	cargo run --release -q --bin refold -- demo

## Installs what tests need (cached under ~/.cache/refold, idempotent) and runs every test.
test:
	scripts/test.sh

## refold against its baselines, measured in the same run; prints one table (BENCHMARKS.md).
bench:
	scripts/bench.sh

lint:
	cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings
