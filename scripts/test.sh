#!/usr/bin/env bash
# The whole test suite: unit, property/fuzz, real-kernel and end-to-end tests (inside network
# namespaces it creates and removes). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast "$@"
