#!/usr/bin/env bash
# Makes sure Node's WebGPU (Dawn, npm package `webgpu`) finds an adapter.
# When none is found and we are root on Debian bookworm, installs the Vulkan loader and
# Mesa 25's lavapipe (a CPU Vulkan driver) from bookworm-backports; Mesa 22 is too old for Dawn.
# Idempotent: does nothing when an adapter already exists.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

probe() { node scripts/probe-adapter.mjs; }

if probe; then
  echo "setup-webgpu: adapter found, nothing to install"
  exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  cat >&2 <<MSG
setup-webgpu: no WebGPU adapter found and this is not root on Debian, so nothing was installed.
Install a Vulkan driver (e.g. Mesa >= 24 lavapipe: mesa-vulkan-drivers + libvulkan1) or run on a machine with a GPU.
MSG
  exit 1
fi

sources=/etc/apt/sources.list.d/debian.sources
backports=/etc/apt/sources.list.d/bookworm-backports.sources
if [ ! -f "$backports" ]; then
  [ -f "$sources" ] || { echo "setup-webgpu: $sources not found; cannot derive a backports entry" >&2; exit 1; }
  # Reuse the main archive's stanza (the one whose Suites include plain 'bookworm'), switching its suite.
  awk -v RS= -v ORS='\n\n' '/(^|\n)Suites:[^\n]*bookworm([ \n]|$)/ && !/bookworm-security/ {
      gsub(/(^|\n)Suites:[^\n]*/, "\nSuites: bookworm-backports"); sub(/^\n/, ""); print; exit }' "$sources" > "$backports"
  grep -q bookworm-backports "$backports" || { rm -f "$backports"; echo "setup-webgpu: no bookworm stanza in $sources" >&2; exit 1; }
  echo "setup-webgpu: wrote $backports from $sources"
fi

echo "setup-webgpu: installing libvulkan1 and mesa-vulkan-drivers from bookworm-backports"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -t bookworm-backports libvulkan1 mesa-vulkan-drivers >/dev/null

if probe; then
  echo "setup-webgpu: adapter ready"
else
  echo "setup-webgpu: installed lavapipe but Dawn still finds no adapter" >&2
  exit 1
fi
