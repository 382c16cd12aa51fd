#!/usr/bin/env bash
# The root file system of a LOCAL STAND-IN for docker.io/library/debian:SUITE-slim: debootstrap's
# minimal variant, slimmed as the official images are (no manuals, documentation or translations
# installed; apt keeps no caches), with the official images' package sources.
#
#   deploy/base-images/debian/rootfs.sh SUITE DIR     # SUITE: bookworm | sid
#
# Mirror: SESPCL_DEBIAN_MIRROR (default http://deb.debian.org/debian). build.sh imports DIR.
set -euo pipefail

[[ $# -eq 2 ]] || { echo "usage: $0 SUITE DIR" >&2; exit 2; }
SUITE=$1 DIR=$2
MIRROR="${SESPCL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

debootstrap --variant=minbase "$SUITE" "$DIR" "$MIRROR" >/dev/null

cat >"$DIR/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
CFG
cat >"$DIR/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
cat >"$DIR/etc/apt/apt.conf.d/docker-no-languages" <<'CFG'
Acquire::Languages "none";
CFG

rm -f "$DIR/etc/apt/sources.list"
if [[ $SUITE == sid ]]; then
    printf 'Types: deb\nURIs: %s\nSuites: sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$MIRROR" >"$DIR/etc/apt/sources.list.d/debian.sources"
else
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: %s-security\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$MIRROR" "$SUITE" "$SUITE" "$MIRROR" "$SUITE" >"$DIR/etc/apt/sources.list.d/debian.sources"
fi
# What debootstrap installed before the excludes applied, and its caches.
find "$DIR/usr/share/doc" -mindepth 2 ! -type d ! -name copyright -delete
rm -rf "$DIR"/usr/share/man/* "$DIR"/usr/share/info/* "$DIR"/usr/share/locale/* \
    "$DIR"/var/cache/apt/* "$DIR"/var/lib/apt/lists/* "$DIR"/var/log/*.log "$DIR"/var/log/apt/*
: >"$DIR/etc/resolv.conf"
