#!/usr/bin/env bash
# `make compose-test`: docker-compose.yml and both Dockerfiles brought up for real, with podman.
#
# Installs what the machine lacks (scripts/compose-tools.sh; `make compose-test` runs `make deps`
# first, for the venv the calls are placed from), builds the stand-in base images
# where no registry is reachable (deploy/base-images/build.sh) and the project's images, brings
# the compose file up in stages, registers both nodes and two SIPp carriers (compose services of
# the profile `test`), places calls through the published API port to their final statuses,
# scales the API, dispatchers and workers, places calls again, and brings everything down, the
# test's volumes included, whatever happened. Prints each stage's time. Re-runnable: a run first
# removes whatever an interrupted one left.
#
# podman-compose 1.6.0 with podman 4.3 ignores `condition: service_healthy` and cannot chain
# dependencies, so the stages are `up -d --no-deps` in order, and the healthchecks are run here
# (`podman healthcheck run`: no systemd runs them). docs/compose.md.
#
# Environment: SESPCL_COMPOSE_STATE (default <repo>/.compose), SESPCL_COMPOSE_PROJECT (default
# sespcl-compose-test), SESPCL_COMPOSE_TIMEOUT (seconds a stage may wait, default 120),
# SESPCL_COMPOSE_KEEP=1 (leave the containers up at the end, to look around), and the
# published ports of docker-compose.yml (SESPCL_API_PUBLISH_PORT, SESPCL_N1_SIP_PORT, ...).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
STATE="${SESPCL_COMPOSE_STATE:-$REPO/.compose}"
VENV="${SESPCL_VENV:-$REPO/.venv}"
PROJECT="${SESPCL_COMPOSE_PROJECT:-sespcl-compose-test}"
TIMEOUT="${SESPCL_COMPOSE_TIMEOUT:-120}"
LOG="$STATE/logs/compose-test.log"
export SESPCL_COMPOSE_STATE="$STATE"
export CONTAINERS_CONF="$STATE/containers.conf"
# Healthchecks stay in the images (podman drops HEALTHCHECK from its own OCI format).
export BUILDAH_FORMAT=docker
export SESPCL_PUBLISH_ADDRESS="${SESPCL_PUBLISH_ADDRESS:-127.0.0.1}"
export SESPCL_API_PUBLISH_PORT="${SESPCL_API_PUBLISH_PORT:-5100}"
export SESPCL_N1_SIP_PORT="${SESPCL_N1_SIP_PORT:-5160}"
# The nodes run with NAT settings (a documentation address): calls to the carriers on the
# private network must still keep the nodes' own addresses.
export SESPCL_EXTERNAL_ADDRESS="${SESPCL_EXTERNAL_ADDRESS:-203.0.113.10}"
API_URL="http://127.0.0.1:$SESPCL_API_PUBLISH_PORT"

log() { printf 'compose-test: %s\n' "$*" >&2; }
die() { printf 'compose-test: ERROR: %s\n' "$*" >&2; exit 1; }

declare -a TIMINGS=()
stage_name="" stage_started=0 run_started="$(date +%s.%N)"
seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
stage() { # stage NAME: ends the stage that ran, starts the next
    if [[ -n $stage_name ]]; then
        TIMINGS+=("$(printf '%-22s %6s s' "$stage_name" "$(seconds_since "$stage_started")")")
        log "$stage_name: $(seconds_since "$stage_started") s"
    fi
    stage_name=$1 stage_started="$(date +%s.%N)"
    [[ -z $stage_name ]] || log "== $stage_name"
}

PODMAN_COMPOSE=("$STATE/venv/bin/podman-compose" -p "$PROJECT" -f "$REPO/docker-compose.yml"
    --profile test --profile admin)
compose() {
    "${PODMAN_COMPOSE[@]}" "$@" >>"$LOG" 2>&1 \
        || { tail -n 30 "$LOG" >&2; die "podman-compose $* failed (log: $LOG)"; }
}

containers() { # containers [SERVICE]: the project's containers (of one service), by name
    local -a filters=(--filter "label=io.podman.compose.project=$PROJECT")
    [[ -z ${1:-} ]] || filters+=(--filter "label=io.podman.compose.service=$1")
    podman ps -a "${filters[@]}" --format '{{.Names}}' | sort
}

show_failures() { # the containers, and the logs of those unhealthy or failed
    local name
    podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}} {{.Status}}' >&2 || true
    for name in $(containers); do
        [[ "$(podman inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$name")" == "exited 0" ]] && continue
        podman healthcheck run "$name" >/dev/null 2>&1 && continue
        log "---- last lines of $name"
        podman logs --tail 25 "$name" >&2 2>&1 || true
    done
}

