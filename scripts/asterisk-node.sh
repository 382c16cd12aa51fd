#!/usr/bin/env bash
# Run SESPCLSwitch Asterisk nodes from the shared Debian sid root (chroot).
#
#   scripts/asterisk-node.sh run NAME ADDRESS RTP_START RTP_END    # in the foreground: what
#                                       # supervisord runs under `make up` (restarted if it dies)
#   scripts/asterisk-node.sh start NAME ADDRESS RTP_START RTP_END  # daemonised, unsupervised
#   scripts/asterisk-node.sh stop NAME
#   scripts/asterisk-node.sh status NAME        # exit 0 when running
#
# e.g. start n1 127.0.10.1 10000 14999 ; start n2 127.0.10.2 15000 19999
#
# Environment: SESPCL_ASTERISK_ROOT (default /var/cache/sespcl/asterisk-root),
# SESPCL_STATE_DIR (default <repo>/.stack), SESPCL_AUDIO_DIR (default
# /var/lib/sespcl/audio), SESPCL_AMI_SECRET, SESPCL_ARI_PASSWORD,
# SESPCL_ASTERISK_START_TIMEOUT (seconds, default 30).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="${SESPCL_ASTERISK_ROOT:-/var/cache/sespcl/asterisk-root}"
ROOT="${ROOT%/}"
STATE="${SESPCL_STATE_DIR:-$REPO/.stack}"
AUDIO_DIR="${SESPCL_AUDIO_DIR:-/var/lib/sespcl/audio}"
AUDIO_DIR="${AUDIO_DIR%/}"
START_TIMEOUT="${SESPCL_ASTERISK_START_TIMEOUT:-30}"
MAXFILES=65536
CHROOT_ENV=(/usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root)

log() { printf 'asterisk-node: %s\n' "$*" >&2; }
die() { printf 'asterisk-node: ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    cat >&2 <<USAGE
usage: $0 run NAME ADDRESS RTP_START RTP_END
       $0 start NAME ADDRESS RTP_START RTP_END
       $0 stop NAME
       $0 status NAME
USAGE
    exit 2
}

check_name() {
    [[ $1 =~ ^[a-z][a-z0-9-]{0,30}$ ]] || die "node name '$1' must match ^[a-z][a-z0-9-]{0,30}\$"
}

conf() { printf '/etc/asterisk-%s/asterisk.conf' "$1"; }
pidfile_in_root() { printf '%s/run/asterisk-%s/asterisk.pid' "$ROOT" "$1"; }

# Run the Asterisk CLI of node $1 inside the root: ast_cli NAME 'command'
ast_cli() {
    local name=$1; shift
    timeout 20 chroot "$ROOT" "${CHROOT_ENV[@]}" asterisk -C "$(conf "$name")" -rx "$*"
}

# true if process $1 exists and is not a zombie
alive() {
    local st
    st="$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null)" || return 1
    [[ -n $st && $st != Z ]]
}

# pid of node $1 if its process is alive (and is asterisk), else nothing
node_pid() {
    local name=$1 f pid
    for f in "$(pidfile_in_root "$name")" "$STATE/asterisk-$name.pid"; do
        [[ -r $f ]] || continue
        pid="$(tr -dc '0-9' <"$f")"
        [[ -n $pid ]] || continue
        if alive "$pid" && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == asterisk ]]; then
            printf '%s\n' "$pid"
            return 0
        fi
    done
    return 0
}

control_answers() {
    [[ -S "$ROOT/run/asterisk-$1/asterisk.ctl" ]] && ast_cli "$1" 'core show version' >/dev/null 2>&1
}

is_mounted() {
    awk -v d="$1" '$2 == d { found = 1 } END { exit !found }' /proc/mounts
}

ami_banner() { # ami_banner ADDRESS -> prints the AMI banner line if AMI answers
    local addr=$1 line=""
    { exec 3<>"/dev/tcp/$addr/5038"; } 2>/dev/null || return 1
    IFS= read -r -t 3 line <&3 || true
    exec 3<&- 3>&- || true
    [[ $line == "Asterisk Call Manager/"* ]] || return 1
    printf '%s\n' "${line%$'\r'}"
}

show_logs() {
    local name=$1
    log "---- tail of $ROOT/var/log/asterisk-$name/messages.log"
    tail -n 40 "$ROOT/var/log/asterisk-$name/messages.log" >&2 2>/dev/null || true
    log "---- tail of $STATE/asterisk-$name.out"
    tail -n 20 "$STATE/asterisk-$name.out" >&2 2>/dev/null || true
}

