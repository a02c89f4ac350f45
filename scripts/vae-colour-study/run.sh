#!/usr/bin/env bash
# The tiny VAE's colour study (packages/train/README.md, "Why the tiny VAE returned grey garments"): dumps
# 3000 training and 12 held-out synthetic people with garments, then trains the PyTorch replica of train-vae
# with and without the colour term. Needs a built tree (npm run build) and PyTorch 2.x
# (benchmarks/setup-torch.sh makes the venv used here).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA="${DATA:-$(mktemp -d)}"
PY="${PY:-benchmarks/.venv-torch/bin/python}"
node scripts/vae-colour-study/dump-synthetic.mjs 3000 1 "$DATA/train.u8"
node scripts/vae-colour-study/dump-synthetic.mjs 12 900000000 "$DATA/held.u8"   # HELD_OUT_SEED
export DATA
"$PY" scripts/vae-colour-study/vae_study.py rgb 3000 2e-3 8 16
CHROMA=1 "$PY" scripts/vae-colour-study/vae_study.py colour1 3000 2e-3 8 16
