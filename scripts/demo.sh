#!/usr/bin/env bash
# The main job: installs what is missing, builds, and fine-tunes the shipped tiny Leffa try-on model on the
# embedded synthetic people for a few minutes, writing sample grids, the loss curve and metrics to runs/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/setup-webgpu.sh
npm run build --silent
node packages/train/dist/cli.js demo "$@"
