#!/usr/bin/env bash
# The whole SESPCLSwitch stack on one machine, in the background.
#
#   scripts/stack.sh up       start what is missing, return once /health is 200 (idempotent)
#   scripts/stack.sh down     stop exactly what `up` started
#   scripts/stack.sh restart  restart the API, dispatcher and workers (new code, new settings)
#   scripts/stack.sh status   what runs
#
# supervisord runs the API, the dispatcher, the workers, the webhook sender, the Asterisk nodes
# and a watchdog; it restarts whatever exits (crash loops back off), the watchdog whatever stops
# answering.
# State (secrets, supervisord's config and socket, pids, logs) lives in SESPCL_STATE_DIR
# (default <repo>/.stack). Each process connects to PostgreSQL as its own role
# (deploy/postgres/roles.sql); the CLI and .stack/env use the owner's.
# Address plan: Asterisk nodes on 127.0.10.N, SIPp carriers on 127.0.20.N, API on 127.0.0.1:5000.
# SESPCL_NODES (default 2) nodes; SESPCL_NODE_DRIVERS (default "ami ari") says how the
# dispatcher dials each (node N takes the Nth word, cycling).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SESPCL_STATE_DIR:-$REPO/.stack}"
export SESPCL_STATE_DIR="$STATE"
VENV="${SESPCL_VENV:-$REPO/.venv}"
# This checkout's code, for the CLI here and every program (the venv may be shared by checkouts).
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
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
# The API, dispatcher and workers run as this unprivileged system user (made if missing): they
# need no root. The nodes start as root only to chroot, and Asterisk drops to its own user.
SERVICE_USER="${SESPCL_SERVICE_USER:-sespcl}"
SUPERVISOR_CONF="$STATE/supervisord.conf"
SUPERVISOR_SOCK="$STATE/supervisor.sock"
SUPERVISORCTL=("$VENV/bin/supervisorctl" -c "$SUPERVISOR_CONF")

node_address() { echo "127.0.10.$1"; }
# Each service process's GET /metrics, on loopback (the API's is on its own port); workers on
# METRICS_PORT_WORKERS + their number. scripts/stack-prometheus.sh scrapes them all.
METRICS_HOST=127.0.0.1 METRICS_PORT_DISPATCHER=9390 METRICS_PORT_UPKEEP=9391 METRICS_PORT_WEBHOOKS=9392
METRICS_PORT_WORKERS=9400
# shellcheck source=scripts/stack-prometheus.sh
. "$REPO/scripts/stack-prometheus.sh"
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
# Status callbacks are signed with a Standard Webhooks secret: whsec_ + base64 of 32 random bytes.
new_secret() {
    if [[ $1 == SESPCL_WEBHOOK_SECRET ]]; then echo "whsec_$(head -c 32 /dev/urandom | base64 -w0)"; else random_secret; fi
}

SECRETS=(SESPCL_API_KEY SESPCL_AMI_SECRET SESPCL_AMI_ADMIN_SECRET SESPCL_ARI_PASSWORD
         SESPCL_DB_OWNER_PASSWORD SESPCL_DB_API_PASSWORD SESPCL_DB_DISPATCHER_PASSWORD
         SESPCL_DB_WORKER_PASSWORD SESPCL_DB_NODE_PASSWORD SESPCL_DB_WEBHOOKS_PASSWORD
         SESPCL_DB_GRAFANA_PASSWORD SESPCL_WEBHOOK_SECRET)

