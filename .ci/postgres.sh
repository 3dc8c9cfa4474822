#!/usr/bin/env bash
# Start a PostgreSQL server on loopback for the multi-worker tests (Debian's package) and print its URL.
# Idempotent: installs the package only when missing, starts the cluster only when it is down.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
version=$(ls /etc/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q online; then
    pg_ctlcluster "$version" main start >&2
fi
su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'dmlbench'\"" | grep -q 1 ||
    su postgres -c "psql -qc \"CREATE USER dmlbench WITH PASSWORD 'dmlbench' CREATEDB\"" >&2
# CREATEROLE: tests/test_secrets.py makes a throwaway role with a password of its own
su postgres -c "psql -qc \"ALTER USER dmlbench CREATEDB CREATEROLE\"" >&2
su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname = 'dmlbench'\"" | grep -q 1 ||
    su postgres -c "createdb -O dmlbench dmlbench" >&2
echo "postgresql://dmlbench:dmlbench@127.0.0.1:5432/dmlbench"
