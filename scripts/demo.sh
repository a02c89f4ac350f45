#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/setup-webgpu.sh
npm run build --silent
node examples/train-mlp.mjs "$@"
