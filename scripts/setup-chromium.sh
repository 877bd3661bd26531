#!/usr/bin/env bash
# Debian's Chromium and its ChromeDriver: the web UI's browser test
# (crates/pedigree-cli/tests/registry_ui.rs) drives Chromium headless over WebDriver.
# Idempotent: installs only what is missing. The test fails, naming this script, without them.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  $SUDO apt-get update -q
  # fonts-liberation: readable text in the screenshots the tests keep.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    chromium chromium-driver fonts-liberation
fi
chromium --version
chromedriver --version
