#!/usr/bin/env bash
# Installs the external clients the interop tests drive (kcat, kafka-python in a virtualenv).
# Safe to run again.
set -euo pipefail
need=()
command -v kcat >/dev/null 2>&1 || need+=(kcat)
# mkfs.ext4 and mount for server/tests/storage_disk_full.rs (a small loop-mounted data dir).
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
command -v mount >/dev/null 2>&1 || need+=(mount)
# A TrueType font for the labels of sluice-perf's plots.
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
# kafka-python for interop/tests/group_sticky_python.rs; the test looks in the same place.
venv="${SLUICE_PY_VENV:-$HOME/.cache/sluice/py-venv}"
have_kafka_python() { "$venv/bin/python" -c 'import kafka' >/dev/null 2>&1; }
if ! have_kafka_python; then
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! have_kafka_python; then
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'kafka-python==3.0.12'
fi
