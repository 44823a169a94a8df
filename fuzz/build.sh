#!/usr/bin/env bash
# Builds fuzz targets with libFuzzer's coverage instrumentation on the stable
# toolchain, with the flags `cargo fuzz build --sanitizer none` passes (cargo-fuzz
# itself and AddressSanitizer need nightly). Debug assertions and overflow checks
# stay on, as with cargo-fuzz. Build scripts and proc macros are not instrumented:
# the explicit --target keeps RUSTFLAGS off them.
#
# Usage: fuzz/build.sh [target...]   (default: every target)
# The binaries land in fuzz/target/<host triple>/release/<target>.
set -euo pipefail
cd "$(dirname "$0")"
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cllvm-args=-sanitizer-coverage-stack-depth \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
bins=()
for t in "$@"; do bins+=(--bin "$t"); done
if [ ${#bins[@]} -eq 0 ]; then bins=(--bins); fi
cargo build --release --target "$host" "${bins[@]}"