load_env() {
    mkdir -p "$STATE/pids" "$STATE/logs" "$STATE/run"
    local secrets="$STATE/secrets.env" name
    (umask 077; touch "$secrets")
    # One random value per secret, made once (a state dir from before a secret existed gets it).
    for name in "${SECRETS[@]}"; do
        grep -q "^$name=" "$secrets" || (umask 077; echo "$name=${!name:-$(new_secret "$name")}" >>"$secrets")
    done
    local api_key_from_env="${SESPCL_API_KEY:-}" webhook_secret_from_env="${SESPCL_WEBHOOK_SECRET:-}"
    set -a
    # shellcheck disable=SC1090
    . "$secrets"
    set +a
    if [[ -n $api_key_from_env && $api_key_from_env != "$SESPCL_API_KEY" ]]; then
        (( ${#api_key_from_env} >= 16 )) || die "SESPCL_API_KEY must be at least 16 characters"
        sed -i "s|^SESPCL_API_KEY=.*|SESPCL_API_KEY=$api_key_from_env|" "$secrets"
        export SESPCL_API_KEY="$api_key_from_env"
    fi
    # A webhook secret set in the environment of `make up` wins over the one made earlier.
    if [[ -n $webhook_secret_from_env && $webhook_secret_from_env != "$SESPCL_WEBHOOK_SECRET" ]]; then
        [[ $webhook_secret_from_env =~ ^whsec_[A-Za-z0-9+/]+=*$ ]] \
            || die "SESPCL_WEBHOOK_SECRET must be whsec_ followed by base64 (of 24 to 64 random bytes)"
        sed -i "s|^SESPCL_WEBHOOK_SECRET=.*|SESPCL_WEBHOOK_SECRET=$webhook_secret_from_env|" "$secrets"
        export SESPCL_WEBHOOK_SECRET="$webhook_secret_from_env"
    fi
    # A superuser's URL: it makes the roles once; no process of the stack keeps it.
    export SESPCL_DATABASE_ADMIN_URL="${SESPCL_DATABASE_ADMIN_URL:-${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/sespcl}}"
    export DATABASE_URL; DATABASE_URL="$(role_url sespcl_owner "$SESPCL_DB_OWNER_PASSWORD")"
    export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
    export SESPCL_AUDIO_DIR="${SESPCL_AUDIO_DIR:-/var/lib/sespcl/audio}"
    export SESPCL_API_URL="${SESPCL_API_URL:-http://127.0.0.1:5000}"
    # What a shell, the tests or the demo need to talk to this stack (and the CLI to the nodes).
    (umask 077; {
        echo "SESPCL_API_URL=$SESPCL_API_URL"
        echo "SESPCL_API_KEY=$SESPCL_API_KEY"
        echo "DATABASE_URL=$DATABASE_URL"
        echo "SESPCL_DATABASE_ADMIN_URL=$SESPCL_DATABASE_ADMIN_URL"
        echo "REDIS_URL=$REDIS_URL"
        echo "SESPCL_AUDIO_DIR=$SESPCL_AUDIO_DIR"
        echo "SESPCL_STATE_DIR=$STATE"
        echo "SESPCL_AMI_ADMIN_SECRET=$SESPCL_AMI_ADMIN_SECRET"
        # Receivers verify status callbacks with it; what callbacks may reach besides public space.
        echo "SESPCL_WEBHOOK_SECRET=$SESPCL_WEBHOOK_SECRET"
        echo "SESPCL_WEBHOOK_ALLOW_HOSTS=${SESPCL_WEBHOOK_ALLOW_HOSTS:-}"
    } >"$STATE/env")
}

# ---- PostgreSQL and Redis: use them when they answer, else install and start them ----------

db_field() { "$VENV/bin/python" -c 'import sys, psycopg.conninfo as c; d = c.conninfo_to_dict(sys.argv[1]); print(d.get(sys.argv[2]) or sys.argv[3])' "$SESPCL_DATABASE_ADMIN_URL" "$1" "$2"; }
# The admin URL's server and database, as ROLE with PASSWORD.
role_url() {
    "$VENV/bin/python" - "$SESPCL_DATABASE_ADMIN_URL" "$1" "$2" <<'PY'
import sys
from urllib.parse import quote, urlencode
import psycopg.conninfo as c
d = c.conninfo_to_dict(sys.argv[1])
host, port, db = d.pop("host", "127.0.0.1"), d.pop("port", "5432"), d.pop("dbname", "sespcl")
d.pop("user", None), d.pop("password", None)
query = f"?{urlencode(d)}" if d else ""
print(f"postgresql://{quote(sys.argv[2], safe='')}:{quote(sys.argv[3], safe='')}@{host}:{port}/{quote(db, safe='')}{query}")
PY
}

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
    admin_url="$("$VENV/bin/python" -c 'import sys, psycopg.conninfo as c; d = c.conninfo_to_dict(sys.argv[1]); d["dbname"] = "postgres"; print(c.make_conninfo(**d))' "$SESPCL_DATABASE_ADMIN_URL")"
    # Roles, the database and its ownership (idempotent); the grants come with the migration.
    psql "$admin_url" -qX -v ON_ERROR_STOP=1 -v db="$name" \
        -v owner_password="$SESPCL_DB_OWNER_PASSWORD" -v api_password="$SESPCL_DB_API_PASSWORD" \
        -v dispatcher_password="$SESPCL_DB_DISPATCHER_PASSWORD" -v worker_password="$SESPCL_DB_WORKER_PASSWORD" \
        -v node_password="$SESPCL_DB_NODE_PASSWORD" -v webhooks_password="$SESPCL_DB_WEBHOOKS_PASSWORD" \
        -v grafana_password="$SESPCL_DB_GRAFANA_PASSWORD" \
        -f "$REPO/deploy/postgres/roles.sql" >/dev/null \
        || die "could not make the database roles with $admin_url (a superuser's URL: SESPCL_DATABASE_ADMIN_URL)"
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

# ---- supervised processes: supervisord (the product guide's Supervisor) and a watchdog ------

# supervisord's environment values: "…" with % doubled.
env_value() { local v=${1//%/%%}; printf '"%s"' "${v//\"/\\\"}"; }

write_supervisor_conf() {
    local n addr checks=()
    [[ $STATE$REPO$VENV != *[%\"]* ]] || die "the state, repo and venv paths may not hold % or \" (supervisord's config)"
    # supervisord starts with an empty environment: each program gets what it needs and no other
    # process's secrets, plus the SESPCL_* settings of this shell (SESPCL_MAX_CALL_S, …).
    local common="PATH=$(env_value "$PATH"),LANG=\"C.UTF-8\",REDIS_URL=$(env_value "$REDIS_URL"),SESPCL_LOG_JSON=\"true\""
    common+=",SESPCL_METRICS_HOST=$METRICS_HOST"
    common+=",PYTHONPATH=$(env_value "$REPO")"
    local service="HOME=$(env_value "$STATE/run"),USER=$(env_value "$SERVICE_USER")"
    common+=",SESPCL_AUDIO_DIR=$(env_value "$SESPCL_AUDIO_DIR")$(settings_from_shell)"
    {
        cat <<CONF
; Written by scripts/stack.sh at every \`up\`: edit the script, not this file.
[unix_http_server]
file=$SUPERVISOR_SOCK
chmod=0700

[supervisord]
logfile=$STATE/logs/supervisord.log
logfile_maxbytes=10MB
logfile_backups=3
pidfile=$STATE/pids/supervisord.pid
childlogdir=$STATE/logs
directory=$REPO
minfds=20000

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$SUPERVISOR_SOCK

; Every program: restarted when it exits; one that exits within startsecs of starting is
; retried after 1, 2, 3 ... s, and given up after startretries (the watchdog tries again a
; minute later); logs rotate at 20 MB, five kept; a stop is TERM, then KILL after stopwaitsecs.
CONF
        program() { # name command environment stopwaitsecs log-name [extra lines]
            printf '\n[program:%s]\ncommand=%s\nenvironment=%s\nautorestart=true\nstartsecs=5\nstartretries=8\n' "$1" "$2" "$3"
            printf 'stopwaitsecs=%s\nstopasgroup=true\nkillasgroup=true\nredirect_stderr=true\n' "$4"
            printf 'stdout_logfile=%s/logs/%s.log\nstdout_logfile_maxbytes=20MB\nstdout_logfile_backups=5\n' "$STATE" "$5"
            shift 5
            printf '%s\n' "$@"
        }
        for ((n = 1; n <= NODE_COUNT; n++)); do
            addr="$(node_address "$n")"
            # shellcheck disable=SC2046
            program "node-n$n" "bash $REPO/scripts/asterisk-node.sh run n$n $addr $(node_rtp "$n")" \
                "SESPCL_STATE_DIR=$(env_value "$STATE"),$common,$NODE_ENV" 15 "node-n$n" "priority=100"
            checks+=(--check "node-n$n=ami:$addr:5038")
        done
        program api "$VENV/bin/sespcl serve" \
            "DATABASE_URL=$(env_value "$(role_url sespcl_api "$SESPCL_DB_API_PASSWORD")"),$common,$service,SESPCL_API_KEY=$(env_value "$SESPCL_API_KEY")" \
            8 api "priority=200" "user=$SERVICE_USER"
        checks+=(--check "api=$SESPCL_API_URL/health/live")
        program dispatcher "$VENV/bin/sespcl dispatcher" \
            "DATABASE_URL=$(env_value "$(role_url sespcl_dispatcher "$SESPCL_DB_DISPATCHER_PASSWORD")"),$common,$service,SESPCL_HEARTBEAT_FILE=$(env_value "$STATE/run/dispatcher.beat"),SESPCL_METRICS_PORT=$METRICS_PORT_DISPATCHER" \
            8 dispatcher "priority=200" "user=$SERVICE_USER"
        checks+=(--check "dispatcher=file:$STATE/run/dispatcher.beat")
        program worker "$VENV/bin/sespcl worker" \
            "DATABASE_URL=$(env_value "$(role_url sespcl_worker "$SESPCL_DB_WORKER_PASSWORD")"),$common,$service,SESPCL_HEARTBEAT_FILE=\"$STATE/run/worker-%(process_num)d.beat\",SESPCL_METRICS_PORT=\"${METRICS_PORT_WORKERS%00}%(process_num)02d\"" \
            8 "worker-%(process_num)d" "priority=200" "user=$SERVICE_USER" "numprocs=$WORKER_COUNT" "numprocs_start=1" "process_name=%(program_name)s-%(process_num)d"
        for ((n = 1; n <= WORKER_COUNT; n++)); do checks+=(--check "worker:worker-$n=file:$STATE/run/worker-$n.beat"); done
        # VACUUM/ANALYZE where autovacuum is off: only a table's owner may, so it holds the owner's role.
        program upkeep "$VENV/bin/sespcl db upkeep" \
            "DATABASE_URL=$(env_value "$DATABASE_URL"),$common,$service,SESPCL_HEARTBEAT_FILE=$(env_value "$STATE/run/upkeep.beat"),SESPCL_METRICS_PORT=$METRICS_PORT_UPKEEP" \
            8 upkeep "priority=200" "user=$SERVICE_USER"
        checks+=(--check "upkeep=file:$STATE/run/upkeep.beat")
        # Status callbacks: the outbox's sender, as its own role; the only process with the secret.
        program webhooks "$VENV/bin/sespcl webhooks run" \
            "DATABASE_URL=$(env_value "$(role_url sespcl_webhooks "$SESPCL_DB_WEBHOOKS_PASSWORD")"),$common,$service,SESPCL_WEBHOOK_SECRET=$(env_value "$SESPCL_WEBHOOK_SECRET"),SESPCL_HEARTBEAT_FILE=$(env_value "$STATE/run/webhooks.beat"),SESPCL_METRICS_PORT=$METRICS_PORT_WEBHOOKS" \
            8 webhooks "priority=200" "user=$SERVICE_USER"
        checks+=(--check "webhooks=file:$STATE/run/webhooks.beat")
        program watchdog "$VENV/bin/sespcl watchdog --supervisor-socket $SUPERVISOR_SOCK ${checks[*]}" \
            "$common" 8 watchdog "priority=300"
    } >"$SUPERVISOR_CONF.tmp"
    mv -f "$SUPERVISOR_CONF.tmp" "$SUPERVISOR_CONF"
}

# SESPCL_* settings exported in this shell, for every program; secrets and the stack's own
# variables are not settings, and are given only to the programs that use them.
settings_from_shell() {
    local name
    for name in $(compgen -e | grep '^SESPCL_' | sort); do
        case " ${SECRETS[*]} SESPCL_DATABASE_ADMIN_URL SESPCL_STATE_DIR SESPCL_AUDIO_DIR SESPCL_API_URL SESPCL_HEARTBEAT_FILE SESPCL_LOG_JSON SESPCL_METRICS_HOST SESPCL_METRICS_PORT " in
            *" $name "*) continue ;;
        esac
        [[ $name == SESPCL_ASTERISK_* || $name == SESPCL_NODE_DRIVERS || $name == SESPCL_NODES || $name == SESPCL_WORKERS || $name == SESPCL_VENV ]] && continue
        printf ',%s=%s' "$name" "$(env_value "${!name}")"
    done
}

# The services' user, the audio directory it writes prompts into (Asterisk reads them), and its
# run directory (heartbeats, HOME). Files rendered earlier by root stay readable and replaceable.
ensure_service_user() {
    if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
        log "adding the system user $SERVICE_USER (the API, dispatcher and workers run as it)"
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
    install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0755 "$SESPCL_AUDIO_DIR"
    install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0750 "$STATE/run"
    chown "$SERVICE_USER:" "$SESPCL_AUDIO_DIR" "$STATE/run" "$STATE"/run/*.beat 2>/dev/null || true
}

supervisor_running() { [[ -S $SUPERVISOR_SOCK ]] && "${SUPERVISORCTL[@]}" pid >/dev/null 2>&1; }

start_supervisor() {
    write_supervisor_conf
    if supervisor_running; then
        log "supervisord runs: applying its configuration"
        "${SUPERVISORCTL[@]}" update >/dev/null
        "${SUPERVISORCTL[@]}" start all >/dev/null || true
    else
        log "starting supervisord (API, dispatcher, $WORKER_COUNT workers, upkeep, webhooks, $NODE_COUNT nodes, watchdog)"
        rm -f "$SUPERVISOR_SOCK"
        env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 "$VENV/bin/supervisord" -c "$SUPERVISOR_CONF" \
            || die "supervisord did not start; see $STATE/logs/supervisord.log"
    fi
}

wait_node() { # name address: AMI answers and the node has fully booted
    local deadline=$((SECONDS + 60)) ctl="asterisk -C /etc/asterisk-$1/asterisk.conf -rx 'core waitfullybooted'"
    until [[ "$(timeout 3 bash -c "exec 3<>/dev/tcp/$2/5038 && head -c 22 <&3" 2>/dev/null)" == "Asterisk Call Manager/" ]] \
            && timeout 10 chroot "${SESPCL_ASTERISK_ROOT:-/var/cache/sespcl/asterisk-root}" /usr/bin/env -i \
                PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c "$ctl" >/dev/null 2>&1; do
        (( SECONDS < deadline )) || die "node $1 did not come up within 60 s; see $STATE/logs/node-$1.log"
        sleep 0.5
    done
}

wait_healthy() {
    local body=""
    for _ in $(seq "$HEALTH_TIMEOUT"); do
        # 200 is enough to take calls; the stack is up once the dispatcher and workers report too.
        if body="$(curl -fsS -m 3 -H "Authorization: Bearer $SESPCL_API_KEY" "$SESPCL_API_URL/health" 2>/dev/null)" \
                && [[ $body == *'"status": "ok"'* ]]; then
            return 0
        fi
        sleep 1
    done
    curl -sS -m 3 -H "Authorization: Bearer $SESPCL_API_KEY" "$SESPCL_API_URL/health" >&2 || true
    die "the API did not become healthy within ${HEALTH_TIMEOUT} s; logs in $STATE/logs"
}

up() {
    bash "$REPO/scripts/install-deps.sh"
    load_env
    ensure_postgres
    ensure_redis
    ensure_service_user
    "$VENV/bin/sespcl" db migrate >/dev/null
    bash "$REPO/scripts/asterisk-root.sh"
    # The nodes read trunks from the same database (PJSIP realtime), as their own role.
    NODE_ENV="SESPCL_ASTERISK_DB_HOST=$(env_value "$(db_field host 127.0.0.1)"),SESPCL_ASTERISK_DB_PORT=$(env_value "$(db_field port 5432)")"
    NODE_ENV+=",SESPCL_ASTERISK_DB_NAME=$(env_value "$(db_field dbname sespcl)"),SESPCL_ASTERISK_DB_USER=\"sespcl_node\""
    NODE_ENV+=",SESPCL_ASTERISK_DB_PASSWORD=$(env_value "$SESPCL_DB_NODE_PASSWORD"),SESPCL_AMI_SECRET=$(env_value "$SESPCL_AMI_SECRET")"
    NODE_ENV+=",SESPCL_AMI_ADMIN_SECRET=$(env_value "$SESPCL_AMI_ADMIN_SECRET"),SESPCL_ARI_PASSWORD=$(env_value "$SESPCL_ARI_PASSWORD")"
    local n addr spec name scenario
    # Carriers first: a node that qualifies a trunk (SIP OPTIONS, every 60 s) before its carrier
    # answers marks the contact unreachable, and refuses calls to it until the next qualify
    # ("Could not create dialog to invalid URI"), seen as calls failing in a run's first minute.
    for spec in "${CARRIERS[@]}"; do
        read -r name addr scenario <<<"$spec"
        bash "$REPO/scripts/carrier.sh" start "$name" "$addr" 5060 "$scenario"
    done
    start_supervisor
    for ((n = 1; n <= NODE_COUNT; n++)); do
        addr="$(node_address "$n")"
        wait_node "n$n" "$addr"
        "$VENV/bin/sespcl" nodes add "n$n" --ami-host "$addr" --ari-url "http://$addr:8088/ari" \
            --driver "$(node_driver "$n")" --replace >/dev/null
    done
    for spec in "${TRUNKS[@]}"; do
        read -r name addr <<<"$spec"
        local flags=(--replace); [[ $name == demo ]] && flags+=(--default)
        "$VENV/bin/sespcl" trunks add "$name" --host "$addr" "${flags[@]}" >/dev/null
    done
    wait_healthy
    write_prometheus_conf
    log "up: API $SESPCL_API_URL, key in $STATE/env (SESPCL_API_KEY=$SESPCL_API_KEY)"
}

down() {
    [[ -d $STATE ]] || { log "nothing to stop"; return 0; }
    load_env
    local i spec name addr scenario pid
    if supervisor_running; then
        pid="$(cat "$STATE/pids/supervisord.pid" 2>/dev/null || true)"
        log "stopping supervisord and everything it runs"
        "${SUPERVISORCTL[@]}" shutdown >/dev/null || true
        for _ in $(seq 60); do [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    for spec in "${CARRIERS[@]}"; do
        read -r name addr scenario <<<"$spec"
        bash "$REPO/scripts/carrier.sh" stop "$name" || true
    done
    # Nodes left behind (started by hand, or by an older stack) and the root's mounts.
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
    supervisor_running || die "the stack is not up (make up)"
    "${SUPERVISORCTL[@]}" restart api dispatcher "worker:*" upkeep webhooks watchdog >/dev/null
    wait_healthy
}

status() {
    load_env
    if supervisor_running; then "${SUPERVISORCTL[@]}" status || true; else echo "supervisord is not running"; fi
    curl -sS -m 3 -H "Authorization: Bearer $SESPCL_API_KEY" "$SESPCL_API_URL/health" || true
    echo
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    restart) restart ;;
    *) echo "usage: $0 up|down|restart|status" >&2; exit 2 ;;
esac
