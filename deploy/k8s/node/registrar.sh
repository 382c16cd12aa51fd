#!/usr/bin/env bash
# The Asterisk pod's registrar: a container of the orchestrator image beside Asterisk, connected
# to PostgreSQL as the node's own role (sespcl_node: it may write a node's row, not read one).
#
#   registrar.sh join    the container's command: register this pod as a node of the farm at the
#                        address the downward API gives (with hostNetwork, the host's), let it
#                        take calls, then idle until the pod goes
#   registrar.sh drain   its preStop hook: no new calls for the node, then the signal the
#                        Asterisk container's preStop (drain-wait.sh) waits for before it waits
#                        for the node's calls to end
set -euo pipefail

NAME="${SESPCL_NODE_NAME:?SESPCL_NODE_NAME must be the pod name (downward API)}"
ADDRESS="${SESPCL_NODE_ADDRESS:?SESPCL_NODE_ADDRESS must be the pod IP (downward API)}"
DRAINED="${SESPCL_DRAIN_SIGNAL:-/run/sespcl-node/drained}"

case "${1:-}" in
join)
    rm -f -- "$DRAINED"
    # Every start writes the address again: a pod rescheduled to another host moves its node.
    sespcl nodes add "$NAME" --ami-host "$ADDRESS" --ari-url "http://$ADDRESS:8088/ari" \
        --driver "${SESPCL_NODE_DRIVER:-ami}" --replace
    # --replace keeps the drained flag: a node back after its drain takes calls again.
    sespcl nodes undrain "$NAME"
    idle=
    trap 'kill $idle 2>/dev/null; exit 0' TERM INT
    while :; do
        sleep 3600 &
        idle=$!
        wait "$idle"
    done
    ;;
drain)
    sespcl nodes drain "$NAME"
    touch -- "$DRAINED"
    ;;
*)
    printf 'usage: %s join|drain\n' "$0" >&2
    exit 2
    ;;
esac
