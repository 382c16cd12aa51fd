#!/usr/bin/env bash
# Entrypoint of the SESPCLSwitch Asterisk image (Dockerfile.asterisk).
# Renders /opt/sespcl/asterisk-config into /etc/asterisk-$SESPCL_NODE_NAME and
# runs Asterisk in the foreground.
#
# Environment: SESPCL_NODE_NAME (default n1), SESPCL_NODE_ADDRESS (default
# 0.0.0.0), SESPCL_RTP_START/SESPCL_RTP_END (default 10000/20000),
# SESPCL_AMI_SECRET, SESPCL_ARI_PASSWORD, SESPCL_AUDIO_DIR (default
# /var/lib/sespcl/audio; mount the orchestrator's audio volume there),
# SESPCL_EXTERNAL_ADDRESS and SESPCL_EXTERNAL_SIGNALING_PORT (NAT; install.sh).
set -euo pipefail

NAME="${SESPCL_NODE_NAME:-n1}"
ADDRESS="${SESPCL_NODE_ADDRESS:-0.0.0.0}"
RTP_START="${SESPCL_RTP_START:-10000}"
RTP_END="${SESPCL_RTP_END:-20000}"
export SESPCL_AUDIO_DIR="${SESPCL_AUDIO_DIR:-/var/lib/sespcl/audio}"

SESPCL_CONFIG_GID=asterisk /opt/sespcl/asterisk-config/install.sh \
    "$NAME" "$ADDRESS" "$RTP_START" "$RTP_END" "/etc/asterisk-$NAME"
install -d -o asterisk -g asterisk -m 0750 \
    "/var/run/asterisk-$NAME" "/var/log/asterisk-$NAME" "/var/spool/asterisk-$NAME" \
    "/var/lib/asterisk-$NAME" "/var/cache/asterisk-$NAME"
[[ -d $SESPCL_AUDIO_DIR ]] || install -d -m 0755 "$SESPCL_AUDIO_DIR"
rm -f "/var/run/asterisk-$NAME/asterisk.ctl" "/var/run/asterisk-$NAME/asterisk.pid"

# -f: foreground (PID 1 of the container gets signals); no console (-c) without a tty.
exec asterisk -f -U asterisk -G asterisk -C "/etc/asterisk-$NAME/asterisk.conf" "$@"