install_config() {
    local name=$1 addr=$2 rtp_start=$3 rtp_end=$4 gid
    gid="$(awk -F: '$1 == "asterisk" { print $3 }' "$ROOT/etc/group")"
    [[ -n $gid ]] || die "no 'asterisk' group in $ROOT/etc/group; is the root complete?"
    SESPCL_AUDIO_DIR="$AUDIO_DIR" SESPCL_CONFIG_GID="$gid" \
        "$REPO/asterisk-config/install.sh" "$name" "$addr" "$rtp_start" "$rtp_end" "$ROOT/etc/asterisk-$name"
}

# Config, mounts, run directories and the open-files limit: what a node needs before Asterisk
# starts, whether it then runs in the foreground (run) or daemonised (start). Holds the lock.
prepare_node() {
    local name=$1 addr=$2 rtp_start=$3 rtp_end=$4 banner
    if banner="$(ami_banner "$addr")"; then
        die "something already answers AMI on $addr:5038 ($banner); another node uses address $addr?"
    fi

    # Render the config first: install.sh validates address and audio dir.
    install_config "$name" "$addr" "$rtp_start" "$rtp_end"

    # Audio dir: same path on the host and inside the root.
    if [[ ! -d $AUDIO_DIR ]]; then
        log "creating audio dir $AUDIO_DIR"
        install -d -m 0755 "$AUDIO_DIR"
    fi
    mkdir -p "$ROOT$AUDIO_DIR"
    if ! is_mounted "$ROOT$AUDIO_DIR"; then
        log "bind-mounting $AUDIO_DIR at $ROOT$AUDIO_DIR"
        mount --bind "$AUDIO_DIR" "$ROOT$AUDIO_DIR"
    fi
    if ! is_mounted "$ROOT/proc"; then
        log "bind-mounting /proc at $ROOT/proc"
        mount --bind /proc "$ROOT/proc"
    fi

    # /var/run is a symlink to /run inside the root: create the dirs from inside.
    chroot "$ROOT" "${CHROOT_ENV[@]}" install -d -o asterisk -g asterisk -m 0750 \
        "/var/run/asterisk-$name" "/var/log/asterisk-$name" "/var/spool/asterisk-$name" \
        "/var/lib/asterisk-$name" "/var/cache/asterisk-$name"
    rm -f "$ROOT/run/asterisk-$name/asterisk.pid" "$ROOT/run/asterisk-$name/asterisk.ctl"
    ln -sfn "$ROOT/var/log/asterisk-$name/messages.log" "$STATE/asterisk-$name.log"

    # File descriptors: each call uses RTP + RTCP sockets (asterisk.conf maxfiles).
    if (( $(ulimit -Hn) < MAXFILES )); then ulimit -Hn "$MAXFILES" 2>/dev/null || true; fi
    ulimit -Sn "$MAXFILES" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"
    if (( $(ulimit -Sn) < MAXFILES )); then
        log "WARNING: open-files limit is $(ulimit -Sn) (hard limit, cannot raise it here); node $name gets at most that many sockets"
    fi
    log "starting node $name on $addr (AMI :5038, ARI :8088, SIP udp :5060, RTP $rtp_start-$rtp_end)"
    printf '=== %s start %s %s %s-%s\n' "$(date -Is)" "$name" "$addr" "$rtp_start" "$rtp_end" >>"$STATE/asterisk-$name.out"
}

