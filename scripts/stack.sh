#!/usr/bin/env bash
# The whole SESPCLSwitch stack on one machine, in the background.
#
#   scripts/stack.sh up       start what is missing, return once /health is 200 (idempotent)
#   scripts/stack.sh down     stop exactly what `up` started
#   scripts/stack.sh restart  restart the API, dispatcher and workers (new code, new settings)
#   scripts/stack.sh status   what runs
#
# State (secrets, pids, logs) lives in SESPCL_STATE_DIR (default <repo>/.stack).
# Address plan: Asterisk nodes on 127.0.10.N, SIPp carriers on 127.0.20.N, API on 127.0.0.1:5000.
# SESPCL_NODES (default 2) nodes; SESPCL_NODE_DRIVERS (default "ami ari") says how the
# dispatcher dials each (node N takes the Nth word, cycling).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SESPCL_STATE_DIR:-$REPO/.stack}"
export SESPCL_STATE_DIR="$STATE"
VENV="${SESPCL_VENV:-$REPO/.venv}"
NODE_COUNT="${SESPCL_NODES:-2}"
WORKER_COUNT="${SESPCL_WORKERS:-2}"
HEALTH_TIMEOUT="${SESPCL_HEALTH_TIMEOUT:-90}"

log() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }

# carriers: name address scenario (the address of a trunk with no SIPp behind it is unreachable)
CARRIERS=("demo 127.0.20.1 answer" "busy 127.0.20.2 busy" "noanswer 127.0.20.3 noanswer"
          "unavailable 127.0.20.4 unavailable")
TRUNKS=("demo 127.0.20.1" "busy 127.0.20.2" "noanswer 127.0.20.3" "unavailable 127.0.20.4"
        "unreachable 127.0.20.5")
PROCESSES=(api dispatcher)
for ((i = 1; i <= WORKER_COUNT; i++)); do PROCESSES+=("worker-$i"); done

command_of() {
    case $1 in
        api) echo "$VENV/bin/sespcl serve" ;;
        dispatcher) echo "$VENV/bin/sespcl dispatcher" ;;
        worker-*) echo "$VENV/bin/sespcl worker" ;;
        *) die "unknown process $1" ;;
    esac
}

node_address() { echo "127.0.10.$1"; }
# The dispatcher's driver per node (SESPCL_NODE_DRIVERS="ami ari" by default): both are in use.
node_driver() {
    local drivers
    read -r -a drivers <<<"${SESPCL_NODE_DRIVERS:-ami ari}"
    local driver="${drivers[$(( ($1 - 1) % ${#drivers[@]} ))]}"
    [[ $driver == ami || $driver == ari ]] || die "SESPCL_NODE_DRIVERS: '$driver' is not ami or ari"
    echo "$driver"
}
node_rtp() { echo "$((10000 + ($1 - 1) * 5000)) $((10000 + $1 * 5000 - 1))"; }

random_secret() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32; }

