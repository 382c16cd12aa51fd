#!/usr/bin/env bash
# The compose postgres service's first start (/docker-entrypoint-initdb.d): SESPCLSwitch's roles
# and database (roles.sql), with the passwords compose requires. Runs as POSTGRES_USER.
set -euo pipefail
for name in SESPCL_DB_OWNER_PASSWORD SESPCL_DB_API_PASSWORD SESPCL_DB_DISPATCHER_PASSWORD \
            SESPCL_DB_WORKER_PASSWORD SESPCL_DB_NODE_PASSWORD SESPCL_DB_WEBHOOKS_PASSWORD \
            SESPCL_DB_GRAFANA_PASSWORD; do
    [[ -n ${!name:-} ]] || { echo "initdb.sh: $name is not set" >&2; exit 1; }
done
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -X \
    -v db="${SESPCL_DB_NAME:-sespcl}" \
    -v owner_password="$SESPCL_DB_OWNER_PASSWORD" -v api_password="$SESPCL_DB_API_PASSWORD" \
    -v dispatcher_password="$SESPCL_DB_DISPATCHER_PASSWORD" -v worker_password="$SESPCL_DB_WORKER_PASSWORD" \
    -v node_password="$SESPCL_DB_NODE_PASSWORD" -v webhooks_password="$SESPCL_DB_WEBHOOKS_PASSWORD" \
    -v grafana_password="$SESPCL_DB_GRAFANA_PASSWORD" -f /opt/sespcl/roles.sql
