#!/usr/bin/env bash
# Debian's Chromium, which the web UI's browser tests drive headless over the DevTools protocol
# (crates/pedigree-cli/tests/registry_ui.rs). Idempotent: installs only when it is missing.
# The tests fail, naming this script, when /usr/bin/chromium is absent.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

if ! command -v chromium >/dev/null 2>&1; then
  $SUDO apt-get update -q
  # fonts-liberation: readable text in the screenshots the tests keep.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    chromium fonts-liberation
fi
chromium --version
