#!/usr/bin/env bash
# Build the local base image that stands in for python:3.11-slim-bookworm where no image registry is
# reachable: debootstrap --variant=minbase bookworm from the Debian mirror apt already uses, docker
# import, then Debian's Python (scripts/local-base.Dockerfile) with this machine's extra CA
# certificates. Prints the image name. Skipped when the image exists (FORCE=1 rebuilds).
set -euo pipefail
cd "$(dirname "$0")/.."
image="${MLOPS_LOCAL_BASE_IMAGE:-mlops-local/python:3.11-bookworm}"
rootfs_image="mlops-local/bookworm-minbase:latest"
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "$image"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "${FORCE:-0}" = 1 ] || ! docker image inspect "$rootfs_image" >/dev/null 2>&1; then
    # The mirror apt is configured with on this machine (never written into the repository).
    mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Codename: bookworm' | head -n 1)
    mirror="${MLOPS_DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian/}}"
    log "debootstrap --variant=minbase bookworm ($mirror)"
    debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    # The mirror that built it is the one the image's apt uses (the same one the host uses).
    printf 'deb %s bookworm main\n' "$mirror" >"$work/rootfs/etc/apt/sources.list"
    log "docker import -> $rootfs_image"
    tar -C "$work/rootfs" -c . | docker import - "$rootfs_image" >/dev/null
    rm -rf "$work/rootfs"
fi

# Build context: the Dockerfile and the host's extra certificates (none is fine).
mkdir -p "$work/context/certs"
cp scripts/local-base.Dockerfile "$work/context/Dockerfile"
find /usr/local/share/ca-certificates -name '*.crt' -exec cp {} "$work/context/certs/" \; 2>/dev/null || true
log "docker build -> $image ($(find "$work/context/certs" -name '*.crt' | wc -l) extra CA certificates)"
DOCKER_BUILDKIT=0 docker build -q --build-arg ROOTFS_IMAGE="$rootfs_image" -t "$image" "$work/context" >/dev/null
echo "$image"
