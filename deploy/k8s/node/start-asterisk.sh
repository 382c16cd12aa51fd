#!/usr/bin/env bash
# The Asterisk container's command on Kubernetes: this pod's RTP ports, from its ordinal in the
# StatefulSet, then the image's entrypoint (the arguments).
#
#   start-asterisk.sh /opt/sespcl/asterisk-config/docker-entrypoint.sh
#
# asterisk-0 takes SESPCL_RTP_BASE .. +SESPCL_RTP_SPAN-1 (10000-14999), asterisk-1 the next span
# (15000-19999), and so on: each node's media ports are its own, so each host's firewall rule and
# each carrier's allowlist can name exactly one node's range. A pod whose range would pass 65535
# refuses to start rather than share a range.
set -euo pipefail

die() { printf 'start-asterisk: %s\n' "$*" >&2; exit 1; }

(($# > 0)) || die "usage: $0 ENTRYPOINT [ARGS...]"
NAME="${SESPCL_NODE_NAME:?SESPCL_NODE_NAME must be the pod name (downward API)}"
BASE="${SESPCL_RTP_BASE:-10000}"
SPAN="${SESPCL_RTP_SPAN:-5000}"
ordinal="${NAME##*-}"
[[ $ordinal =~ ^[0-9]+$ && $ordinal != "$NAME" ]] || die "pod name '$NAME' ends in no StatefulSet ordinal"
[[ $BASE =~ ^[0-9]+$ && $SPAN =~ ^[0-9]+$ ]] || die "SESPCL_RTP_BASE and SESPCL_RTP_SPAN must be numbers"
((SPAN >= 100)) || die "SESPCL_RTP_SPAN $SPAN is too small: each call takes two ports (RTP and RTCP)"
start=$((BASE + 10#$ordinal * SPAN))
end=$((start + SPAN - 1))
((end <= 65535)) || die "pod $NAME's RTP range $start-$end passes 65535: lower SESPCL_RTP_SPAN ($SPAN) or the replicas"

export SESPCL_RTP_START=$start SESPCL_RTP_END=$end
printf 'start-asterisk: node %s at %s, RTP %s-%s\n' "$NAME" "${SESPCL_NODE_ADDRESS:-?}" "$start" "$end" >&2
exec "$@"
