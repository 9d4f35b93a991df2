#!/usr/bin/env bash
# Build the project's images as CI does (`make images`), from the repository root, with the legacy
# builder (DOCKER_BUILDKIT=0):
#   scripts/build-images.sh          mlops-xray-train:latest (training/Dockerfile, CPU TensorFlow)
#                                    and mlops-xray-api:latest (model_api/Dockerfile)
#   scripts/build-images.sh --gpu    mlops-xray-train:gpu (TENSORFLOW=gpu: CUDA TensorFlow, for the GKE Job)
#   scripts/build-images.sh --list   print the image names it builds, one per line
# Base image: $MLOPS_BASE_IMAGE if set; else the official python:3.11-slim-bookworm when it is here
# or can be pulled; else a local stand-in built by scripts/local-base-image.sh (no registry reachable).
set -euo pipefail
cd "$(dirname "$0")/.."
official="python:3.11-slim-bookworm"
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

case "${1:-}" in
    --list) printf '%s\n' mlops-xray-train:latest mlops-xray-train:gpu mlops-xray-api:latest; exit 0 ;;
    --gpu) targets=("mlops-xray-train:gpu training/Dockerfile --build-arg TENSORFLOW=gpu") ;;
    "") targets=("mlops-xray-train:latest training/Dockerfile" "mlops-xray-api:latest model_api/Dockerfile") ;;
    *) echo "usage: $0 [--gpu|--list]" >&2; exit 2 ;;
esac

base="${MLOPS_BASE_IMAGE:-}"
if [ -z "$base" ]; then
    if docker image inspect "$official" >/dev/null 2>&1 || docker pull -q "$official" >/dev/null 2>&1; then
        base="$official"
    else
        log "$official cannot be pulled here: building the local stand-in"
        base=$(scripts/local-base-image.sh)
    fi
fi

for target in "${targets[@]}"; do
    # shellcheck disable=SC2086  # each target is "NAME DOCKERFILE [FLAGS...]"
    set -- $target
    name=$1 dockerfile=$2
    shift 2
    start=$(date +%s)
    log "docker build -f $dockerfile -t $name (base $base) $*"
    DOCKER_BUILDKIT=0 docker build -q --build-arg BASE_IMAGE="$base" -f "$dockerfile" -t "$name" "$@" . >/dev/null
    log "$name built in $(( $(date +%s) - start )) s ($(docker image inspect --format '{{.Size}}' "$name" | awk '{printf "%.0f MB", $1/1e6}'))"
done
# A rebuild leaves the previous image untagged: remove those of this project only (label set in the Dockerfiles).
docker image prune -f --filter label=io.mlops-xray.image >/dev/null
