#!/usr/bin/env bash
# Installs the external clients the interop tests drive, at the versions the tests pin:
# kcat (Debian), kafka-python and confluent-kafka (a virtualenv), KafkaJS (npm, into
# interop/js/node_modules), and the Sarama test program (Debian's Sarama 1.22 sources
# built offline with Debian's Go into a cache directory). Safe to run again: each step
# checks what is there first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

# Debian packages. Sarama and everything it imports come as -dev source packages under
# /usr/share/gocode/src, so the Go build below needs no network.
need=()
command -v kcat >/dev/null 2>&1 || need+=(kcat)
# mkfs.ext4 and mount for server/tests/storage_disk_full.rs (a small loop-mounted data dir).
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
command -v mount >/dev/null 2>&1 || need+=(mount)
# A TrueType font for the labels of sluice-perf's plots.
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -d /usr/share/gocode/src/github.com/Shopify/sarama ] || need+=(golang-github-shopify-sarama-dev)
# DataDog's zstd binding (Sarama's zstd codec) is cgo against the system libzstd.
[ -e /usr/include/zstd.h ] || need+=(libzstd-dev)
command -v gcc >/dev/null 2>&1 || need+=(gcc)

venv="${SLUICE_PY_VENV:-$HOME/.cache/sluice/py-venv}"
# kafka-python with its optional codecs, and confluent-kafka (librdkafka inside its wheel).
py_pins=(
  'kafka-python==3.0.12'
  'confluent-kafka==2.16.1'
  'python-snappy==0.7.3'
  'cramjam==2.14.0'
  'zstandard==0.25.0'
  'lz4==4.4.5'
)
have_py_clients() {
  "$venv/bin/python" - "${py_pins[@]}" >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    assert version(name) == want, pin
EOF
}
if ! have_py_clients; then
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! have_py_clients; then
  if [ ! -x "$venv/bin/pip" ]; then
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${py_pins[@]}"
  have_py_clients
fi

# KafkaJS and its codec plugins, at the exact versions in interop/js/package.json.
js="$root/interop/js"
if ! (cd "$js" && node -e 'require("kafkajs"); require("kafkajs-snappy"); require("lz4js"); require("@bokuweb/zstd-wasm")
  const want = require("./package.json").dependencies
  for (const [name, version] of Object.entries(want)) {
    if (require(name + "/package.json").version !== version) process.exit(1)
  }' >/dev/null 2>&1); then
  (cd "$js" && npm install --no-package-lock --no-audit --no-fund --silent)
fi

# The Sarama test program, built offline in GOPATH mode from Debian's sources; rebuilt
# when its source changes.
gobin_dir="${SLUICE_GO_BIN:-$HOME/.cache/sluice/go-bin}"
src="$root/interop/go/sarama_cases.go"
stamp="$(sha256sum "$src" | cut -d' ' -f1)"
if [ ! -x "$gobin_dir/sarama-cases" ] || [ "$(cat "$gobin_dir/sarama-cases.sha256" 2>/dev/null)" != "$stamp" ]; then
  mkdir -p "$gobin_dir"
  GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off GOFLAGS= \
    go build -o "$gobin_dir/sarama-cases" "$src"
  echo "$stamp" >"$gobin_dir/sarama-cases.sha256"
fi
