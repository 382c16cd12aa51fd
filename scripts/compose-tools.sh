#!/usr/bin/env bash
# What running docker-compose.yml with podman needs on a fresh Debian 12 machine (no Docker
# engine): podman, buildah and runc from Debian, podman-compose from PyPI in a venv of its own,
# and a containers.conf this machine can run. Idempotent; quiet when everything is there.
#
#   scripts/compose-tools.sh
#   export CONTAINERS_CONF=.compose/containers.conf; .compose/venv/bin/podman-compose ...
#
# State: SESPCL_COMPOSE_STATE (default <repo>/.compose).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SESPCL_COMPOSE_STATE:-$REPO/.compose}"
TOOLS_VENV="$STATE/venv"
REQUIREMENTS="$REPO/deploy/podman/requirements.txt"
log() { printf 'compose-tools: %s\n' "$*" >&2; }

# netavark and aardvark-dns: the network stack whose DNS answers a compose service's name with
# every replica's address (Debian's podman falls back to CNI, without container DNS, if absent).
PACKAGES=(podman buildah runc netavark aardvark-dns iptables iproute2 debootstrap curl)
missing=()
for package in "${PACKAGES[@]}"; do
    [[ "$(dpkg-query -W -f '${Status}' "$package" 2>/dev/null)" == "install ok installed" ]] || missing+=("$package")
done
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$STATE"
# Podman's default ulimits ask for more open files than this kind of VM allows (its hard limit
# can be 20000), crun 1.8 refuses a hybrid cgroup layout that runc runs on, and netavark must be
# chosen explicitly where CNI's plugins are installed too.
nofile="$(ulimit -Hn)"
[[ $nofile == unlimited ]] && nofile=65536
((nofile <= 65536)) || nofile=65536
conf="$(printf '%s\n' \
    '# Written by scripts/compose-tools.sh: podman for docker-compose.yml on this machine.' \
    '[containers]' \
    "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=32768:32768\"]" \
    '[engine]' \
    'runtime = "runc"' \
    '[network]' \
    'network_backend = "netavark"')"
[[ -f $STATE/containers.conf && "$(cat "$STATE/containers.conf")" == "$conf" ]] \
    || printf '%s\n' "$conf" >"$STATE/containers.conf"

# A bridge that podman's CNI backend left behind (podman ran here before netavark was chosen)
# routes the subnet of netavark's default network to nowhere: builds would reach no mirror.
# Removed when no container is attached to it.
for bridge in $(ip -o link show type bridge | awk -F': ' '$2 ~ /^cni-podman[0-9]+$/ { print $2 }'); do
    if [[ -z "$(ip -o link show master "$bridge")" ]]; then
        log "removing $bridge, an unused bridge of podman's CNI backend"
        ip link delete "$bridge"
    fi
done

# The venv is made again only when the pinned requirements change.
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
stamp="$TOOLS_VENV/.sespcl-requirements"
if [[ ! -x $TOOLS_VENV/bin/podman-compose || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    log "installing podman-compose into $TOOLS_VENV"
    [[ -x $TOOLS_VENV/bin/python ]] || /usr/bin/python3 -m venv "$TOOLS_VENV"
    pip_log="$(mktemp)"
    "$TOOLS_VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS" >"$pip_log" 2>&1 \
        || { grep -v '^WARNING: Location' "$pip_log" >&2; rm -f "$pip_log"; log "pip failed"; exit 1; }
    rm -f "$pip_log"
    printf '%s\n' "$want" >"$stamp"
fi
