#!/usr/bin/env bash
# Consumer group benchmarks of one build: rebalance settle times and OffsetCommit throughput.
#
# For each broker core count (default "1 2"), starts a fresh release `sluice` on a free
# loopback port and runs:
#   rebalance: 3 members over 6 partitions and 30 members over 60 partitions, with Kafka's
#              default 3000 ms heartbeat and with 300 ms heartbeats, 5 leave/rejoin rounds each
#   commit:    OffsetCommit of 1, 8 and 64 partitions per request, from 1 and 4 groups
#              (one committing member each, one request in flight per member), 5 s measured
# Writes one `--json` result per run and the printed tables (`summary-cores-N.txt`) into
# OUT_DIR (default perf/results/groups).
#
# Usage: scripts/perf-groups.sh [OUT_DIR]
# Env:   SLUICE_BIN_DIR  where `sluice` and `sluice-perf` are (default target/release; build
#                        them with `cargo build --release -p sluice-server -p sluice-perf`)
#        CORES           broker core counts to run (default "1 2")
#        REPEAT          leave/rejoin rounds per rebalance run (default 5)
set -euo pipefail

root=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
out=${1:-$root/perf/results/groups}
bin=${SLUICE_BIN_DIR:-$root/target/release}
cores_list=${CORES:-1 2}
repeat=${REPEAT:-5}
mkdir -p "$out"
data=$(mktemp -d)
broker_pid=""

cleanup() {
  if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
}

for cores in $cores_list; do
  port=$(free_port)
  "$bin/sluice" --data-dir "$data/c$cores" --listen "127.0.0.1:$port" --cores "$cores" \
    >"$data/broker-c$cores.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  summary=$out/summary-cores-$cores.txt
  : >"$summary"
  {
    echo "# sluice --cores $cores, $(nproc) CPUs, $(uname -r), $(date -u +%FT%TZ)"
    echo "# commit $(git -C "$root" rev-parse --short HEAD)"
  } >>"$summary"
  for members in 3 30; do
    for hb in 3000 300; do
      name=rebalance-c$cores-m$members-hb$hb
      echo "== $name" | tee -a "$summary"
      "$bin/sluice-perf" rebalance --bootstrap "127.0.0.1:$port" --topic "rb-$members" \
        --partitions $((2 * members)) --members "$members" --repeat "$repeat" \
        --heartbeat-ms "$hb" --json "$out/$name.json" | tee -a "$summary"
    done
  done
  for partitions in 1 8 64; do
    for groups in 1 4; do
      name=commit-c$cores-k$partitions-g$groups
      echo "== $name" | tee -a "$summary"
      "$bin/sluice-perf" commit --bootstrap "127.0.0.1:$port" --topic "ct-$partitions" \
        --partitions "$partitions" --groups "$groups" --duration 5 --warmup 1 \
        --json "$out/$name.json" | tee -a "$summary"
    done
  done
  kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true; broker_pid=""
done
