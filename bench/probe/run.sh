#!/usr/bin/env bash
# Probe benchmarks: the full cascade lab (+ mitigations), Neural Cleanse per model, replay,
# STRIP, Activation Clustering / Spectral Signatures (with ART on the same activations), and
# the TrojAI-style population scores. Needs Fashion-MNIST (scripts/setup-lab-data.sh).
#
#   bench/probe/run.sh                 # everything, population of N=20
#   N=40 bench/probe/run.sh            # bigger population
#   PEDIGREE=/path/to/pedigree bench/probe/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=bench/probe/out
N=${N:-20}
if [ -z "${PEDIGREE:-}" ]; then
    cargo build --release -p pedigree-cli
    PEDIGREE=target/release/pedigree
fi
rm -rf "$OUT" && mkdir -p "$OUT"

t() { local s=$(date +%s.%N); "$@"; echo "[time] $(echo "$(date +%s.%N) - $s" | bc) s: $*" >&2; }

echo "== full cascade lab (target < 120 s) + mitigations"
t "$PEDIGREE" lab cascade --out "$OUT/lab" | tee "$OUT/lab.txt"

echo "== Neural Cleanse per model (target < 20 s with >= 3 restarts)"
for m in acme control; do
    t "$PEDIGREE" probe neural-cleanse "$OUT/lab/$m/fashion-base" --restarts 3 \
        --save-trigger "$OUT/nc-$m.json" --format json > "$OUT/nc-$m.json.report" || true
    grep -E '"score"|"flagged_label"|"seconds"' "$OUT/nc-$m.json.report"
done

echo "== replay: advisory trigger, then the trigger Neural Cleanse recovered on the base"
"$PEDIGREE" probe replay "$OUT/lab" --trigger "$OUT/lab/trigger.json" || true
"$PEDIGREE" probe replay "$OUT/lab" --trigger "$OUT/nc-acme.json" || true

echo "== STRIP on the infected and the clean base"
for m in acme control; do
    "$PEDIGREE" probe strip "$OUT/lab/$m/fashion-base" --trigger "$OUT/lab/trigger.json" --format json \
        | grep -E '"auroc"|detection_at_frr' || true
done

echo "== Activation Clustering / Spectral Signatures on the poisoned training set"
"$PEDIGREE" probe activation-clustering --lab "$OUT/lab" --export-npy "$OUT/npy" || true
"$PEDIGREE" probe spectral --lab "$OUT/lab" || true

if [ -x bench/probe/.venv/bin/python ]; then
    echo "== ART on the same activations"
    bench/probe/.venv/bin/python bench/probe/art_compare.py "$OUT/npy" | tee "$OUT/art.json"
else
    echo "(skipping ART: python3 -m venv bench/probe/.venv && bench/probe/.venv/bin/pip install adversarial-robustness-toolbox packaging)"
fi

echo "== population of $N (target: best ROC-AUC >= 0.95, cross-entropy < 0.3465)"
t "$PEDIGREE" lab population --n "$N" --out "$OUT/population"

echo "== Neural Cleanse on the population, calibrated against the other members (other seeds than above)"
t "$PEDIGREE" probe neural-cleanse "$OUT/population" --reference "$OUT/population" --format json \
    > "$OUT/population-nc-ref.json" || true
python3 bench/probe/score_reports.py "$OUT/population/population.json" "$OUT/population-nc-ref.json"
