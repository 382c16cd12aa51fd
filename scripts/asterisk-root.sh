#!/usr/bin/env bash
# Ensure the cached Debian sid root file system with Asterisk 22 exists.
#
#   scripts/asterisk-root.sh            # build it if missing, else a fast no-op
#
# Root: ${SESPCL_ASTERISK_ROOT:-/var/cache/sespcl/asterisk-root}
# Mirror: ${SESPCL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The root is built in <root>.tmp and moved into place only when complete, so a
# half-built root is never used. Concurrent callers serialise on <root>.lock.
set -euo pipefail

ROOT="${SESPCL_ASTERISK_ROOT:-/var/cache/sespcl/asterisk-root}"
MIRROR="${SESPCL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE="${SESPCL_DEBIAN_SUITE:-sid}"
ROOT="${ROOT%/}"
TMP="${ROOT}.tmp"
APT_OPTS=(-o Acquire::Check-Valid-Until=false)

log() { printf 'asterisk-root: %s\n' "$*" >&2; }
die() { printf 'asterisk-root: ERROR: %s\n' "$*" >&2; exit 1; }

has_asterisk() {
    [[ -x "$1/usr/sbin/asterisk" ]] && compgen -G "$1/usr/lib/*/asterisk/modules/chan_pjsip.so" >/dev/null
}
# The CA list verifies carriers' TLS certificates (pjsip.conf transport-tls).
complete() { has_asterisk "$1" && [[ -s "$1/etc/ssl/certs/ca-certificates.crt" ]]; }
PACKAGES=(asterisk asterisk-modules ca-certificates)

# A root built before a package joined PACKAGES gets it added, not rebuilt.
add_missing_packages() {
    log "adding ${PACKAGES[*]} to the existing root $ROOT"
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
        sh -c 'apt-get "$@" update && apt-get "$@" install -y --no-install-recommends '"${PACKAGES[*]}"' && apt-get clean' \
        sh "${APT_OPTS[@]}" >>"${ROOT}.build.log" 2>&1 \
        || { tail -n 30 "${ROOT}.build.log" >&2; die "adding packages to $ROOT failed (log: ${ROOT}.build.log)"; }
}

# The root's asterisk user must share neither its uid nor its gid with a host account: the nodes
# see the host's /proc, and through /proc/<pid>/root a process reaches every file its uid may
# open on the host (Debian's package made uid 101, the host's postgres: PostgreSQL's data).
root_id() { awk -F: -v n=asterisk '$1 == n { print $3 }' "$ROOT/etc/$1"; }
ids_shared() {
    local uid gid
    uid="$(root_id passwd)" gid="$(root_id group)"
    [[ -n $uid ]] && { getent passwd "$uid" >/dev/null || getent group "$gid" >/dev/null; }
}

# Fast path: nothing to do.
if complete "$ROOT" && ! ids_shared; then
    exit 0
fi

[[ $EUID -eq 0 ]] || die "building the Asterisk root needs root (debootstrap, chroot); run as root"
[[ "$ROOT" == /* && "$ROOT" != / ]] || die "SESPCL_ASTERISK_ROOT must be an absolute path other than / (got '$ROOT')"

# Print the mount points under a directory (deepest first), from /proc/mounts.
mounts_under() {
    awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r
}

# Remove a directory tree, refusing if anything is still mounted under it.
safe_remove() {
    local dir="$1" m
    [[ -e "$dir" ]] || return 0
    for m in $(mounts_under "$dir"); do
        log "unmounting stale mount $m"
        umount "$m" || umount -l "$m" || die "cannot unmount $m; refusing to delete $dir"
    done
    if [[ -n "$(mounts_under "$dir")" ]]; then
        die "mounts remain under $dir; refusing to delete it"
    fi
    rm -rf --one-file-system -- "$dir"
}

# Give the root's asterisk user and group an id no host account has (files follow, in the
# root only: whatever is mounted into it is left alone).
separate_ids() {
    local uid gid new m prune=()
    uid="$(root_id passwd)" gid="$(root_id group)"
    for new in $(seq 64100 64999); do
        getent passwd "$new" >/dev/null || getent group "$new" >/dev/null && continue
        awk -F: -v i="$new" '$3 == i { found = 1 } END { exit !found }' "$ROOT/etc/passwd" "$ROOT/etc/group" && continue
        break
    done
    log "moving the root's asterisk user from uid $uid, gid $gid (host accounts have them) to $new"
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin groupmod -g "$new" asterisk
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin usermod -u "$new" -g "$new" asterisk
    for m in $(mounts_under "$ROOT"); do prune+=(-path "$m" -prune -o); done
    find "$ROOT" "${prune[@]}" -uid "$uid" -exec chown -h "$new" {} +
    find "$ROOT" "${prune[@]}" -gid "$gid" -exec chgrp -h "$new" {} +
}

mkdir -p "$(dirname "$ROOT")"
exec 9>"${ROOT}.lock"
log "waiting for lock ${ROOT}.lock"
flock 9
# Another process may have built it while we waited.
if complete "$ROOT"; then
    if ids_shared; then separate_ids; fi
    log "root at $ROOT is ready"
    exit 0
fi
if has_asterisk "$ROOT"; then
    add_missing_packages
    complete "$ROOT" || die "$ROOT still lacks part of ${PACKAGES[*]}"
    if ids_shared; then separate_ids; fi
    exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap on the host"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
fi

if [[ -e "$ROOT" ]]; then
    log "$ROOT exists but is incomplete (no usr/sbin/asterisk); rebuilding it"
    if [[ -n "$(mounts_under "$ROOT")" ]]; then
        die "$ROOT is incomplete but has mounts under it ($(mounts_under "$ROOT" | tr '\n' ' ')); stop the nodes and unmount them first"
    fi
    mv -- "$ROOT" "${ROOT}.broken.$$"
    safe_remove "${ROOT}.broken.$$"
fi

if [[ -e "$TMP" ]]; then
    log "removing leftover $TMP from an interrupted build"
    safe_remove "$TMP"
fi

cleanup_tmp_mounts() {
    local m
    for m in $(mounts_under "$TMP"); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}
trap cleanup_tmp_mounts EXIT

start=$SECONDS
log "debootstrap --variant=minbase $SUITE into $TMP from $MIRROR (about a minute)"
if ! debootstrap --variant=minbase "$SUITE" "$TMP" "$MIRROR" >"${ROOT}.build.log" 2>&1; then
    tail -n 30 "${ROOT}.build.log" >&2 || true
    die "debootstrap failed (full log: ${ROOT}.build.log)"
fi

log "installing asterisk and asterisk-modules inside the root"
mount --bind /proc "$TMP/proc"
cp -L /etc/resolv.conf "$TMP/etc/resolv.conf" 2>/dev/null || true
if ! chroot "$TMP" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
        sh -c 'apt-get "$@" update && apt-get "$@" install -y --no-install-recommends '"${PACKAGES[*]}"' && apt-get clean' \
        sh "${APT_OPTS[@]}" >>"${ROOT}.build.log" 2>&1; then
    tail -n 30 "${ROOT}.build.log" >&2 || true
    die "installing asterisk in the root failed (full log: ${ROOT}.build.log)"
fi
umount "$TMP/proc"

complete "$TMP" || die "build finished but $TMP has no usr/sbin/asterisk or chan_pjsip.so"
mv -T -- "$TMP" "$ROOT"
trap - EXIT
if ids_shared; then separate_ids; fi
log "root ready at $ROOT in $((SECONDS - start)) s ($(chroot "$ROOT" dpkg-query -W -f='${Version}' asterisk 2>/dev/null || echo '?'))"
