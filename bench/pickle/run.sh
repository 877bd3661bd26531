#!/usr/bin/env bash
# Pickle-scanner benchmark: pedigree vs picklescan, modelscan, fickling.
#   bash bench/pickle/setup.sh && bash bench/pickle/run.sh
# Env: SCALE (input size factor, default 1), RUNS (default 5), TOOLS (comma list),
#      SKIP_BUILD=1 (use an existing binary), TIMEOUT (s per run),
#      ONLY=timing|detect (run one half), INPUTS_PYTHON (python used to make inputs),
#      PEDIGREE_BIN (the binary to measure; default $CARGO_TARGET_DIR/release/pedigree, or
#      ./target/release/pedigree without CARGO_TARGET_DIR), INPUTS (comma list of input file
#      names to time, default all).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
VENV="${PEERS_VENV:-$ROOT/bench/.venv-peers}"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  echo "run: $VENV missing; run bash bench/pickle/setup.sh first" >&2
  exit 2
fi
mkdir -p bench/out
# The build below goes to $CARGO_TARGET_DIR when set; measure that binary unless told otherwise.
export PEDIGREE_BIN="${PEDIGREE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/pedigree}"
echo "run: pedigree binary $PEDIGREE_BIN" >&2

if [ "${SKIP_BUILD:-0}" != 1 ] && [[ "${TOOLS:-pedigree}" == *pedigree* ]]; then
  echo "run: cargo build --release -p pedigree-cli" >&2
  if ! cargo build --release -p pedigree-cli >bench/out/pedigree-build.log 2>&1; then
    echo "run: WARNING pedigree build failed (see bench/out/pedigree-build.log); its rows will show an error" >&2
  fi
fi

if [ "${ONLY:-}" != detect ]; then
  "${INPUTS_PYTHON:-$PY}" "$HERE/make_inputs.py" >/dev/null || { echo "run: make_inputs failed" >&2; exit 1; }
  "$PY" "$HERE/bench.py" timing
fi
if [ "${ONLY:-}" != timing ]; then
  if [ ! -f tests/corpus/expected.json ]; then
    echo "run: tests/corpus/expected.json missing; run tests/corpus/make_corpus.py" >&2
  else
    "$PY" "$HERE/bench.py" detect
  fi
fi
echo "run: raw results in bench/out/pickle-timing.json, bench/out/pickle-detection.json" >&2
