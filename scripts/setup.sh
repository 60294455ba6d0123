#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for tf2aif: a venv with tf2aif and every extra, a Docker
# engine with buildx + qemu + a local registry, and the demo model. Idempotent.
#   scripts/setup.sh            everything
#   SKIP_DOCKER=1 scripts/setup.sh   no Docker (validate/plan/convert/serve still work)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

step "python environment"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -U pip
.venv/bin/python -m pip install -q -e ".[convert,serve,bench,deploy,test]"

if [ "${SKIP_DOCKER:-0}" != 1 ]; then
  step "docker engine, buildx, qemu, registry"
  scripts/docker-up.sh
fi

step "demo model"
[ -f models/digits/saved_model.pb ] || .venv/bin/python examples/digits/train.py models/digits
step "ready"
