#!/usr/bin/env bash
# Makes sure the PyTorch oracle exists: Debian's python3-torch (PyTorch 1.13, CPU) under /usr/bin/python3,
# with python3-scipy (the OpenPose goldens use scipy.ndimage.gaussian_filter, as body.py does) and python3-opencv
# (Leffa's human-parsing post-processing in cases_onnx.py is its own cv2 code).
# The parity tests compare every op against golden files it writes. Idempotent.
set -euo pipefail
PY=/usr/bin/python3
if [ -x "$PY" ] && "$PY" -c 'import torch, numpy' 2>/dev/null; then
  echo "setup-oracle: torch $("$PY" -c 'import torch; print(torch.__version__)') found"
  if ! "$PY" -c 'import scipy.ndimage' 2>/dev/null; then
    if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
      echo "setup-oracle: scipy not found under $PY; install Debian's python3-scipy (apt-get install python3-scipy)" >&2
      exit 1
    fi
    echo "setup-oracle: installing python3-scipy"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-scipy >/dev/null
  fi
  # Leffa's human-parsing goldens (cases_onnx.py) run parsing_api.py's own post-processing, written with cv2.
  if ! "$PY" -c 'import cv2' 2>/dev/null; then
    if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
      echo "setup-oracle: cv2 not found under $PY; install Debian's python3-opencv (apt-get install python3-opencv)" >&2
      exit 1
    fi
    echo "setup-oracle: installing python3-opencv"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-opencv >/dev/null
  fi
  # Optional: torchvision's roi_align cross-checks the ROIAlign the DensePose R-CNN goldens write (skipped without it).
  if ! "$PY" -c 'import torchvision' 2>/dev/null && [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then
    echo "setup-oracle: installing python3-torchvision (optional cross-check)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torchvision >/dev/null || echo "setup-oracle: python3-torchvision not installed; the roi_align cross-check is skipped" >&2
  fi
  exit 0
fi
if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  echo "setup-oracle: PyTorch not found under $PY; install Debian's python3-torch (apt-get install python3-torch)" >&2
  exit 1
fi
echo "setup-oracle: installing python3-torch"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3-torch python3-numpy python3-scipy >/dev/null
apt-get install -y -qq --no-install-recommends python3-opencv >/dev/null
apt-get install -y -qq python3-torchvision >/dev/null || echo "setup-oracle: python3-torchvision not installed; the roi_align cross-check is skipped" >&2
"$PY" -c 'import torch; print("setup-oracle: torch", torch.__version__, "installed")'
