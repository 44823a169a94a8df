#!/usr/bin/env bash
# Installs the external clients the interop tests drive (kcat). Safe to run again.
set -euo pipefail
need=()
command -v kcat >/dev/null 2>&1 || need+=(kcat)
# A TrueType font for the labels of sluice-perf's plots.
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
