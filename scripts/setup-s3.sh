#!/usr/bin/env bash
# Installs the S3-compatible server the registry's S3 blob-store tests run against: moto's
# standalone server (`moto_server`) in <repo>/.venv. The tests start and stop their own server
# process on a free port; nothing is left running.
# Idempotent: re-running only installs what is missing or at the wrong version.
#
# Why moto rather than an S3 server built from crates.io: it installs from wheels in seconds,
# where compiling one takes minutes of CI time on 2 cores, and it implements the parts of the S3
# API the store uses (HEAD, GET with ranges, PUT, multipart create/upload/complete/abort).
# The same install covers the signing tests: they create IAM users, roles and STS session
# credentials in moto, then switch on its IAM mode, in which it verifies every SigV4 signature
# (see crates/pedigree-registry/tests/common/moto.rs); nothing more to install.
set -euo pipefail

# Pinned: the version the tests were written and run against.
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.venv"
python="${PYTHON:-python3}"

if [[ ! -x "${venv}/bin/python" ]]; then
    "${python}" -m venv "${venv}"
fi

installed="$("${venv}/bin/python" -m pip show moto 2>/dev/null | sed -n 's/^Version: //p' || true)"
if [[ "${installed}" != "${MOTO_VERSION}" ]] || [[ ! -x "${venv}/bin/moto_server" ]]; then
    "${venv}/bin/python" -m pip install --quiet "moto[server]==${MOTO_VERSION}"
fi

"${venv}/bin/moto_server" --help >/dev/null
echo "moto_server ${MOTO_VERSION} ready at ${venv}/bin/moto_server"
