#!/usr/bin/env bash
# LOCAL STAND-INS for the registry images docker-compose.yml and the Dockerfiles start from, for
# machines that reach no image registry (podman; docs/compose.md):
#
#   docker.io/library/debian:bookworm-slim       debian/rootfs.sh bookworm (debootstrap), imported
#   docker.io/library/debian:sid-slim            debian/rootfs.sh sid
#   docker.io/library/python:3.11-slim-bookworm  python-3.11-slim-bookworm/Dockerfile
#   docker.io/library/postgres:15                postgres-15/Dockerfile
#   docker.io/library/redis:7-alpine             redis-7-alpine/Dockerfile
#
#   deploy/base-images/build.sh        # builds what is missing or out of date; a no-op otherwise
#
# An image of that name that is no stand-in (pulled from the registry) is kept as it is. A
# stand-in carries its recipe's hash (label org.sespcl.stand-in: the recipe's files, the parent
# image's id, and the build machine's CAs for the Python image), and is built again when the
# hash changes. Logs: $SESPCL_COMPOSE_STATE/logs/base-*.log (default <repo>/.compose).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
STATE="${SESPCL_COMPOSE_STATE:-$REPO/.compose}"
LOGS="$STATE/logs"
LABEL=org.sespcl.stand-in
EXTRA_CA_DIR=/usr/local/share/ca-certificates
log() { printf 'base-images: %s\n' "$*" >&2; }
die() { printf 'base-images: ERROR: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "debootstrap and podman need root"
mkdir -p "$LOGS"

# Prints the stand-in label of image $1: empty for an image that is no stand-in; fails when the
# image is absent.
stand_in_label() { podman image inspect --format "{{ index .Labels \"$LABEL\" }}" "$1" 2>/dev/null; }

# Is image $1 fine as it is for recipe hash $2? (present, and either no stand-in or this recipe's)
up_to_date() {
    local label
    label="$(stand_in_label "$1")" || return 1
    [[ -z $label || $label == "$2" ]]
}

hash_of() { # files and strings -> one hash
    { for arg; do if [[ -f $arg ]]; then cat -- "$arg"; else printf '%s\n' "$arg"; fi; done; } | sha256sum | cut -c1-16
}

# Removes directory $1, first undoing any mount under it (debootstrap mounts /proc and /sys inside
# while it runs): never remove through a mount.
remove_tree() {
    awk -v d="$1" 'index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r | xargs -r umount -l
    rm -rf -- "$1"
}

debian() { # debian SUITE
    local suite=$1 tag="docker.io/library/debian:$1-slim" key dir rc=0
    key="$(hash_of "$HERE/debian/rootfs.sh" "$suite" "${SESPCL_DEBIAN_MIRROR:-}")"
    up_to_date "$tag" "$key" && return 0
    log "building $tag (debootstrap $suite)"
    dir="$(mktemp -d "$STATE/rootfs-$suite.XXXXXX")"
    if bash "$HERE/debian/rootfs.sh" "$suite" "$dir/root" >"$LOGS/base-debian-$suite.log" 2>&1; then
        tar -C "$dir/root" --numeric-owner -c . \
            | podman import --change 'CMD ["bash"]' \
                --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                --change "LABEL $LABEL=$key" - "$tag" >>"$LOGS/base-debian-$suite.log" 2>&1 || rc=1
    else
        rc=1
    fi
    remove_tree "$dir"
    ((rc == 0)) || { tail -n 20 "$LOGS/base-debian-$suite.log" >&2; die "building $tag failed"; }
}

from_dockerfile() { # from_dockerfile DIR TAG PARENT
    local recipe="$HERE/$1" tag=$2 parent=$3 key context parent_id
    parent_id="$(podman image inspect --format '{{.Id}}' "$parent")"
    local -a cas=()
    [[ $1 == python-* ]] && mapfile -t cas < <(find "$EXTRA_CA_DIR" -name '*.crt' -type f 2>/dev/null | sort)
    key="$(hash_of "$recipe"/* "$parent_id" "${cas[@]}")"
    up_to_date "$tag" "$key" && return 0
    log "building $tag ($1)"
    context="$(mktemp -d "$STATE/context-$1.XXXXXX")"
    cp -a "$recipe"/. "$context/"
    mkdir -p "$context/extra-ca"
    ((${#cas[@]} == 0)) || cp -- "${cas[@]}" "$context/extra-ca/"
    local rc=0
    podman build --format docker --pull=never --label "$LABEL=$key" -t "$tag" "$context" \
        >"$LOGS/base-$1.log" 2>&1 || rc=1
    rm -rf -- "$context"
    ((rc == 0)) || { tail -n 20 "$LOGS/base-$1.log" >&2; die "building $tag failed"; }
}

# The two Debian roots download in parallel; the bookworm images follow their root.
bookworm_chain() {
    debian bookworm
    local pids=() rc=0
    from_dockerfile python-3.11-slim-bookworm docker.io/library/python:3.11-slim-bookworm \
        docker.io/library/debian:bookworm-slim & pids+=($!)
    from_dockerfile postgres-15 docker.io/library/postgres:15 docker.io/library/debian:bookworm-slim & pids+=($!)
    from_dockerfile redis-7-alpine docker.io/library/redis:7-alpine docker.io/library/debian:bookworm-slim & pids+=($!)
    for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
    return "$rc"
}
bookworm_chain & bookworm=$!
debian sid & sid=$!
rc=0
wait "$bookworm" || rc=1
wait "$sid" || rc=1
((rc == 0)) || die "some stand-in images failed (logs in $LOGS)"