# Everything of the project by its label, scaled replicas and the test's volumes included (what
# podman-compose's `down` does not: it removes only the replicas the file itself declares). The
# services stop first, while PostgreSQL and Redis still answer them: `down` stops every container
# at the same moment, and services finishing their work against a database that is gone are
# killed at the timeout.
teardown() {
    command -v podman >/dev/null || return 0
    local -a services data left
    mapfile -t services < <(podman ps --filter "label=io.podman.compose.project=$PROJECT" \
        --format '{{.Names}} {{index .Labels "io.podman.compose.service"}}' | awk '$2 != "postgres" && $2 != "redis" { print $1 }')
    ((${#services[@]} == 0)) || podman stop -t 10 "${services[@]}" >>"$LOG" 2>&1 || true
    mapfile -t data < <(podman ps -q --filter "label=io.podman.compose.project=$PROJECT")
    ((${#data[@]} == 0)) || podman stop -t 10 "${data[@]}" >>"$LOG" 2>&1 || true
    mapfile -t left < <(containers)
    ((${#left[@]} == 0)) || podman rm -f -t 5 "${left[@]}" >>"$LOG" 2>&1 || true
    podman pod rm -f "pod_$PROJECT" >>"$LOG" 2>&1 || true
    mapfile -t left < <(podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT")
    ((${#left[@]} == 0)) || podman volume rm -f "${left[@]}" >>"$LOG" 2>&1 || true
    podman network rm -f "${PROJECT}_sespcl" >>"$LOG" 2>&1 || true
}

finish() {
    local rc=$?
    trap - EXIT
    ((rc == 0)) || show_failures
    stage down
    if [[ ${SESPCL_COMPOSE_KEEP:-0} == 1 ]]; then
        log "SESPCL_COMPOSE_KEEP=1: left up (project $PROJECT; the next run removes it)"
    else
        teardown
    fi
    stage ""
    log "stage timings:"
    printf '  %s\n' "${TIMINGS[@]}" >&2
    log "$( ((rc == 0)) && echo PASSED || echo FAILED) in $(seconds_since "$run_started") s"
    exit "$rc"
}

# Runs every healthcheck of the given containers until all pass; fails at the deadline or as
# soon as one of them is no longer running.
wait_healthy() {
    local deadline=$((SECONDS + TIMEOUT)) name state
    local -a pending=("$@") still
    while ((${#pending[@]})); do
        still=()
        for name in "${pending[@]}"; do
            state="$(podman inspect --format '{{.State.Status}}' "$name" 2>/dev/null || echo missing)"
            [[ $state == running ]] || { podman logs --tail 25 "$name" >&2 2>&1 || true; die "$name is $state"; }
            podman healthcheck run "$name" >/dev/null 2>&1 || still+=("$name")
        done
        pending=("${still[@]}")
        ((${#pending[@]} == 0)) && break
        ((SECONDS < deadline)) || die "not healthy after ${TIMEOUT} s: ${pending[*]}"
        sleep 1
    done
}

# GET /health with the bootstrap key until $1, a Python expression on the body `b`, holds.
wait_for_health() {
    local check=$1 deadline=$((SECONDS + TIMEOUT)) body=""
    while ((SECONDS < deadline)); do
        body="$(curl -sS -m 5 -H "Authorization: Bearer $SESPCL_API_KEY" "$API_URL/health" 2>/dev/null || true)"
        if [[ -n $body ]] && "$VENV/bin/python" -c "import json, sys; b = json.loads(sys.argv[1]); sys.exit(0 if ($check) else 1)" "$body" 2>/dev/null; then
            return 0
        fi
        sleep 1
    done
    die "GET /health never showed ($check): $body"
}

random_hex() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
write_secrets() { # fresh ones every run: the test's volumes go with it
    local name
    (
        umask 077
        for name in SESPCL_API_KEY SESPCL_AMI_SECRET SESPCL_AMI_ADMIN_SECRET SESPCL_ARI_PASSWORD \
            POSTGRES_PASSWORD SESPCL_DB_OWNER_PASSWORD SESPCL_DB_API_PASSWORD SESPCL_DB_DISPATCHER_PASSWORD \
            SESPCL_DB_WORKER_PASSWORD SESPCL_DB_NODE_PASSWORD SESPCL_DB_WEBHOOKS_PASSWORD REDIS_PASSWORD \
            GRAFANA_ADMIN_PASSWORD SESPCL_DB_GRAFANA_PASSWORD; do
            printf '%s=%s\n' "$name" "$(random_hex)"
        done
        printf 'SESPCL_WEBHOOK_SECRET=whsec_%s\n' "$(head -c 32 /dev/urandom | base64 -w0)"
    ) >"$STATE/test.env"
    set -a
    # shellcheck disable=SC1091
    . "$STATE/test.env"
    set +a
}

# SIP OPTIONS to node n1's published SIP port from the host until one is answered (UDP: a
# datagram may be lost, each try comes from a new port): any SIP answer shows the port reaches
# Asterisk through podman's NAT.
sip_probe() {
    local answer deadline=$((SECONDS + 30)) tries=1
    until answer="$(PYTHONPATH="$REPO" "$VENV/bin/python" -m tests.sip_probe 127.0.0.1 "$1" --timeout 2 2>/dev/null)"; do
        ((SECONDS < deadline)) || die "no SIP answer on 127.0.0.1:$1/udp (node n1's published SIP port)"
        tries=$((tries + 1))
    done
    log "SIP on 127.0.0.1:$1/udp answers (try $tries): $answer"
}

place_calls() { # place_calls COMPLETED BUSY
    PYTHONPATH="$REPO" "$VENV/bin/python" -m tests.compose_calls --api-url "$API_URL" --completed "$1" --busy "$2" \
        --busy-trunk busy --deadline "$TIMEOUT" || die "calls did not end as expected"
}

# Each API replica answered some of the calls (the proxy spreads them), since $1 (a date).
every_api_replica_served() {
    local since=$1 name served
    for name in $(containers api); do
        served="$(podman logs --since "$since" "$name" 2>&1 | grep -c '"route": *"/v1/calls' || true)"
        ((served > 0)) || die "API replica $name answered no /v1/calls request through the proxy"
        log "$name answered $served /v1/calls requests"
    done
}

mkdir -p "$STATE/logs"
: >"$LOG"
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stage tools
bash "$REPO/scripts/compose-tools.sh"
[[ -x $VENV/bin/python ]] || die "no Python environment in $VENV: run scripts/install-deps.sh (make deps)"

stage leftovers  # whatever an interrupted run left
teardown

stage base-images
bash "$REPO/deploy/base-images/build.sh"

stage images
write_secrets
# One service per image (podman-compose would build a shared image once per service). Then the
# images earlier source versions left untagged go: the storage stays the size of one version.
compose build migrate n1 proxy carrier-answer
podman image prune -f >>"$LOG" 2>&1

stage postgres+redis
compose up -d --no-deps postgres redis
wait_healthy $(containers postgres) $(containers redis)

stage migrate
compose up -d --no-deps migrate
rc="$(podman wait "$(containers migrate)")"
[[ $rc == 0 ]] || { podman logs "$(containers migrate)" >&2; die "migrate exited $rc"; }

stage services
compose up -d --no-deps api proxy dispatcher worker upkeep webhooks n1 n2 carrier-answer carrier-busy
wait_healthy $(containers api) $(containers proxy) $(containers dispatcher) $(containers worker) \
    $(containers upkeep) $(containers webhooks) $(containers n1) $(containers n2) \
    $(containers carrier-answer) $(containers carrier-busy)

stage register
compose run --rm --no-deps admin sh -c '
    sespcl nodes add n1 --ami-host n1 --replace &&
    sespcl nodes add n2 --ami-host n2 --driver ari --ari-url http://n2:8088/ari --replace &&
    sespcl trunks add carrier --host carrier-answer --caller-id +12025550143 --default --replace &&
    sespcl trunks add busy --host carrier-busy --replace'
wait_for_health "b['status'] == 'ok' and all(n['ok'] for n in b['checks']['asterisk']['nodes'].values())"
sip_probe "$SESPCL_N1_SIP_PORT"
transport="$(podman exec "$(containers n1)" asterisk -C /etc/asterisk-n1/asterisk.conf -rx 'pjsip show transport transport-udp')"
[[ $transport =~ external_media_address\ *:\ *"$SESPCL_EXTERNAL_ADDRESS" ]] \
    || die "node n1's transport does not carry external_media_address $SESPCL_EXTERNAL_ADDRESS: $transport"

stage calls
place_calls 3 1

stage scale
scaled_at="$(date --iso-8601=seconds)"
compose up -d --no-deps --scale dispatcher=2 dispatcher
compose up -d --no-deps --scale worker=3 worker
compose up -d --no-deps --scale api=2 api
wait_healthy $(containers dispatcher) $(containers worker) $(containers api)
wait_for_health "b['checks']['dispatcher']['running'] == 2 and b['checks']['workers']['running'] == 3"
log "running: $(containers dispatcher | wc -l) dispatchers, $(containers worker | wc -l) workers, $(containers api | wc -l) API replicas"

stage calls-scaled
place_calls 6 1
every_api_replica_served "$scaled_at"
