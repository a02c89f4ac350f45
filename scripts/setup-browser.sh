#!/usr/bin/env bash
# Makes sure a Chromium for the browser end-to-end test exists (CHROMIUM_PATH, or chromium on PATH).
# When none is found and we are root on Debian, installs Debian's chromium package. Idempotent.
set -euo pipefail

if [ -n "${CHROMIUM_PATH:-}" ] && [ -x "$CHROMIUM_PATH" ]; then
  echo "setup-browser: using $CHROMIUM_PATH"
  exit 0
fi
if command -v chromium >/dev/null 2>&1; then
  echo "setup-browser: chromium found, nothing to install"
  exit 0
fi
if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  echo "setup-browser: no chromium found and this is not root on Debian; install Chromium and set CHROMIUM_PATH" >&2
  exit 1
fi
echo "setup-browser: installing Debian's chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
