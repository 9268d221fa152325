# shellcheck shell=bash
# Sourced by scripts/ensure_*.sh: install Debian packages non-interactively.
#
#   apt_install WHO PACKAGE...
#
# Runs `apt-get update` and `apt-get install -y --no-install-recommends PACKAGE...` as root,
# or through `sudo -n` (never prompts: CI has no stdin; fails instead when sudo would need a
# password). Keeps existing configuration files and waits up to 5 minutes for the dpkg lock.
# Says what it does on stderr, prefixed with WHO; returns non-zero, with the reason on
# stderr, when apt-get is missing, there is no way to become root, or apt-get fails.

apt_install() {
    local who="$1"
    shift
    local as_root=()
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$who: apt-get is not available to install: $*" >&2
        return 1
    fi
    if [[ "$(id -u)" -ne 0 ]]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "$who: run as root or install sudo, or run: apt-get install -y $*" >&2
            return 1
        fi
        as_root=(sudo -n)
    fi
    local apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
    echo "$who: installing the Debian packages: $*" >&2
    "${apt[@]}" update || { echo "$who: apt-get update failed" >&2; return 1; }
    "${apt[@]}" install -y --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" \
        || { echo "$who: apt-get install $* failed" >&2; return 1; }
}
