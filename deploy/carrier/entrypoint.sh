#!/bin/sh
# SIPp answering on 5060/udp with sipp/uas-SCENARIO.xml, in the foreground (it is PID 1).
set -eu
scenario="${1:-answer}"
file="/opt/sespcl/sipp/uas-$scenario.xml"
[ -r "$file" ] || { echo "carrier: no scenario $file" >&2; exit 2; }
# -aa answers the nodes' OPTIONS (trunk qualify) with 200; errors go to the container's log.
exec sipp -sf "$file" -p 5060 -nostdin -aa -deadcall_wait 5000 -trace_err -error_file /dev/stderr