load_env() {
    mkdir -p "$STATE/pids" "$STATE/logs"
    local secrets="$STATE/secrets.env"
    if [[ ! -f $secrets ]]; then
        (umask 077; {
            echo "SESPCL_API_KEY=${SESPCL_API_KEY:-$(random_secret)}"
            echo "SESPCL_AMI_SECRET=${SESPCL_AMI_SECRET:-$(random_secret)}"
            echo "SESPCL_ARI_PASSWORD=${SESPCL_ARI_PASSWORD:-$(random_secret)}"
        } >"$secrets")
    fi
    local api_key_from_env="${SESPCL_API_KEY:-}"
    set -a
    # shellcheck disable=SC1090
    . "$secrets"
    set +a
    if [[ -n $api_key_from_env && $api_key_from_env != "$SESPCL_API_KEY" ]]; then
        (( ${#api_key_from_env} >= 16 )) || die "SESPCL_API_KEY must be at least 16 characters"
        sed -i "s|^SESPCL_API_KEY=.*|SESPCL_API_KEY=$api_key_from_env|" "$secrets"
        export SESPCL_API_KEY="$api_key_from_env"
    fi
    export DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/sespcl}"
    export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
    export SESPCL_AUDIO_DIR="${SESPCL_AUDIO_DIR:-/var/lib/sespcl/audio}"
    export SESPCL_API_URL="${SESPCL_API_URL:-http://127.0.0.1:5000}"
    # What a shell, the tests or the demo need to talk to this stack.
    (umask 077; {
        echo "SESPCL_API_URL=$SESPCL_API_URL"
        echo "SESPCL_API_KEY=$SESPCL_API_KEY"
        echo "DATABASE_URL=$DATABASE_URL"
        echo "REDIS_URL=$REDIS_URL"
        echo "SESPCL_AUDIO_DIR=$SESPCL_AUDIO_DIR"
        echo "SESPCL_STATE_DIR=$STATE"
    } >"$STATE/env")
}

# ---- PostgreSQL and Redis: use them when they answer, else install and start them ----------

db_field() { "$VENV/bin/python" -c 'import sys, psycopg.conninfo as c; d = c.conninfo_to_dict(sys.argv[1]); print(d.get(sys.argv[2]) or sys.argv[3])' "$DATABASE_URL" "$1" "$2"; }

ensure_postgres() {
    local host port
    host="$(db_field host 127.0.0.1)"; port="$(db_field port 5432)"
    if ! pg_isready -q -h "$host" -p "$port"; then
        [[ $host == 127.0.0.1 || $host == localhost ]] || die "PostgreSQL at $host:$port does not answer"
        if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
            log "installing PostgreSQL"
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        fi
        local version; version="$(ls /etc/postgresql | sort -V | tail -1)"
        # On a host with systemd the package starts its cluster itself: then it is not ours.
        if ! pg_isready -q -h "$host" -p "$port"; then
            log "starting PostgreSQL $version"
            pg_ctlcluster --skip-systemctl-redirect "$version" main start
            touch "$STATE/started-postgres"
        fi
        for _ in $(seq 30); do pg_isready -q -h "$host" -p "$port" && break; sleep 1; done
        # a fresh cluster knows only peer auth for postgres; let the local user in over TCP
        if ! psql -h "$host" -p "$port" -U postgres -c 'select 1' >/dev/null 2>&1; then
            su postgres -c "psql -qc \"ALTER USER postgres PASSWORD NULL\"" >/dev/null
            sed -i 's/^\(host\s\+all\s\+all\s\+127.0.0.1\/32\s\+\)\S\+/\1trust/' /etc/postgresql/"$version"/main/pg_hba.conf
            pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        fi
    fi
    local name admin_url
    name="$(db_field dbname sespcl)"
    admin_url="$("$VENV/bin/python" -c 'import sys, psycopg.conninfo as c; d = c.conninfo_to_dict(sys.argv[1]); d["dbname"] = "postgres"; print(c.make_conninfo(**d))' "$DATABASE_URL")"
    if [[ "$(psql "$admin_url" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]]; then
        log "creating database $name"
        psql "$admin_url" -qc "CREATE DATABASE \"$name\"" >/dev/null
    fi
}

ensure_redis() {
    redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 && return 0
    [[ $REDIS_URL == redis://127.0.0.1:6379* || $REDIS_URL == redis://localhost:6379* ]] \
        || die "Redis at $REDIS_URL does not answer"
    if ! command -v redis-server >/dev/null; then
        log "installing Redis"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
        sleep 1  # with systemd the package starts its own server: then it is not ours
        redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 && return 0
    fi
    log "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --pidfile "$STATE/pids/redis.pid" --logfile "$STATE/logs/redis.log" >/dev/null
    touch "$STATE/started-redis"
    for _ in $(seq 20); do redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 && return 0; sleep 0.5; done
    die "Redis did not start; see $STATE/logs/redis.log"
}

# ---- supervised processes: restarted when they die, as the product guide's Supervisor does ----

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_process() {
    local name=$1 cmd; cmd="$(command_of "$name")"
    pid_alive "$STATE/pids/$name.pid" && return 0
    log "starting $name"
    setsid bash -c '
        echo $$ >"$1"; shift
        trap "kill -TERM \$child 2>/dev/null; wait \$child; exit 0" TERM INT
        while true; do
            $* & child=$!
            wait $child; rc=$?
            echo "supervisor: $* exited with $rc; restarting in 1 s" >&2
            sleep 1
        done' _ "$STATE/pids/$name.pid" "$cmd" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
    for _ in $(seq 20); do [[ -s $STATE/pids/$name.pid ]] && return 0; sleep 0.1; done
}

stop_process() {
    local name=$1 file="$STATE/pids/$1.pid" pid
    pid_alive "$file" || { rm -f "$file"; return 0; }
    pid="$(cat "$file")"
    log "stopping $name"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$file"
}

wait_healthy() {
    local body=""
    for _ in $(seq "$HEALTH_TIMEOUT"); do
        # 200 is enough to take calls; the stack is up once the dispatcher and workers report too.
        if body="$(curl -fsS -m 3 "$SESPCL_API_URL/health" 2>/dev/null)" && [[ $body == *'"status": "ok"'* ]]; then
            return 0
        fi
        sleep 1
    done
    curl -sS -m 3 "$SESPCL_API_URL/health" >&2 || true
    die "the API did not become healthy within ${HEALTH_TIMEOUT} s; logs in $STATE/logs"
}

up() {
    bash "$REPO/scripts/install-deps.sh"
    load_env
    ensure_postgres
    ensure_redis
    mkdir -p "$SESPCL_AUDIO_DIR"
    "$VENV/bin/sespcl" db migrate >/dev/null
    # The nodes read trunks from the same database (PJSIP realtime).
    export SESPCL_ASTERISK_DB_HOST="$(db_field host 127.0.0.1)" SESPCL_ASTERISK_DB_PORT="$(db_field port 5432)"
    export SESPCL_ASTERISK_DB_NAME="$(db_field dbname sespcl)" SESPCL_ASTERISK_DB_USER="$(db_field user postgres)"
    export SESPCL_ASTERISK_DB_PASSWORD="$(db_field password '')"
    local n addr spec name scenario
    # Carriers first: a node that qualifies a trunk (SIP OPTIONS, every 60 s) before its carrier
    # answers marks the contact unreachable, and refuses calls to it until the next qualify
    # ("Could not create dialog to invalid URI"), seen as calls failing in a run's first minute.
    for spec in "${CARRIERS[@]}"; do
        read -r name addr scenario <<<"$spec"
        bash "$REPO/scripts/carrier.sh" start "$name" "$addr" 5060 "$scenario"
    done
    for ((n = 1; n <= NODE_COUNT; n++)); do
        addr="$(node_address "$n")"
        # shellcheck disable=SC2046
        bash "$REPO/scripts/asterisk-node.sh" start "n$n" "$addr" $(node_rtp "$n")
        "$VENV/bin/sespcl" nodes add "n$n" --ami-host "$addr" --ari-url "http://$addr:8088/ari" \
            --driver "$(node_driver "$n")" --replace >/dev/null
    done
    for spec in "${TRUNKS[@]}"; do
        read -r name addr <<<"$spec"
        local flags=(--replace); [[ $name == demo ]] && flags+=(--default)
        "$VENV/bin/sespcl" trunks add "$name" --host "$addr" "${flags[@]}" >/dev/null
    done
    for name in "${PROCESSES[@]}"; do start_process "$name"; done
    wait_healthy
    log "up: API $SESPCL_API_URL, key in $STATE/env (SESPCL_API_KEY=$SESPCL_API_KEY)"
}

down() {
    [[ -d $STATE ]] || { log "nothing to stop"; return 0; }
    load_env
    local i spec name addr scenario
    for ((i = ${#PROCESSES[@]} - 1; i >= 0; i--)); do stop_process "${PROCESSES[$i]}"; done
    for spec in "${CARRIERS[@]}"; do
        read -r name addr scenario <<<"$spec"
        bash "$REPO/scripts/carrier.sh" stop "$name" || true
    done
    for ((i = 1; i <= NODE_COUNT; i++)); do bash "$REPO/scripts/asterisk-node.sh" stop "n$i" || true; done
    if [[ -f $STATE/started-redis ]]; then
        log "stopping Redis (started by up)"
        redis-cli -u "$REDIS_URL" shutdown nosave >/dev/null 2>&1 || true
        rm -f "$STATE/started-redis"
    fi
    if [[ -f $STATE/started-postgres ]]; then
        log "stopping PostgreSQL (started by up)"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main stop || true
        rm -f "$STATE/started-postgres"
    fi
    log "down"
}

restart() {
    load_env
    local i name
    for ((i = ${#PROCESSES[@]} - 1; i >= 0; i--)); do stop_process "${PROCESSES[$i]}"; done
    for name in "${PROCESSES[@]}"; do start_process "$name"; done
    wait_healthy
}

status() {
    load_env
    local name
    for name in "${PROCESSES[@]}"; do
        if pid_alive "$STATE/pids/$name.pid"; then echo "$name running"; else echo "$name stopped"; fi
    done
    curl -sS -m 3 "$SESPCL_API_URL/health" || true
    echo
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    restart) restart ;;
    *) echo "usage: $0 up|down|restart|status" >&2; exit 2 ;;
esac
