# shellcheck shell=bash
# Sourced by scripts/*.sh. need_root_apt PKG...: install the Debian packages that are missing; only
# possible as root (CI, containers). Returns 1, after saying what to install, when it cannot.
need_root_apt() {
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (install them with: sudo apt-get install ${missing[*]})" >&2
        return 1
    fi
    printf '\033[1m==> %s\033[0m\n' "apt-get install ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
