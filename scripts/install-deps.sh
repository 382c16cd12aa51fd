#!/usr/bin/env bash
# Install what a fresh Debian 12 machine lacks to run SESPCLSwitch, then the Python venv.
# Idempotent and quick when everything is there.
#
#   scripts/install-deps.sh            # system packages + .venv
#   SESPCL_VENV=/path scripts/install-deps.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SESPCL_VENV:-$REPO/.venv}"
log() { printf 'install-deps: %s\n' "$*" >&2; }

# command -> Debian package
declare -A NEEDED=(
    [sipp]=sip-tester
    [espeak-ng]=espeak-ng
    [sox]=sox
    [debootstrap]=debootstrap
    [psql]=postgresql-client
    [pg_isready]=postgresql-client
    [redis-cli]=redis-tools
    [curl]=curl
    [promtool]=prometheus
    [python3]=python3
    [kubectl]=kubernetes-client  # renders deploy/k8s (make k8s-validate)
)
missing=()
for cmd in "${!NEEDED[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done
# The workers load libespeak-ng through ctypes; the venv module ships separately on Debian.
[[ -e /usr/lib/x86_64-linux-gnu/libespeak-ng.so.1 || -e /usr/lib/aarch64-linux-gnu/libespeak-ng.so.1 ]] \
    || missing+=(libespeak-ng1)
# Debian's own interpreter: the services run as an unprivileged user, who may not reach one
# installed under a home directory (pyenv's under /root).
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || missing+=(python3)
[[ -x $PYTHON ]] && "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Only promtool is wanted from Debian's Prometheus: the server its package has just started
    # (on :9090, open to all) is stopped and kept from starting at boot.
    if [[ " ${missing[*]} " == *" prometheus "* ]]; then
        if [[ -d /run/systemd/system ]]; then
            systemctl disable --now prometheus.service
        else
            update-rc.d prometheus disable && invoke-rc.d prometheus stop
        fi >/dev/null 2>&1 || true
    fi
fi

# The venv is rebuilt only when the requirements change (a stamp holds their hash), and made
# again when it was made from another interpreter.
stamp="$VENV/.sespcl-requirements"
want="$(cat "$REPO/requirements.txt" "$REPO/requirements-dev.txt" "$REPO/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [[ -x $VENV/bin/python && "$(readlink -f "$VENV/bin/python")" != "$(readlink -f "$PYTHON")" ]]; then
    log "the Python environment in $VENV was made from another interpreter: making it again"
    rm -rf -- "$VENV"
fi
if [[ ! -x $VENV/bin/python || ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
    log "preparing the Python environment in $VENV"
    [[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
    pip_log="$(mktemp)"
    if ! { "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO/requirements-dev.txt" \
           && "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e "$REPO"; } >"$pip_log" 2>&1; then
        grep -v '^WARNING: Location' "$pip_log" >&2; rm -f "$pip_log"
        log "pip failed"; exit 1
    fi
    rm -f "$pip_log"
    "$VENV/bin/python" -c 'import orchestrator, aiohttp, panoramisk, psycopg, rq, numpy, soxr' \
        || { log "the Python environment is incomplete"; exit 1; }
    printf '%s\n' "$want" >"$stamp"
fi
