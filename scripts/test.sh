#!/usr/bin/env bash
# Runs every test: unit, integration and end-to-end (real etcd and kubectl, started by the
# tests themselves on loopback ports under temp dirs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --locked
cargo test --workspace --locked
