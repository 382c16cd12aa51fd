#!/usr/bin/env bash
# Test carriers: SIPp user-agent servers answering the Asterisk nodes' trunks.
#
#   scripts/carrier.sh start NAME ADDRESS PORT SCENARIO   # SCENARIO: answer|busy|noanswer|progress|unavailable
#                                                         #           |dtmf|human|voicemail
#   scripts/carrier.sh stop NAME
#   scripts/carrier.sh status NAME                        # exit 0 when running
#
# e.g. start demo 127.0.20.1 5060 answer ; start busy 127.0.20.2 5060 busy
#
# State (pid file, log, SIPp error/trace files): ${SESPCL_STATE_DIR:-<repo>/.stack}/carrier-NAME*
# SESPCL_SIPP_TRACE=1 adds -trace_msg and -trace_stat (message and statistics logs).
# Far ends with media (dtmf, human, voicemail) send RTP from ADDRESS:SESPCL_CARRIER_MEDIA_PORT
# (default 6000):
#   dtmf       presses SESPCL_CARRIER_DIGIT (one of 0-9 * #, default 1) 2 s after the answer
#   human      streams human.ulaw, voicemail streams voicemail.ulaw, from SESPCL_CARRIER_AUDIO_DIR
#              (default the state dir; SIPp runs there): render them with tests/far_ends.py
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SESPCL_STATE_DIR:-$REPO/.stack}"
MAXFILES=65536

log() { printf 'carrier: %s\n' "$*" >&2; }
die() { printf 'carrier: ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    cat >&2 <<USAGE
usage: $0 start NAME ADDRESS PORT SCENARIO   (SCENARIO: answer|busy|noanswer|progress|unavailable|dtmf|human|voicemail)
       $0 stop NAME
       $0 status NAME
USAGE
    exit 2
}

check_name() {
    [[ $1 =~ ^[a-z][a-z0-9-]{0,30}$ ]] || die "carrier name '$1' must match ^[a-z][a-z0-9-]{0,30}\$"
}

alive() {
    local st
    st="$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null)" || return 1
    [[ -n $st && $st != Z ]]
}

# pid of carrier $1 if its sipp process is alive
carrier_pid() {
    local f="$STATE/carrier-$1.pid" pid
    [[ -r $f ]] || return 0
    pid="$(tr -dc '0-9' <"$f")"
    if [[ -n $pid ]] && alive "$pid" && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == sipp ]]; then
        printf '%s\n' "$pid"
    fi
}

udp_bound() { # udp_bound ADDRESS PORT
    ss -H -uln 2>/dev/null | awk -v a="$1:$2" '$4 == a { f = 1 } END { exit !f }'
}

