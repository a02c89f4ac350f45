#!/usr/bin/env bash
# Creates benchmarks/.venv-torch with pip's PyTorch 2.x CPU build (MKL / oneDNN): the speed peer the benchmarks
# compare against, what a PyTorch user gets on this CPU. Debian's PyTorch 1.13 (/usr/bin/python3, reference
# BLAS) stays the parity oracle. Exits non-zero when pip cannot install it; the benchmarks then print that the
# peer is absent and report the oracle only.
set -uo pipefail
cd "$(dirname "$0")"
VENV=.venv-torch
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import numpy, torch' 2>/dev/null; then
  echo "setup-torch: $("$VENV/bin/python" -c 'import torch; print("PyTorch", torch.__version__)') already in benchmarks/$VENV"
  exit 0
fi
rm -rf "$VENV"
PY="${LEFFA_TORCH2_BASE_PYTHON:-python3}"
# No retries: an unreachable default index fails fast and pip falls through to the configured local ones.
if "$PY" -m venv "$VENV" && "$VENV/bin/pip" install --quiet --retries 0 --timeout 15 'torch>=2' numpy; then
  echo "setup-torch: $("$VENV/bin/python" -c 'import torch; print("PyTorch", torch.__version__, "MKL", torch.backends.mkl.is_available(), "oneDNN", torch.backends.mkldnn.is_available())') in benchmarks/$VENV"
  exit 0
fi
rm -rf "$VENV"
echo "setup-torch: pip could not install PyTorch 2.x with $PY; the benchmarks will report the PyTorch 2.x peer as absent" >&2
exit 1
