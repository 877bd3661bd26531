#!/bin/sh
# Provenance benchmarks; DIR holds the generated files (about 1.2 GB + 270 MB).
#
#   PEDIGREE    the CLI binary timed end to end (default ./target/release/pedigree;
#               skipped with a note when it is not there)
#   PROV_BENCH  the bench example (default: built here, in $CARGO_TARGET_DIR or ./target)
#   PROV_REPS   runs per figure; each figure printed is the median (default 3)
set -e
DIR=${1:-/tmp/pedigree-prov-bench}
REPS=${PROV_REPS:-3}
export PROV_REPS=$REPS
mkdir -p "$DIR"
if [ -z "$PROV_BENCH" ]; then
    cargo build --release -p pedigree-provenance --example prov_bench
    PROV_BENCH=${CARGO_TARGET_DIR:-target}/release/examples/prov_bench
fi
PEDIGREE=${PEDIGREE:-./target/release/pedigree}

# median wall seconds of $REPS runs of a command (its output discarded)
median() {
    i=0
    while [ $i -lt "$REPS" ]; do
        s=$(date +%s.%N)
        "$@" >/dev/null 2>&1 || true
        e=$(date +%s.%N)
        echo "$e - $s" | bc
        i=$((i + 1))
    done | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
"$PROV_BENCH" fingerprint "$DIR" 1088
cat "$DIR/big.safetensors" >/dev/null
echo "sha256sum: $(median sha256sum "$DIR/big.safetensors") s (median of $REPS)"
"$PROV_BENCH" lineage "$DIR/lineage" 100
"$PROV_BENCH" index 100000
if [ -x "$PEDIGREE" ]; then
    echo "$PEDIGREE fingerprint big.safetensors: $(median "$PEDIGREE" fingerprint "$DIR/big.safetensors" -o /dev/null) s (median of $REPS)"
    echo "$PEDIGREE lineage over 1000 models (json): $(median "$PEDIGREE" lineage "$DIR"/lineage/fam* --format json) s (median of $REPS)"
else
    echo "($PEDIGREE not built: CLI timings skipped; set PEDIGREE=path/to/pedigree)"
fi
