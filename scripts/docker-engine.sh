#!/usr/bin/env bash
# A Docker engine for the container tests and `make images`.
#   scripts/docker-engine.sh start   use the engine `docker info` reaches, else install Debian's
#                                    docker.io (root) and start our own dockerd in the background
#   scripts/docker-engine.sh stop    stop the dockerd this script started (its own pid file), nothing else
#   scripts/docker-engine.sh status  say which engine answers
# State (pid file, log) lives in $MLOPS_DOCKERD_DIR (default /tmp/mlops-dockerd).
set -euo pipefail
dir="${MLOPS_DOCKERD_DIR:-/tmp/mlops-dockerd}"
pidfile="$dir/dockerd.pid"
# shellcheck source=scripts/apt.sh
source "$(dirname "$0")/apt.sh"
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

engine_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

install_packages() {
    # Debian's engine and debootstrap (the local base image), unless an engine is installed otherwise.
    local wanted=()
    command -v dockerd >/dev/null 2>&1 || wanted+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || wanted+=(debootstrap)
    [ ${#wanted[@]} -eq 0 ] || need_root_apt "${wanted[@]}" || exit 1
}

start() {
    install_packages
    if engine_answers; then
        log "docker engine: $(docker info --format '{{.ServerVersion}}') (already running)"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "docker-engine: no Docker engine answers and starting dockerd needs root" >&2
        exit 1
    fi
    mkdir -p "$dir"
    log "starting dockerd (pid file $pidfile, log $dir/dockerd.log)"
    # setsid: the engine outlives this shell (make runs each line in its own shell).
    setsid dockerd --pidfile "$pidfile" >"$dir/dockerd.log" 2>&1 < /dev/null &
    for _ in $(seq 1 60); do
        engine_answers && { log "docker engine ready"; return 0; }
        sleep 1
    done
    echo "docker-engine: dockerd did not answer within 60 s; its log:" >&2
    tail -20 "$dir/dockerd.log" >&2
    exit 1
}

stop() {
    [ -f "$pidfile" ] || { log "no dockerd started by this script"; return 0; }
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping dockerd (pid $pid)"
        kill "$pid"
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    fi
    rm -f "$pidfile"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if engine_answers; then docker info --format 'docker engine {{.ServerVersion}}'; else echo "no docker engine"; exit 1; fi ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
