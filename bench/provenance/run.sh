#!/bin/sh
# Provenance benchmarks; DIR holds the generated files (about 1.2 GB + 70 MB).
set -e
DIR=${1:-/tmp/pedigree-prov-bench}
mkdir -p "$DIR"
cargo build --release -p pedigree-provenance --example prov_bench
B=${CARGO_TARGET_DIR:-target}/release/examples/prov_bench
"$B" fingerprint "$DIR" 1088
sha256sum "$DIR/big.safetensors" >/dev/null && /usr/bin/time -f "sha256sum %e s" sha256sum "$DIR/big.safetensors"
"$B" lineage "$DIR/lineage" 100
"$B" index 100000
