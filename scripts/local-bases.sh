#!/usr/bin/env bash
# Local stand-ins for the vendor images (tensorflow/tensorflow, python:3.11-slim-bookworm,
# openvino/ubuntu22_runtime) where their registries cannot be reached: a Debian bookworm
# minbase + python3 root file system per architecture (mmdebstrap; arm64 under qemu), cached
# under $TF2AIF_STATE (default /root/dv), pushed as one multi-arch image to the local registry,
# the SBOM scanner (base_images/sbom-scanner) built on it and pushed next to it, plus a vendor
# map for `tf2aif bake --vendor-map` / TF2AIF_VENDOR_MAP that also selects that scanner for
# `tf2aif bake --sbom`.
#   scripts/local-bases.sh [--registry HOST:PORT] [--arch amd64|arm64]... [--vendor REF]...
#                          [--map FILE] [--no-sbom-scanner] [--ca-cert FILE] [--print]
# The same as `tf2aif bases --local`; scripts/docker-up.sh brings up engine and registry first.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$ROOT/builder${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m tf2aif bases --local "$@"
