#!/usr/bin/env bash
# The postgres:15 stand-in's entrypoint: on the first start (an empty PGDATA) initdb as
# POSTGRES_USER with POSTGRES_PASSWORD (password logins over TCP, scram-sha-256), create
# POSTGRES_DB, run /docker-entrypoint-initdb.d/*.sh and *.sql against a server only this script
# can reach (a Unix socket), then run the server in the foreground as PID 1.
set -euo pipefail

: "${POSTGRES_PASSWORD:?the postgres stand-in needs POSTGRES_PASSWORD}"
export POSTGRES_USER="${POSTGRES_USER:-postgres}"
export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"

if [[ ${1:-} == postgres && ! -s $PGDATA/PG_VERSION ]]; then
    # UTF8 with a C.UTF-8 locale: a SQL_ASCII database would give psycopg bytes for text.
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [[ $POSTGRES_DB != postgres ]]; then
        psql -v ON_ERROR_STOP=1 -X -U "$POSTGRES_USER" -d postgres -q \
            -c "CREATE DATABASE \"$POSTGRES_DB\""
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case $f in
            *.sh) echo "docker-entrypoint.sh: running $f"; bash "$f" ;;
            *.sql) echo "docker-entrypoint.sh: running $f"; psql -v ON_ERROR_STOP=1 -X -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$f" ;;
            *) ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "docker-entrypoint.sh: PostgreSQL initialised in $PGDATA"
fi
exec "$@"
