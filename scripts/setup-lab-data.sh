#!/usr/bin/env bash
# Installs Fashion-MNIST for the cascade lab (Debian package `dataset-fashion-mnist`,
# IDX files under /usr/share/datasets/fashion-mnist). Idempotent: does nothing when the
# files are already there. The unit tests do not need this; they use the committed subset in
# crates/pedigree-probe/tests/data.
set -euo pipefail

DIR=/usr/share/datasets/fashion-mnist
if [ -f "$DIR/train-images-idx3-ubyte.gz" ] && [ -f "$DIR/t10k-labels-idx1-ubyte.gz" ]; then
    echo "fashion-mnist already present in $DIR"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq dataset-fashion-mnist
test -f "$DIR/train-images-idx3-ubyte.gz"
echo "fashion-mnist installed in $DIR"
