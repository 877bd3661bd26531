#!/usr/bin/env bash
# Sets up a fresh machine for building and testing pedigree. Idempotent.
#  - Debian packages the build and tests need;
#  - the Python venv (.venv/) holding the reference tools the interop tests run against
#    (never used by pedigree itself at analysis time);
#  - a release build of the `pedigree` binary (not under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
if [ ${#need_apt[@]} -gt 0 ]; then
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi

# The reference model_signing tool, for the signing interop tests.
bash scripts/setup-interop-venv.sh
# moto's S3-compatible server, for the registry's S3 blob-store tests.
bash scripts/setup-s3.sh
# Fashion-MNIST from Debian, for the cascade lab (the tests use a committed subset).
if [ -f scripts/setup-lab-data.sh ]; then
  bash scripts/setup-lab-data.sh
fi

# PostgreSQL, for the registry tests that run against both engines.
bash scripts/setup-postgres.sh
# Debian's Chromium, for the web UI's browser tests.
bash scripts/setup-chromium.sh

# The release binary the quick start runs. CI skips it: the tests build their own binary,
# and a second full build would only cost CI time and disk.
if [ "${CI:-}" != true ]; then
  cargo build --release -p pedigree-cli
fi
