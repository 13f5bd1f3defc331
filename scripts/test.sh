#!/usr/bin/env bash
# Runs every test: unit, integration and end-to-end (real etcd and kubectl, started by the
# tests themselves on loopback ports under temp dirs).
set -euo pipefail
# A clean checkout gains nothing from incremental caches; they only cost disk.
export CARGO_INCREMENTAL=0
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --locked
cargo test --workspace --locked
