#!/usr/bin/env bash
# Create (or reuse) <repo>/.venv with the reference OpenSSF `model_signing`
# CLI, used by pedigree-sign's interop tests and bench/sign/run.sh.
# Idempotent: re-running only installs what is missing or at the wrong version.
set -euo pipefail

# Pinned: the version the interop tests were written and run against.
MODEL_SIGNING_VERSION="${MODEL_SIGNING_VERSION:-1.1.1}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.venv"
python="${PYTHON:-python3}"

if [[ ! -x "${venv}/bin/python" ]]; then
    "${python}" -m venv "${venv}"
fi

installed="$("${venv}/bin/python" -m pip show model_signing 2>/dev/null | sed -n 's/^Version: //p' || true)"
if [[ "${installed}" != "${MODEL_SIGNING_VERSION}" ]] || ! "${venv}/bin/python" -c 'import OpenSSL' 2>/dev/null; then
    "${venv}/bin/python" -m pip install --quiet --upgrade pip
    # model_signing 1.1.1 imports OpenSSL for certificate signing but does not
    # declare it, so pyopenssl is installed beside it.
    "${venv}/bin/python" -m pip install --quiet "model_signing==${MODEL_SIGNING_VERSION}" pyopenssl
fi

"${venv}/bin/model_signing" --help >/dev/null
echo "model_signing ${MODEL_SIGNING_VERSION} ready at ${venv}/bin/model_signing"
