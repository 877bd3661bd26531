#!/usr/bin/env bash
# Creates bench/hygiene/.venv with the code that `pedigree hygiene` is run over (transformers,
# sentence-transformers: only their Python sources are read, nothing is imported) and bandit,
# the peer in the speed comparison. Needs python3 and PyPI. torch is NOT installed: the
# analysis never runs the code, and torch's wheel is GBs (sentence-transformers is installed
# with --no-deps for the same reason).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"
echo "setup: using $($PY --version 2>&1) at $(command -v "$PY")"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
echo "*" > "$VENV/.gitignore"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "transformers==${TRANSFORMERS_VERSION:-4.57.1}" "bandit==${BANDIT_VERSION:-1.8.6}"
"$VENV/bin/python" -m pip install --quiet --no-deps "sentence-transformers==${ST_VERSION:-5.1.2}"
"$VENV/bin/pip" freeze > "$HERE/.venv/freeze.txt"
SP="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "setup: site-packages $SP"
for p in transformers sentence_transformers; do
  [ -d "$SP/$p" ] && echo "setup: $p -> $SP/$p ($(find "$SP/$p" -name '*.py' | wc -l) .py files)"
done
[ -x "$VENV/bin/bandit" ] && echo "setup: bandit -> $VENV/bin/bandit"
