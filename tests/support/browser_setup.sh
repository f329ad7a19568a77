#!/usr/bin/env bash
# Idempotent installer for the browser check of the HTML report:
#   Debian's chromium (apt) and playwright-core (npm, drives it; no browser download).
# Prints the directory holding node_modules on stdout as its last line.
set -euo pipefail
DIR="${HUBPULSE_BROWSER_DIR:-$HOME/.cache/hubpulse-browser}"
PW_VERSION="1.65.1"
if ! command -v chromium >/dev/null; then
  echo "browser_setup.sh: installing chromium (apt)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium >&2
fi
mkdir -p "$DIR"
if [ "$(node -e "try{console.log(require('$DIR/node_modules/playwright-core/package.json').version)}catch(e){}")" != "$PW_VERSION" ]; then
  echo "browser_setup.sh: installing playwright-core $PW_VERSION (npm)" >&2
  (cd "$DIR" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --no-audit --no-fund "playwright-core@$PW_VERSION" >&2)
fi
echo "$DIR"
