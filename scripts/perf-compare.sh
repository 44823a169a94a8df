#!/usr/bin/env bash
# Compares the performance of two commits (default: HEAD~1 as base, HEAD as new).
#
# Builds `sluice` and `sluice-perf` in release at each commit (git worktrees in a temp dir,
# one shared target dir so dependencies compile once), then runs the same short scenario
# against each, alternating A B A B so drift on a shared machine hits both sides:
#   fixed:  produce 1 KiB records at 5000 records/s (5 MB/s, about a fifth of acks=all
#           saturation here), 8 partitions, acks=all, 2 s warmup + 5 s measured; three times
#           per side (A B A B A B)
#   max:    produce 1 KiB records at max rate, 8 partitions, acks=1, 1 s warmup + 5 s; once per side
# Each run starts a fresh broker (`--cores 1`, empty data dir) on a free loopback port.
# Prints `sluice-perf compare` tables (medians over the repeated runs) and exits non-zero on
# a clear regression: fixed-rate p50 > 2x, p99 > 5x or p99.9 > 10x (latencies under 1 ms
# count as 1 ms), or max-rate throughput < 0.5x.
#
# Usage: scripts/perf-compare.sh [BASE_REV [NEW_REV]]
# Env:   PERF_COMPARE_DIR   keep results here (default: a temp dir, removed at exit)
#        PERF_TARGET_DIR    cargo target dir for the builds (default: target/perf-compare)
set -euo pipefail

root=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
base_rev=${1:-HEAD~1}
new_rev=${2:-HEAD}
work=$(mktemp -d)
results=${PERF_COMPARE_DIR:-$work/results}
target=${PERF_TARGET_DIR:-$root/target/perf-compare}
mkdir -p "$results"
broker_pid=""
worktrees=()

cleanup() {
  if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  for wt in "${worktrees[@]}"; do git -C "$root" worktree remove --force "$wt" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# build NAME REV: builds both binaries at REV into $work/bin-NAME; fails if either is missing.
build() {
  local name=$1 rev=$2 dir=$work/src-$1
  git -C "$root" worktree add --detach "$dir" "$rev" >/dev/null 2>&1 || return 1
  worktrees+=("$dir")
  # No debug info: these binaries are only run, and it shortens the build.
  (cd "$dir" && CARGO_TARGET_DIR=$target CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo build --release --quiet -p sluice-server -p sluice-perf --bins) || return 1
  mkdir -p "$work/bin-$name"
  cp "$target/release/sluice" "$target/release/sluice-perf" "$work/bin-$name/" || return 1
  "$work/bin-$name/sluice-perf" produce --help >/dev/null 2>&1 || return 1
}

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
}

# run NAME LABEL ARGS...: one fresh broker of side NAME, one sluice-perf produce run.
run() {
  local name=$1 label=$2; shift 2
  local bin=$work/bin-$name port data
  port=$(free_port)
  data=$(mktemp -d "$work/data-XXXX")
  "$bin/sluice" --data-dir "$data" --listen "127.0.0.1:$port" --cores 1 >"$data.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  echo "== $label ($name)"
  if ! "$bin/sluice-perf" produce --bootstrap "127.0.0.1:$port" --topic perf --partitions 8 \
      --record-size 1024 --quiet --json "$results/$label.json" "$@"; then
    echo "run $label failed; broker log:"; tail -20 "$data.log"
    kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; broker_pid=""
    return 1
  fi
  kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true; broker_pid=""
  rm -rf "$data"
}

# Resolve both revisions first, so commits made while this runs change nothing.
new_sha=$(git -C "$root" rev-parse --verify "$new_rev^{commit}")
base_sha=$(git -C "$root" rev-parse --verify --quiet "$base_rev^{commit}" || true)
echo "perf-compare: building new ($new_rev = ${new_sha:0:12})"
build new "$new_sha" || { echo "perf-compare: cannot build sluice and sluice-perf at $new_rev"; exit 1; }
base_name=base
if [ -n "$base_sha" ]; then
  echo "perf-compare: building base ($base_rev = ${base_sha:0:12})"
  if ! build base "$base_sha"; then
    echo "perf-compare: $base_rev has no working sluice-perf/sluice yet; comparing $new_rev with itself"
    base_name=new
  fi
else
  echo "perf-compare: $base_rev does not exist; comparing $new_rev with itself"
  base_name=new
fi

fixed=(--rate 5000 --acks all --warmup 2 --duration 5)
maxrate=(--acks 1 --warmup 1 --duration 5)
run_or_fallback() {
  # A base that builds but cannot run the scenario (e.g. before Produce worked) is no baseline.
  if ! run "$@"; then
    if [ "$1" = base ] && [ "$base_name" = base ]; then
      echo "perf-compare: base cannot run the scenario; comparing $new_rev with itself"
      base_name=new
      shift; run new "$@"
    else
      exit 1
    fi
  fi
}
run_or_fallback "$base_name" fixed-a1 "${fixed[@]}"
run new fixed-b1 "${fixed[@]}"
run_or_fallback "$base_name" fixed-a2 "${fixed[@]}"
run new fixed-b2 "${fixed[@]}"
run_or_fallback "$base_name" fixed-a3 "${fixed[@]}"
run new fixed-b3 "${fixed[@]}"
run_or_fallback "$base_name" max-a "${maxrate[@]}"
run new max-b "${maxrate[@]}"

perf=$work/bin-new/sluice-perf
status=0
echo
echo "== fixed rate 5000 rec/s, acks=all: base=$base_rev (runs a1-a3) new=$new_rev (runs b1-b3)"
"$perf" compare "$results/fixed-a1.json,$results/fixed-a2.json,$results/fixed-a3.json" \
  "$results/fixed-b1.json,$results/fixed-b2.json,$results/fixed-b3.json" \
  --max-ratio p50=2,p99=5,p99.9=10 --latency-floor-us 1000 || status=1
echo
echo "== max rate, acks=1"
"$perf" compare "$results/max-a.json" "$results/max-b.json" --min-throughput-ratio 0.5 || status=1
if [ "$status" -ne 0 ]; then
  echo "perf-compare: regression past the limits above"
fi
exit "$status"
