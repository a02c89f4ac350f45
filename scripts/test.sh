#!/usr/bin/env bash
# The test command: installs what is missing (npm packages, lavapipe, the PyTorch oracle, Chromium), regenerates the
# golden files, type-checks, builds the packages, checks them as an npm user installs them and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/setup-webgpu.sh
bash scripts/setup-oracle.sh
bash scripts/setup-browser.sh
npm run golden
npm run typecheck
npm run lint
npm run format:check   # biome format: the code style (npx biome format --write applies it)
npm run docs        # API reference from TSDoc into docs/api (not committed); fails on TSDoc errors
npm run build
bash scripts/check-packages.sh   # npm pack + install in an empty project: types, README examples, CLI, on the Node floor
npx vitest run "$@"
