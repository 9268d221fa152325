#!/usr/bin/env bash
# Make sure PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin/postgres) exist, so
# the test suite can start its own throwaway cluster (tests/support/postgres.py).
#
# Quiet and idempotent when they are already installed. Otherwise installs Debian's
# `postgresql` package non-interactively (as root, or through `sudo -n` when available).
# It never starts, stops or configures a system cluster: the package may start one on
# install, which is left alone; the tests use their own.
set -euo pipefail

have_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

fail() {
    echo "ensure_postgres: $*" >&2
    exit 1
}

if have_postgres; then
    exit 0
fi

command -v apt-get >/dev/null 2>&1 \
    || fail "PostgreSQL server binaries are missing and apt-get is not available; install PostgreSQL (server) 13 or newer so that /usr/lib/postgresql/<version>/bin/postgres exists"

if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    # -n: never prompt (CI has no stdin); fail instead when a password would be needed.
    as_root=(sudo -n)
else
    fail "PostgreSQL server binaries are missing; run as root or install sudo, or run: apt-get install -y postgresql"
fi

echo "ensure_postgres: installing the Debian 'postgresql' package" >&2
export DEBIAN_FRONTEND=noninteractive
apt_options=(-q -o DPkg::Lock::Timeout=300)
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_options[@]}" update \
    || fail "apt-get update failed"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_options[@]}" install -y \
    --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    postgresql \
    || fail "apt-get install postgresql failed"

have_postgres \
    || fail "the postgresql package was installed, but no /usr/lib/postgresql/*/bin/postgres was found"
echo "ensure_postgres: installed $(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -n 1)" >&2
