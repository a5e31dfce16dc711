#!/usr/bin/env bash
# The whole test suite: unit, property/fuzz, real-kernel and end-to-end tests (inside network
# namespaces it creates and removes). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
# A clean checkout gains nothing from incremental caches; they would double the target dir.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast "$@"
