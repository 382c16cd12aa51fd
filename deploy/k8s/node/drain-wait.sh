#!/usr/bin/env bash
# The Asterisk container's preStop hook: wait until the registrar has drained the node (no
# dispatcher sends it a new call), then until the node's last call has ended. Asterisk gets
# SIGTERM only then; terminationGracePeriodSeconds bounds the whole wait.
set -uo pipefail

NAME="${SESPCL_NODE_NAME:?SESPCL_NODE_NAME must be the pod name (downward API)}"
DRAINED="${SESPCL_DRAIN_SIGNAL:-/run/sespcl-node/drained}"
SIGNAL_WAIT_S="${SESPCL_DRAIN_SIGNAL_WAIT_S:-60}"
SETTLE_S="${SESPCL_DRAIN_SETTLE_S:-2}"
POLL_S="${SESPCL_DRAIN_POLL_S:-2}"
CONF="/etc/asterisk-$NAME/asterisk.conf"

# Without the signal (PostgreSQL down, the registrar gone) the calls are still waited for.
for ((waited = 0; waited < SIGNAL_WAIT_S; waited++)); do
    [[ -e $DRAINED ]] && break
    sleep 1
done
# An Originate sent just before the drain reaches the node a moment later.
sleep "$SETTLE_S"
while count="$(asterisk -C "$CONF" -rx 'core show channels count' 2>/dev/null)"; do
    [[ $count =~ (^|$'\n')0\ active\ channels ]] && exit 0
    sleep "$POLL_S"
done
# Asterisk no longer answers: no call is left to wait for.
exit 0
