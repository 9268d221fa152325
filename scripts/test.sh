#!/usr/bin/env bash
# The full check run by `make test` and CI: PostgreSQL binaries, lint, types, tests.
# Extra arguments go to pytest (for example: scripts/test.sh tests/core -x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/ensure_postgres.sh
bash scripts/ensure_oidc_provider.sh

echo "== ruff" >&2
.venv/bin/ruff check src tests

echo "== mypy" >&2
.venv/bin/mypy

echo "== pytest" >&2
# The PostgreSQL half of the suite (and the S3, OIDC and Ray parts) must fail, not skip,
# when its server cannot start.
export KETCH_TEST_POSTGRES=required
export KETCH_TEST_OIDC=required
export KETCH_TEST_S3=required
export KETCH_TEST_RAY=required
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [[ "$status" -eq 5 ]]; then
    echo "test.sh: pytest collected no tests; treating that as a failure" >&2
fi
exit "$status"