check_start_args() {
    [[ $# -eq 4 ]] || usage
    check_name "$1"
    [[ $EUID -eq 0 ]] || die "starting a node needs root (mount, chroot)"
    "$REPO/scripts/asterisk-root.sh"
    mkdir -p "$STATE"
}

# In the foreground, as supervisord's child: this process becomes Asterisk (exec keeps the pid,
# so supervisord's signals reach Asterisk itself, and the pid file stays right).
cmd_run() {
    check_start_args "$@"
    local name=$1 pid
    exec 8>"$STATE/.asterisk-nodes.lock"
    flock 8
    pid="$(node_pid "$name")"
    [[ -z $pid ]] || die "node $name already runs (pid $pid), outside this supervisor; run: $0 stop $name"
    prepare_node "$@"
    printf '%s\n' "$$" >"$STATE/asterisk-$name.pid"
    exec 8>&-
    exec chroot "$ROOT" "${CHROOT_ENV[@]}" asterisk -f -U asterisk -G asterisk -C "$(conf "$name")"
}

cmd_start() {
    check_start_args "$@"
    local name=$1 addr=$2 rtp_start=$3 rtp_end=$4 pid banner deadline

    # Serialise with other starts/stops (mounts, shared root).
    exec 8>"$STATE/.asterisk-nodes.lock"
    flock 8

    if control_answers "$name"; then
        log "node $name is already running (pid $(node_pid "$name")); re-installing config and reloading"
        install_config "$name" "$addr" "$rtp_start" "$rtp_end"
        ast_cli "$name" 'core reload' >/dev/null || die "core reload on node $name failed"
        return 0
    fi
    pid="$(node_pid "$name")"
    [[ -z $pid ]] || die "node $name has a live process (pid $pid) whose control socket does not answer; run: $0 stop $name"
    prepare_node "$@"

    # Asterisk daemonises; setsid detaches it from our session/terminal.
    # fd 8 (our lock) must not leak into the daemon.
    if ! setsid chroot "$ROOT" "${CHROOT_ENV[@]}" asterisk -U asterisk -G asterisk -C "$(conf "$name")" \
            </dev/null >>"$STATE/asterisk-$name.out" 2>&1 8>&-; then
        show_logs "$name"
        die "asterisk failed to start for node $name"
    fi

    deadline=$((SECONDS + START_TIMEOUT))
    until banner="$(ami_banner "$addr")"; do
        if (( SECONDS >= deadline )); then
            show_logs "$name"
            die "node $name: AMI on $addr:5038 did not answer within ${START_TIMEOUT}s"
        fi
        if [[ -z "$(node_pid "$name")" && $SECONDS -gt $((deadline - START_TIMEOUT + 3)) ]]; then
            show_logs "$name"
            die "node $name: asterisk exited during start-up"
        fi
        sleep 0.2
    done
    if ! timeout "$START_TIMEOUT" chroot "$ROOT" "${CHROOT_ENV[@]}" asterisk -C "$(conf "$name")" \
            -rx 'core waitfullybooted' >/dev/null 2>&1; then
        show_logs "$name"
        die "node $name: 'core waitfullybooted' did not succeed within ${START_TIMEOUT}s"
    fi
    pid="$(node_pid "$name")"
    [[ -n $pid ]] || { show_logs "$name"; die "node $name: no live asterisk process after start"; }
    printf '%s\n' "$pid" >"$STATE/asterisk-$name.pid"
    log "node $name is up (pid $pid, $banner, log $STATE/asterisk-$name.log)"
}

# Unmount the root's /proc and audio bind mounts when no process runs in the root.
release_mounts() {
    local p r busy=0 m
    for p in /proc/[0-9]*; do
        r="$(readlink "$p/root" 2>/dev/null)" || continue
        if [[ $r == "$ROOT" ]]; then busy=1; break; fi
    done
    if (( busy )); then
        log "other processes still run in $ROOT; leaving its mounts in place"
        return 0
    fi
    for m in "$ROOT$AUDIO_DIR" "$ROOT/proc"; do
        if is_mounted "$m"; then
            log "unmounting $m (no node left running)"
            umount "$m" || log "could not unmount $m (busy?)"
        fi
    done
}

cmd_stop() {
    [[ $# -eq 1 ]] || usage
    local name=$1 pid i
    check_name "$name"
    [[ $EUID -eq 0 ]] || die "stopping a node needs root"
    mkdir -p "$STATE"
    exec 8>"$STATE/.asterisk-nodes.lock"
    flock 8

    pid="$(node_pid "$name")"
    if [[ -z $pid ]] && ! control_answers "$name"; then
        log "node $name is not running"
        rm -f "$STATE/asterisk-$name.pid"
        release_mounts
        return 0
    fi
    log "stopping node $name${pid:+ (pid $pid)}"
    ast_cli "$name" 'core stop now' >/dev/null 2>&1 || log "'core stop now' failed; will signal the process"
    if [[ -n $pid ]]; then
        for ((i = 0; i < 100; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            log "node $name still running after 10 s; sending SIGTERM"
            kill -TERM "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
        fi
        if alive "$pid"; then
            log "node $name still running; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
            if alive "$pid"; then die "could not kill node $name (pid $pid)"; fi
        fi
    fi
    rm -f "$STATE/asterisk-$name.pid" "$ROOT/run/asterisk-$name/asterisk.pid" "$ROOT/run/asterisk-$name/asterisk.ctl"
    log "node $name stopped"
    release_mounts
}

cmd_status() {
    [[ $# -eq 1 ]] || usage
    local name=$1 pid uptime
    check_name "$name"
    pid="$(node_pid "$name")"
    if [[ -n $pid ]] && uptime="$(ast_cli "$name" 'core show uptime seconds' 2>/dev/null)"; then
        printf 'node %s: running (pid %s) %s\n' "$name" "$pid" "$(printf '%s' "$uptime" | head -n 1)"
        return 0
    fi
    if [[ -n $pid ]]; then
        printf 'node %s: process %s alive but control socket does not answer\n' "$name" "$pid"
        return 1
    fi
    printf 'node %s: stopped\n' "$name"
    return 3
}

[[ $# -ge 1 ]] || usage
action=$1; shift
case $action in
    run) cmd_run "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    *) usage ;;
esac
