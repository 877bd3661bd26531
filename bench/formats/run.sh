#!/usr/bin/env bash
# Model-format benchmark: pedigree vs ModelAudit vs modelscan on tests/formats-corpus.
#   bash bench/formats/run.sh            # venv (first time), release build, detection + wall time
# Env: PEERS_VENV (default bench/.venv-formats), SKIP_BUILD=1, TOOLS=pedigree,modelaudit,modelscan,
#      TIMEOUT (s per run), PEDIGREE_BIN.
# Output: a Markdown table on stdout (also saved to bench/out/formats-table.md) and the raw
# results in bench/out/formats-detection.json.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
VENV="${PEERS_VENV:-$ROOT/bench/.venv-formats}"
export PEERS_VENV="$VENV"
if [ ! -x "$VENV/bin/modelaudit" ] || [ ! -x "$VENV/bin/modelscan" ] || ! "$VENV/bin/python" -c "import h5py, tensorflow" 2>/dev/null; then
  echo "run: creating $VENV with modelaudit and modelscan" >&2
  python3 -m venv "$VENV" || exit 2
  mkdir -p "$VENV" && printf '*\n' > "$VENV/.gitignore"
  "$VENV/bin/pip" install -q "modelaudit==0.2.54" "modelscan[tensorflow,h5py]==0.8.8" h5py || { echo "run: pip install failed" >&2; exit 2; }
fi
mkdir -p bench/out
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "run: cargo build --release -p pedigree-cli" >&2
  cargo build --release -p pedigree-cli >bench/out/pedigree-build.log 2>&1 || {
    echo "run: pedigree build failed (bench/out/pedigree-build.log)" >&2; exit 2; }
fi
if [ ! -f tests/formats-corpus/expected.json ]; then
  echo "run: tests/formats-corpus/expected.json missing (run tests/formats-corpus/make_samples.py)" >&2
  exit 2
fi
"$VENV/bin/python" "$HERE/bench.py" | tee bench/out/formats-table.md
