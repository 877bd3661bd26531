#!/usr/bin/env bash
# Creates bench/.venv-peers with the peer pickle scanners (and the libraries
# make_inputs.py needs to build the benchmark inputs). Self-contained: needs only
# python3 (3.11 recommended; modelscan does not support 3.13+) and PyPI.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/bench/.venv-peers"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for c in python3.11 python3.12 python3; do
    if command -v "$c" >/dev/null 2>&1; then PY="$c"; break; fi
  done
fi
echo "setup: using $($PY --version 2>&1) at $(command -v "$PY")"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# Peer scanners, pinned to the versions benchmarked (see bench/README.md).
"$VENV/bin/python" -m pip install --quiet -r "$HERE/requirements-peers.txt"
if [ "${BENCH_WITH_TORCH:-0}" = 1 ]; then "$VENV/bin/python" -m pip install --quiet torch==2.15.0; fi
# GNU time for peak RSS (/usr/bin/time -f %M).
if ! /usr/bin/time -f %M true >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq time) || echo "setup: could not install GNU time; peak RSS will be missing"
  fi
fi
echo "*" > "$VENV/.gitignore"
"$VENV/bin/pip" freeze > "$ROOT/bench/out-peers-freeze.txt.tmp" 2>/dev/null || true
mkdir -p "$ROOT/bench/out"
mv -f "$ROOT/bench/out-peers-freeze.txt.tmp" "$ROOT/bench/out/peers-freeze.txt" 2>/dev/null || true
for t in picklescan modelscan fickling; do
  if [ -x "$VENV/bin/$t" ]; then echo "setup: $t -> $VENV/bin/$t"; else echo "setup: WARNING $t missing"; fi
done
