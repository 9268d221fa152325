#!/usr/bin/env bash
# Make sure the SSO tests can start their real OpenID Connect provider
# (tests/support/oidc/provider.mjs, the npm package `oidc-provider`).
#
# Quiet and idempotent when Node.js, npm and the locked packages are already installed.
# Otherwise installs Debian's `nodejs` and `npm` packages non-interactively (as root, or
# through `sudo -n`) when node is missing, then runs `npm ci` in tests/support/oidc.
# oidc-provider 9 needs Node.js ^20.19, ^22.12 or >= 23.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
provider_dir="$here/../tests/support/oidc"
# shellcheck source=scripts/lib/apt.sh
source "$here/lib/apt.sh"

fail() {
    echo "ensure_oidc_provider: $*" >&2
    exit 1
}

installed() {
    # node_modules/.package-lock.json is what `npm ci` writes last: newer than the
    # lockfile means the installed tree matches it.
    [[ -d "$provider_dir/node_modules/oidc-provider" ]] \
        && [[ "$provider_dir/node_modules/.package-lock.json" -nt "$provider_dir/package-lock.json" ]]
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install ensure_oidc_provider nodejs npm \
        || fail "Node.js and npm are missing; install Node.js 20.19+ with npm"
fi

node -e 'const [a, b] = process.versions.node.split(".").map(Number);
process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a >= 23 ? 0 : 1)' \
    || fail "Node.js $(node --version) is too old for oidc-provider 9 (needs ^20.19, ^22.12 or >= 23)"

if installed; then
    exit 0
fi

echo "ensure_oidc_provider: npm ci in tests/support/oidc" >&2
(cd "$provider_dir" && npm ci --no-audit --no-fund --loglevel=error >&2) || fail "npm ci failed"
installed || fail "npm ci finished, but node_modules/oidc-provider is missing"
