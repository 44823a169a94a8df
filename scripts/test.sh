#!/usr/bin/env bash
# Runs every test in the workspace. Installs what the interop tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo test --workspace --all-targets "$@"
