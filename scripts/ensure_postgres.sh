#!/usr/bin/env bash
# Make sure PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin/postgres) exist, so
# the test suite can start its own throwaway cluster (tests/support/postgres.py).
#
# Quiet and idempotent when they are already installed. Otherwise installs Debian's
# `postgresql` package non-interactively (as root, or through `sudo -n` when available).
# It never starts, stops or configures a system cluster: the package may start one on
# install, which is left alone; the tests use their own.
set -euo pipefail
# shellcheck source=scripts/lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

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

apt_install ensure_postgres postgresql \
    || fail "PostgreSQL server binaries are missing; install PostgreSQL (server) 13 or newer so that /usr/lib/postgresql/<version>/bin/postgres exists"

have_postgres \
    || fail "the postgresql package was installed, but no /usr/lib/postgresql/*/bin/postgres was found"
echo "ensure_postgres: installed $(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -n 1)" >&2