cmd_start() {
    [[ $# -eq 4 ]] || usage
    local name=$1 addr=$2 port=$3 scenario=$4 sf pid i octet
    check_name "$name"
    octet='(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
    [[ $addr =~ ^$octet\.$octet\.$octet\.$octet$ ]] || die "address '$addr' is not a dotted-quad IPv4 address"
    [[ $port =~ ^[0-9]{1,5}$ ]] && (( port >= 1 && port <= 65535 )) || die "port '$port' is not a port number"
    case $scenario in
        answer | busy | noanswer | progress | unavailable | dtmf | human | voicemail) ;;
        *) die "scenario '$scenario' must be one of answer|busy|noanswer|progress|unavailable|dtmf|human|voicemail" ;;
    esac
    sf="$REPO/sipp/uas-$scenario.xml"
    [[ -r $sf ]] || die "scenario file $sf is missing"
    local workdir="$STATE" media_port="${SESPCL_CARRIER_MEDIA_PORT:-6000}" digit="${SESPCL_CARRIER_DIGIT:-1}"
    local -a media_args=()
    case $scenario in
        dtmf | human | voicemail)
            [[ $media_port =~ ^[0-9]{1,5}$ ]] && (( media_port >= 1024 && media_port <= 65533 )) \
                || die "SESPCL_CARRIER_MEDIA_PORT '$media_port' must be a port from 1024 to 65533"
            media_args=(-mi "$addr" -mp "$media_port")
            ;;
    esac
    case $scenario in
        dtmf)
            [[ $digit =~ ^[0-9*#]$ ]] || die "SESPCL_CARRIER_DIGIT '$digit' must be one of 0-9 * #"
            media_args+=(-set digit "$digit")
            ;;
        human | voicemail)
            workdir="${SESPCL_CARRIER_AUDIO_DIR:-$STATE}"
            [[ -r $workdir/$scenario.ulaw ]] \
                || die "$workdir/$scenario.ulaw is missing (render it: tests/far_ends.py write_far_end)"
            ;;
    esac

    if ! command -v sipp >/dev/null 2>&1; then
        [[ $EUID -eq 0 ]] || die "sipp is not installed (Debian package sip-tester); run as root to install it"
        log "installing sip-tester (sipp)"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends sip-tester
    fi
    mkdir -p "$STATE"

    pid="$(carrier_pid "$name")"
    if [[ -n $pid ]]; then
        log "carrier $name is already running (pid $pid): $(tr '\0' ' ' <"/proc/$pid/cmdline")"
        return 0
    fi
    if udp_bound "$addr" "$port"; then
        die "UDP $addr:$port is already in use by another process"
    fi

    local out="$STATE/carrier-$name.log"
    local -a args=(-i "$addr" -p "$port" -sf "$sf" -nostdin -max_socket "$MAXFILES" "${media_args[@]}"
        -trace_err -error_file "$STATE/carrier-$name-errors.log"
        -aa -deadcall_wait 5000)
    if [[ ${SESPCL_SIPP_TRACE:-0} == 1 ]]; then
        args+=(-trace_msg -message_file "$STATE/carrier-$name-messages.log"
            -trace_stat -stf "$STATE/carrier-$name-stat.csv" -fd 10)
    fi

    if (( $(ulimit -Hn) < MAXFILES )); then ulimit -Hn "$MAXFILES" 2>/dev/null || true; fi
    ulimit -Sn "$MAXFILES" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"

    log "starting carrier $name ($scenario) on $addr:$port"
    printf '=== %s start %s %s:%s %s\n' "$(date -Is)" "$name" "$addr" "$port" "$scenario" >>"$out"
    (
        cd "$workdir"
        exec setsid nohup sipp "${args[@]}" </dev/null >>"$out" 2>&1
    ) 8>&- 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$STATE/carrier-$name.pid"

    for ((i = 0; i < 50; i++)); do
        if ! alive "$pid"; then
            tail -n 20 "$out" >&2 || true
            rm -f "$STATE/carrier-$name.pid"
            die "sipp for carrier $name exited at start-up (log: $out)"
        fi
        if udp_bound "$addr" "$port"; then
            log "carrier $name is up (pid $pid, log $out)"
            return 0
        fi
        sleep 0.1
    done
    if ! command -v ss >/dev/null 2>&1; then
        log "carrier $name started (pid $pid; 'ss' missing, could not confirm the UDP bind)"
        return 0
    fi
    tail -n 20 "$out" >&2 || true
    die "sipp for carrier $name (pid $pid) did not bind UDP $addr:$port within 5 s"
}

cmd_stop() {
    [[ $# -eq 1 ]] || usage
    local name=$1 pid i
    check_name "$name"
    pid="$(carrier_pid "$name")"
    if [[ -z $pid ]]; then
        log "carrier $name is not running"
        rm -f "$STATE/carrier-$name.pid"
        return 0
    fi
    log "stopping carrier $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
        log "carrier $name did not exit after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 30; i++)); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then die "could not kill carrier $name (pid $pid)"; fi
    fi
    rm -f "$STATE/carrier-$name.pid"
    log "carrier $name stopped"
}

cmd_status() {
    [[ $# -eq 1 ]] || usage
    local name=$1 pid
    check_name "$name"
    pid="$(carrier_pid "$name")"
    if [[ -n $pid ]]; then
        printf 'carrier %s: running (pid %s): %s\n' "$name" "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline")"
        return 0
    fi
    printf 'carrier %s: stopped\n' "$name"
    return 3
}

[[ $# -ge 1 ]] || usage
action=$1; shift
case $action in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    *) usage ;;
esac
