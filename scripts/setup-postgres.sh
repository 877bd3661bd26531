#!/usr/bin/env bash
# PostgreSQL for the registry's tests and benchmark: Debian's `postgresql`, one running cluster,
# and a role `pedigree` (password `pedigree`, LOGIN CREATEDB) that the tests use to create and
# drop a fresh database per test (PEDIGREE_TEST_PG_URL defaults to
# postgres://pedigree:pedigree@127.0.0.1:5432/postgres). Idempotent: safe to run again with the
# cluster already running. Works as root (CI runs in a container without systemd, so the cluster
# is started with pg_ctlcluster, not systemctl) and as a user with sudo.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "setup-postgres: need root or sudo" >&2; exit 1; }
  SUDO=sudo
fi

if ! command -v pg_lsclusters >/dev/null || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q postgresql
fi

# The newest installed major version; Debian's package creates its `main` cluster on install,
# but a container image may have had it removed, so create it when missing.
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$ver main"; then
  $SUDO pg_createcluster "$ver" main
fi
port=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $3}')
if [ "$port" != 5432 ]; then
  echo "setup-postgres: cluster $ver/main listens on port $port, the tests expect 5432;" \
       "set PEDIGREE_TEST_PG_URL to point at it" >&2
fi
status=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $4}')
if [ "$status" != online ]; then
  $SUDO pg_ctlcluster "$ver" main start
fi

# Wait until it accepts connections (start returns before recovery may have finished).
for _ in $(seq 1 60); do
  if $SUDO -u postgres psql -p "$port" -qAtc 'SELECT 1' >/dev/null 2>&1 \
     || { [ -z "$SUDO" ] && su postgres -c "psql -p $port -qAtc 'SELECT 1'" >/dev/null 2>&1; }; then
    break
  fi
  sleep 1
done

psql_admin() {
  if [ -n "$SUDO" ]; then
    sudo -u postgres psql -p "$port" -v ON_ERROR_STOP=1 -qAt "$@"
  else
    # runuser/su: root in a container has no sudo.
    su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -qAt $(printf '%q ' "$@")"
  fi
}

psql_admin -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pedigree') THEN
    CREATE ROLE pedigree LOGIN CREATEDB PASSWORD 'pedigree';
  ELSE
    ALTER ROLE pedigree LOGIN CREATEDB PASSWORD 'pedigree';
  END IF;
END \$\$;"

# Databases left by test runs that were killed before their cleanup (pdg_t_*) are dropped here
# so they do not pile up across runs.
for db in $(psql_admin -c "SELECT datname FROM pg_database WHERE datname LIKE 'pdg\_t\_%'"); do
  psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true
done

echo "setup-postgres: PostgreSQL $ver on port $port, role pedigree ready"
