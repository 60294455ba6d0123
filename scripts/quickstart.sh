#!/usr/bin/env bash
# Fresh machine -> demo images: set up, make local stand-ins for the vendor images (no Docker
# Hub here), and build the demo manifest with `tf2aif bake`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
scripts/setup.sh
PYTHON=.venv/bin/python scripts/local-bases.sh --map .tf2aif/vendor-map.yaml
.venv/bin/tf2aif plan tf2aif.yaml
.venv/bin/tf2aif bake tf2aif.yaml --vendor-map .tf2aif/vendor-map.yaml "$@"
