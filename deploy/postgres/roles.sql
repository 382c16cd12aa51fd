-- SESPCLSwitch's PostgreSQL roles: run once per server, and again safely, as a superuser
-- (scripts/stack.sh does; so does the compose postgres service's first start, initdb.sh).
--
--   psql -v db=sespcl -v owner_password=… -v api_password=… -v dispatcher_password=… \
--        -v worker_password=… -v node_password=… -v webhooks_password=… -v grafana_password=… \
--        -f deploy/postgres/roles.sql
--
-- sespcl_owner       owns the database and its schema; `sespcl db migrate` and the CLI run as it
-- sespcl_api         the HTTP API                 \
-- sespcl_dispatcher  the dispatcher                } only the statements each runs: schema.sql
-- sespcl_worker      the RQ workers               /  grants them at every migrate
-- sespcl_node        every Asterisk node: reads the trunks (ps_*), writes CDRs; on Kubernetes it
--                    registers and drains its own node (deploy/k8s)
-- sespcl_webhooks    the webhook sender: takes, settles and records the outbox's deliveries
-- sespcl_grafana     Grafana's PostgreSQL data source: reads the grafana_* views, nothing else
-- None of them is a superuser, none may create roles or databases.
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', r)
FROM unnest(ARRAY['sespcl_owner', 'sespcl_api', 'sespcl_dispatcher', 'sespcl_worker', 'sespcl_node',
                    'sespcl_webhooks', 'sespcl_grafana']) AS r
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec

ALTER ROLE sespcl_owner PASSWORD :'owner_password';
ALTER ROLE sespcl_api PASSWORD :'api_password';
ALTER ROLE sespcl_dispatcher PASSWORD :'dispatcher_password';
ALTER ROLE sespcl_worker PASSWORD :'worker_password';
ALTER ROLE sespcl_node PASSWORD :'node_password';
ALTER ROLE sespcl_webhooks PASSWORD :'webhooks_password';
ALTER ROLE sespcl_grafana PASSWORD :'grafana_password';
-- Each process is named in pg_stat_activity by its application_name; the roles say what it may do.
ALTER ROLE sespcl_api SET statement_timeout = '60s';
-- Dashboards only read; a query typed into Grafana's editor cannot hold the database for long;
-- no JIT: compiling a panel's plan costs more than running it (each answers in milliseconds);
-- and a panel's sort of a few hundred thousand rows stays in memory (Grafana opens <= 5).
ALTER ROLE sespcl_grafana SET default_transaction_read_only = on;
ALTER ROLE sespcl_grafana SET statement_timeout = '30s';
ALTER ROLE sespcl_grafana SET jit = off;
ALTER ROLE sespcl_grafana SET work_mem = '32MB';
-- The owner may act as sespcl_grafana (SET ROLE): the dashboards' tests run every panel with
-- exactly its rights, on rows they insert in a transaction they roll back. It gains nothing by
-- it: the views are the owner's own.
GRANT sespcl_grafana TO sespcl_owner;

SELECT format('CREATE DATABASE %I OWNER sespcl_owner ENCODING %L', :'db', 'UTF8')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO sespcl_owner;
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
-- TEMPORARY: uploads and event batches stage their rows in temporary tables.
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO sespcl_api, sespcl_dispatcher, sespcl_worker;
GRANT CONNECT ON DATABASE :"db" TO sespcl_node, sespcl_webhooks, sespcl_grafana;

\connect :"db"
ALTER SCHEMA public OWNER TO sespcl_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- A database made before these roles (every object a superuser's): its objects go to the owner.
SELECT format('ALTER TABLE %I.%I OWNER TO sespcl_owner', schemaname, tablename)
FROM pg_tables WHERE schemaname = 'public' AND tableowner <> 'sespcl_owner' \gexec
SELECT format('ALTER VIEW %I.%I OWNER TO sespcl_owner', schemaname, viewname)
FROM pg_views WHERE schemaname = 'public' AND viewowner <> 'sespcl_owner' \gexec
SELECT format('ALTER SEQUENCE %I.%I OWNER TO sespcl_owner', schemaname, sequencename)
FROM pg_sequences s WHERE schemaname = 'public' AND sequenceowner <> 'sespcl_owner'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = format('%I.%I', schemaname, sequencename)::regclass
                  AND d.deptype IN ('a', 'i')) \gexec
SELECT format('ALTER ROUTINE %s OWNER TO sespcl_owner', p.oid::regprocedure)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.proowner <> 'sespcl_owner'::regrole \gexec
SELECT format('ALTER TYPE %s OWNER TO sespcl_owner', t.oid::regtype)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd') AND t.typowner <> 'sespcl_owner'::regrole \gexec
