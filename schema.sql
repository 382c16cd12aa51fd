-- SESPCLSwitch schema: the one source of truth for tables.
-- Applied by `sespcl db migrate`; every statement is safe to run again.

CREATE OR REPLACE FUNCTION sespcl_status_rank(status text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE status
    WHEN 'queued' THEN 0 WHEN 'initiated' THEN 1 WHEN 'ringing' THEN 2 WHEN 'in-progress' THEN 3
    ELSE 4 END
$$;

-- A version-7 UUID: 48 bits of Unix milliseconds, then random bits. Rows inserted together get
-- neighbouring keys, so a million-row intake appends to the primary key's B-tree instead of
-- writing all over it (PostgreSQL 15 has no uuidv7()).
CREATE OR REPLACE FUNCTION sespcl_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
              FROM 1 FOR 6),
      52, 1), 53, 1),
    'hex')::uuid
$$;

CREATE TABLE IF NOT EXISTS trunks (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,39}$'),
    host        text NOT NULL,
    port        int  NOT NULL DEFAULT 5060 CHECK (port BETWEEN 1 AND 65535),
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS trunks_single_default ON trunks (is_default) WHERE is_default;
-- Trunk settings beyond the name (added after the first release: ALTER keeps old databases).
ALTER TABLE trunks ADD COLUMN IF NOT EXISTS transport text NOT NULL DEFAULT 'udp'
    CHECK (transport IN ('udp', 'tcp', 'tls'));
ALTER TABLE trunks ADD COLUMN IF NOT EXISTS username text;
ALTER TABLE trunks ADD COLUMN IF NOT EXISTS from_user text;
ALTER TABLE trunks ADD COLUMN IF NOT EXISTS from_domain text;
ALTER TABLE trunks ADD COLUMN IF NOT EXISTS caller_id text CHECK (caller_id ~ '^\+[1-9][0-9]{1,14}$');
ALTER TABLE trunks ADD COLUMN IF NOT EXISTS codecs text NOT NULL DEFAULT 'ulaw,alaw';
ALTER TABLE trunks ADD COLUMN IF NOT EXISTS max_channels int CHECK (max_channels > 0);
ALTER TABLE trunks ADD COLUMN IF NOT EXISTS cps real CHECK (cps > 0);
-- TLS trunks verify the carrier's certificate unless a lab says otherwise (`--tls-verify no`).
ALTER TABLE trunks ADD COLUMN IF NOT EXISTS tls_verify boolean NOT NULL DEFAULT true;

-- PJSIP realtime: what every Asterisk node reads for the trunks (sorcery.conf, extconfig.conf).
-- Rows are written only by `sespcl trunks ...`, in the same transaction as `trunks`.
-- Columns follow Asterisk's contrib/ast-db-manage; only the fields in use exist (lookups are
-- SELECT *), plus mailboxes, which res_pjsip_mwi asks for.
CREATE TABLE IF NOT EXISTS ps_endpoints (
    id                 varchar(40) PRIMARY KEY,
    transport          varchar(40),
    aors               varchar(200),
    auth               varchar(40),
    outbound_auth      varchar(40),
    context            varchar(40),
    disallow           varchar(200),
    allow              varchar(200),
    direct_media       varchar(3),
    rtp_symmetric      varchar(3),
    force_rport        varchar(3),
    rewrite_contact    varchar(3),
    from_user          varchar(40),
    from_domain        varchar(253),
    callerid           varchar(40),
    dtmf_mode          varchar(10),
    trust_id_outbound  varchar(3),
    send_pai           varchar(3),
    send_rpid          varchar(3),
    timers             varchar(10),
    allow_subscribe    varchar(3),
    identify_by        varchar(80),
    mailboxes          varchar(40)
);
CREATE TABLE IF NOT EXISTS ps_aors (
    id                 varchar(40) PRIMARY KEY,
    contact            varchar(255),
    max_contacts       integer,
    qualify_frequency  integer,
    qualify_timeout    float,
    remove_existing    varchar(3)
);
CREATE TABLE IF NOT EXISTS ps_auths (
    id         varchar(40) PRIMARY KEY,
    auth_type  varchar(10),
    username   varchar(64),
    password   varchar(128),
    realm      varchar(128)
);
CREATE TABLE IF NOT EXISTS ps_endpoint_id_ips (
    id        varchar(40) PRIMARY KEY,
    endpoint  varchar(40),
    match     varchar(80)
);


CREATE TABLE IF NOT EXISTS nodes (
    name          text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9-]{0,30}$'),
    ami_host      text NOT NULL,
    ami_port      int  NOT NULL DEFAULT 5038 CHECK (ami_port BETWEEN 1 AND 65535),
    ami_user      text NOT NULL DEFAULT 'sespcl',
    ami_secret    text NOT NULL,
    ari_url       text,
    max_channels  int  NOT NULL DEFAULT 500 CHECK (max_channels > 0),
    drained       boolean NOT NULL DEFAULT false,
    state         text NOT NULL DEFAULT 'unknown' CHECK (state IN ('unknown', 'up', 'down')),
    version       text,
    last_seen_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Which protocol the dispatcher dials a node with; AMI stays configured on every node (trunk
-- qualify uses it). ARI needs its URL and credentials.
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS driver text NOT NULL DEFAULT 'ami'
    CHECK (driver IN ('ami', 'ari'));
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS ari_user text NOT NULL DEFAULT 'sespcl';
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS ari_secret text;
-- The pace (new calls/s) the dispatcher's AIMD currently allows the node, for operators.
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS pace_cps real;
ALTER TABLE nodes DROP CONSTRAINT IF EXISTS nodes_ari_complete;
ALTER TABLE nodes ADD CONSTRAINT nodes_ari_complete
    CHECK (driver <> 'ari' OR (ari_url IS NOT NULL AND ari_secret IS NOT NULL));

CREATE TABLE IF NOT EXISTS audio_assets (
    hash          text PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),
    engine        text NOT NULL,
    voice         text NOT NULL,
    text          text NOT NULL,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'failed')),
    path          text,
    duration_ms   int,
    render_count  int  NOT NULL DEFAULT 0,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    rendered_at   timestamptz
);
-- Failed renders that may succeed another time (a tool crashed or timed out): counted, so the
-- calls waiting on the prompt fail only after a few tries.
ALTER TABLE audio_assets ADD COLUMN IF NOT EXISTS failed_renders int NOT NULL DEFAULT 0;
-- The rendered file's size, written by the worker with the file: the disk used by prompts is a
-- sum over this column (/api/metrics, /metrics), not a walk of the audio directory. NULL on rows
-- rendered before it existed (read as duration_ms * 8: 8 kHz µ-law is one byte a sample).
ALTER TABLE audio_assets ADD COLUMN IF NOT EXISTS size_bytes bigint;
-- When its render was enqueued (NULL: not yet). A bulk upload enqueues nothing: the render
-- planner (services/render_planner.py) enqueues the audio of the calls about to be dialed, first
-- calls first, and plans again what stays pending long after (a lost job).
ALTER TABLE audio_assets ADD COLUMN IF NOT EXISTS planned_at timestamptz;
CREATE INDEX IF NOT EXISTS audio_assets_planned_pending ON audio_assets (planned_at)
    WHERE status = 'pending' AND planned_at IS NOT NULL;

-- Do-not-call list: checked when a call is accepted and again just before it is dialed.
CREATE TABLE IF NOT EXISTS dnc (
    number    text PRIMARY KEY CHECK (number ~ '^\+[1-9][0-9]{1,14}$'),
    reason    text,
    added_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS campaigns (
    id              uuid PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'canceled')),
    trunk           text,
    from_number     text CHECK (from_number ~ '^\+[1-9][0-9]{1,14}$'),
    tts_template    text NOT NULL,
    tts_voice       text NOT NULL,
    ring_timeout_s  int  NOT NULL DEFAULT 30 CHECK (ring_timeout_s BETWEEN 5 AND 120),
    cps             real CHECK (cps > 0),
    window_start    time,
    window_end      time,
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS campaigns_created ON campaigns (created_at, id);
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS window_start time;
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS window_end time;
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS expires_at timestamptz;
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS max_attempts int NOT NULL DEFAULT 1
    CHECK (max_attempts BETWEEN 1 AND 10);
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS retry_on text[] NOT NULL DEFAULT '{}';
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS retry_backoff_s real NOT NULL DEFAULT 60
    CHECK (retry_backoff_s >= 0);
-- The two-way defaults of a campaign's calls (calls.interaction's format, its words' audio
-- hashes in the campaign's voice) and where their status callbacks go; a bulk row may replace
-- any field of them.
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS interaction jsonb;
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS status_callback jsonb;
-- segments: the calls' messages rendered in pieces played in order; whole: each text whole.
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS tts_mode text NOT NULL DEFAULT 'segments'
    CHECK (tts_mode IN ('segments', 'whole'));
-- The distinct audio a campaign's calls play (written by its uploads): GET /v1/campaigns/{id}'s
-- "renders" counts it, and how much of it is ready.
CREATE TABLE IF NOT EXISTS campaign_audio (
    campaign_id uuid NOT NULL,  -- no foreign key: an upload would check it once a row
    hash        text NOT NULL,
    PRIMARY KEY (campaign_id, hash)
);

CREATE TABLE IF NOT EXISTS calls (
    id                  uuid PRIMARY KEY,
    to_number           text NOT NULL CHECK (to_number ~ '^\+[1-9][0-9]{1,14}$'),
    from_number         text CHECK (from_number ~ '^\+[1-9][0-9]{1,14}$'),
    trunk               text NOT NULL,
    tts_text            text NOT NULL,
    tts_voice           text NOT NULL,
    audio_hash          text NOT NULL,
    ring_timeout_s      int  NOT NULL CHECK (ring_timeout_s BETWEEN 5 AND 120),
    metadata            jsonb,
    status              text NOT NULL DEFAULT 'queued' CHECK (status IN
                          ('queued', 'initiated', 'ringing', 'in-progress',
                           'completed', 'busy', 'no-answer', 'failed', 'canceled')),
    status_reason       text,
    idempotency_key     text,
    request_hash        text,
    cancel_requested_at timestamptz,
    attempt_count       int  NOT NULL DEFAULT 0,
    hangup_cause        int,
    hangup_cause_text   text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    answered_at         timestamptz,
    ended_at            timestamptz
);
ALTER TABLE calls ADD COLUMN IF NOT EXISTS campaign_id uuid;
-- When a call may be dialed: not before `not_before` (its arrival, unless asked later), never
-- after `expires_at`, and only inside its calling window in its number's time zones.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS not_before timestamptz;
UPDATE calls SET not_before = created_at WHERE not_before IS NULL;
ALTER TABLE calls ALTER COLUMN not_before SET DEFAULT now();
ALTER TABLE calls ALTER COLUMN not_before SET NOT NULL;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS expires_at timestamptz;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS window_start time;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS window_end time;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS time_zones text[];
-- Retries by outcome: a busy / no-answer / failed attempt may be followed by another, later.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS max_attempts int NOT NULL DEFAULT 1
    CHECK (max_attempts BETWEEN 1 AND 10);
ALTER TABLE calls ADD COLUMN IF NOT EXISTS retry_on text[] NOT NULL DEFAULT '{}';
ALTER TABLE calls ADD COLUMN IF NOT EXISTS retry_backoff_s real NOT NULL DEFAULT 60
    CHECK (retry_backoff_s >= 0);
-- Two-way calls (domain/interaction.py): what the call asks of the callee (gather, replies to
-- digits, machine detection, an operator's dialplan context), stored as the domain serialises
-- it; the audio its replies and voicemail message need besides the prompt (rendered before the
-- call may be dialed); what came back (digits pressed, the machine-detection verdict in
-- Twilio's words, the dialplan hooks' results); where its status callbacks go.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS interaction jsonb;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS extra_audio text[];
ALTER TABLE calls ADD COLUMN IF NOT EXISTS digits text CHECK (digits ~ '^[0-9*#A-D]{1,32}$');
ALTER TABLE calls ADD COLUMN IF NOT EXISTS answered_by text CHECK (answered_by IN
    ('human', 'machine_start', 'machine_end_beep', 'machine_end_silence', 'machine_end_other',
     'unknown'));
ALTER TABLE calls ADD COLUMN IF NOT EXISTS hooks jsonb;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS status_callback jsonb;
-- A message from segments (domain/segments.py): the audio of each piece, played in order
-- (audio_hash is the first). NULL: audio_hash alone is the message.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS segments text[];
-- The claim walks each trunk's dialable calls per campaign (so one big campaign cannot starve
-- a small one), in order of eligibility; deferred calls sit later in this index instead of
-- being stepped over on every claim. The same index enumerates a trunk's campaigns (skip scan).
DROP INDEX IF EXISTS calls_queued_by_trunk;
DROP INDEX IF EXISTS calls_dialable;
CREATE INDEX IF NOT EXISTS calls_dialable_by_campaign ON calls (trunk, campaign_id, not_before, id)
    WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS calls_expiring ON calls (expires_at)
    WHERE status = 'queued' AND expires_at IS NOT NULL;
-- One call per number and campaign; the bulk intake counts the rest as duplicates.
CREATE UNIQUE INDEX IF NOT EXISTS calls_campaign_to ON calls (campaign_id, to_number)
    WHERE campaign_id IS NOT NULL;
-- Pages of /v1/calls?campaign=[&status=], and a campaign's counts by status, from one index
-- (index-only once vacuumed): every index costs each of a million inserted rows.
DROP INDEX IF EXISTS calls_campaign_status;
DROP INDEX IF EXISTS calls_campaign_by_status;
DROP INDEX IF EXISTS calls_campaign_created;
CREATE INDEX IF NOT EXISTS calls_campaign_page ON calls (campaign_id, created_at, id) INCLUDE (status);
-- Every index costs each of a million inserted rows: /v1/calls?status= walks calls_created.
DROP INDEX IF EXISTS calls_status_created;
CREATE INDEX IF NOT EXISTS calls_created ON calls (created_at, id);
-- A unique index over a million NULL keys costs every bulk insert: index only real keys.
ALTER TABLE calls DROP CONSTRAINT IF EXISTS calls_idempotency_key_key;
CREATE UNIQUE INDEX IF NOT EXISTS calls_idempotency_key ON calls (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Calls keep their trunk's name after the trunk is removed.
ALTER TABLE calls DROP CONSTRAINT IF EXISTS calls_trunk_fkey;
-- ... and their prompt's hash (and words, tts_text) after `sespcl audio prune` deleted the
-- audio no queued or live call needs. No foreign key: every finished call would hold its asset
-- forever. What keeps a call's audio there instead: the call is inserted in the transaction that
-- upserts its audio_assets rows (INSERT … ON CONFLICT locks an existing row), and the prune
-- locks a row (SKIP LOCKED) before it checks, with a fresh snapshot, that no live call needs it
-- (persistence/audio.py). Checked in pg_constraint first: ALTER TABLE locks calls even for nothing.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'calls_audio_hash_fkey'
               AND conrelid = 'calls'::regclass) THEN
        ALTER TABLE calls DROP CONSTRAINT calls_audio_hash_fkey;
    END IF;
END $$;

-- The dispatcher's claim walks calls_queued_by_trunk, per trunk, in arrival order.
DROP INDEX IF EXISTS calls_queued;
-- A failed render is rare: finding its calls may scan; ingesting must not pay an index for it.
DROP INDEX IF EXISTS calls_queued_by_audio;
CREATE INDEX IF NOT EXISTS calls_cancel_pending ON calls (id)
    WHERE cancel_requested_at IS NOT NULL AND status IN ('initiated', 'ringing', 'in-progress');

-- Calls by campaign and status, for /metrics, /api/metrics and a campaign's progress: counting
-- a table of millions at every scrape costs seconds. Triggers record each statement's change
-- as delta rows, insert-only, so no row is locked by every writer (a million-row upload would
-- stall the dispatcher's status writes); readers sum them; the dispatcher folds them together
-- every minute (sespcl_fold_status_counts).
CREATE TABLE IF NOT EXISTS call_status_counts (
    campaign_id uuid,
    status      text NOT NULL,
    n           bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS call_status_counts_campaign ON call_status_counts (campaign_id);

CREATE OR REPLACE FUNCTION sespcl_count_statuses() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO call_status_counts (campaign_id, status, n)
        SELECT campaign_id, status, count(*) FROM new_calls GROUP BY campaign_id, status;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Most updates keep the status: their -1 and +1 cancel out and nothing is written.
        INSERT INTO call_status_counts (campaign_id, status, n)
        SELECT campaign_id, status, sum(d) FROM (
            SELECT campaign_id, status, -1 AS d FROM old_calls
            UNION ALL SELECT campaign_id, status, 1 FROM new_calls
        ) AS change GROUP BY campaign_id, status HAVING sum(d) <> 0;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO call_status_counts (campaign_id, status, n)
        SELECT campaign_id, status, -count(*) FROM old_calls GROUP BY campaign_id, status;
    ELSE  -- TRUNCATE
        DELETE FROM call_status_counts;
    END IF;
    RETURN NULL;
END $$;

-- Folds the deltas into one row per (campaign, status). Safe beside writers and another fold:
-- it deletes only the rows it read, and a row another fold deleted first is skipped.
CREATE OR REPLACE FUNCTION sespcl_fold_status_counts() RETURNS bigint LANGUAGE sql AS $$
    WITH taken AS (DELETE FROM call_status_counts RETURNING campaign_id, status, n),
    folded AS (
        INSERT INTO call_status_counts (campaign_id, status, n)
        SELECT campaign_id, status, sum(n) FROM taken GROUP BY campaign_id, status HAVING sum(n) <> 0
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM taken) - (SELECT count(*) FROM folded)
$$;

-- Installed once (again if one trigger is missing), with the counts of the calls already
-- there; writers wait out the count.
DO $$
BEGIN
    IF (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'calls'::regclass AND tgname IN
        ('calls_count_inserted', 'calls_count_updated', 'calls_count_deleted', 'calls_count_truncated')) < 4
    THEN
        LOCK TABLE calls IN SHARE ROW EXCLUSIVE MODE;
        DROP TRIGGER IF EXISTS calls_count_inserted ON calls;
        DROP TRIGGER IF EXISTS calls_count_updated ON calls;
        DROP TRIGGER IF EXISTS calls_count_deleted ON calls;
        DROP TRIGGER IF EXISTS calls_count_truncated ON calls;
        DELETE FROM call_status_counts;
        INSERT INTO call_status_counts (campaign_id, status, n)
        SELECT campaign_id, status, count(*) FROM calls GROUP BY campaign_id, status;
        CREATE TRIGGER calls_count_inserted AFTER INSERT ON calls
            REFERENCING NEW TABLE AS new_calls FOR EACH STATEMENT EXECUTE FUNCTION sespcl_count_statuses();
        CREATE TRIGGER calls_count_updated AFTER UPDATE ON calls
            REFERENCING OLD TABLE AS old_calls NEW TABLE AS new_calls
            FOR EACH STATEMENT EXECUTE FUNCTION sespcl_count_statuses();
        CREATE TRIGGER calls_count_deleted AFTER DELETE ON calls
            REFERENCING OLD TABLE AS old_calls FOR EACH STATEMENT EXECUTE FUNCTION sespcl_count_statuses();
        CREATE TRIGGER calls_count_truncated AFTER TRUNCATE ON calls
            FOR EACH STATEMENT EXECUTE FUNCTION sespcl_count_statuses();
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS call_attempts (
    id                 uuid PRIMARY KEY,
    call_id            uuid NOT NULL REFERENCES calls (id),
    number             int  NOT NULL CHECK (number > 0),
    node               text NOT NULL,
    trunk              text NOT NULL,
    status             text NOT NULL,
    channel            text,
    started_at         timestamptz NOT NULL DEFAULT now(),
    answered_at        timestamptz,
    ended_at           timestamptz,
    hangup_cause       int,
    hangup_cause_text  text,
    UNIQUE (call_id, number)
);
-- Ownership: each live attempt is followed by exactly one dispatcher (its owner). A dispatcher
-- whose heartbeat stops has its attempts adopted by another; writes carry the owner, so a
-- dispatcher that lost an attempt (a fencing token) can no longer change it.
ALTER TABLE call_attempts ADD COLUMN IF NOT EXISTS owner text;
CREATE INDEX IF NOT EXISTS call_attempts_live_owner ON call_attempts (owner) WHERE ended_at IS NULL;
-- Set just before the attempt's Originate goes out; false from the claim until then. An attempt
-- adopted from a dispatcher that died with it still false was never dialed: it is removed and the
-- call queued again, at no attempt's cost. Rows written before this column, or by any other
-- writer, default to true: possibly sent, so followed on the node as any other.
ALTER TABLE call_attempts ADD COLUMN IF NOT EXISTS originate_sent boolean NOT NULL DEFAULT true;
CREATE TABLE IF NOT EXISTS dispatchers (
    id            text PRIMARY KEY,
    host          text NOT NULL,
    pid           int  NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now()
);

-- Attempts keep their node's name after the node is removed.
ALTER TABLE call_attempts DROP CONSTRAINT IF EXISTS call_attempts_node_fkey;
CREATE INDEX IF NOT EXISTS call_attempts_live ON call_attempts (node) WHERE ended_at IS NULL;
CREATE INDEX IF NOT EXISTS call_attempts_live_by_trunk ON call_attempts (trunk) WHERE ended_at IS NULL;
CREATE INDEX IF NOT EXISTS call_attempts_started ON call_attempts (trunk, started_at);
-- Attempts by start, covering what the Grafana views read of them (an index-only scan instead
-- of a row fetch per attempt); the counts of attempts started lately read it as before.
DROP INDEX IF EXISTS call_attempts_started_at;
CREATE INDEX IF NOT EXISTS call_attempts_by_start ON call_attempts (started_at)
    INCLUDE (id, trunk, node, status, answered_at, ended_at, hangup_cause, hangup_cause_text);

-- Append-only: what happened to each call, in order. Grafana dashboards read it.
CREATE TABLE IF NOT EXISTS call_events (
    id          bigserial PRIMARY KEY,
    call_id     uuid NOT NULL REFERENCES calls (id),
    attempt_id  uuid,
    at          timestamptz NOT NULL,
    type        text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS call_events_by_call ON call_events (call_id, at, id);
-- Each event recorded by a worker carries the id the dispatcher gave it: a batch sent again
-- (its job lost with a flushed Redis) cannot record an event twice.
ALTER TABLE call_events ADD COLUMN IF NOT EXISTS event_uid uuid;
CREATE UNIQUE INDEX IF NOT EXISTS call_events_uid ON call_events (event_uid) WHERE event_uid IS NOT NULL;
CREATE INDEX IF NOT EXISTS call_events_by_time ON call_events (at);

CREATE OR REPLACE FUNCTION sespcl_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;
DROP TRIGGER IF EXISTS call_events_append_only ON call_events;
CREATE TRIGGER call_events_append_only BEFORE UPDATE OR DELETE ON call_events
    FOR EACH ROW EXECUTE FUNCTION sespcl_refuse_change();

-- Call detail records, written by every Asterisk node (cdr_pgsql, columns matched by name).
-- One row per channel when it ends; uniqueid is the attempt id (the Originate's ChannelId). The
-- dispatcher reads them to learn how a call ended while nobody listened (a dispatcher killed, a
-- link cut). Nothing else writes here; old rows can be deleted freely.
CREATE TABLE IF NOT EXISTS cdr (
    calldate      timestamptz NOT NULL DEFAULT now(),
    clid          text NOT NULL DEFAULT '',
    src           text NOT NULL DEFAULT '',
    dst           text NOT NULL DEFAULT '',
    dcontext      text NOT NULL DEFAULT '',
    channel       text NOT NULL DEFAULT '',
    dstchannel    text NOT NULL DEFAULT '',
    lastapp       text NOT NULL DEFAULT '',
    lastdata      text NOT NULL DEFAULT '',
    duration      bigint NOT NULL DEFAULT 0,
    billsec       bigint NOT NULL DEFAULT 0,
    disposition   text NOT NULL DEFAULT '',
    amaflags      bigint NOT NULL DEFAULT 0,
    accountcode   text NOT NULL DEFAULT '',
    uniqueid      text NOT NULL DEFAULT '',
    userfield     text NOT NULL DEFAULT '',
    linkedid      text NOT NULL DEFAULT '',
    sequence      bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS cdr_uniqueid ON cdr (uniqueid);
CREATE INDEX IF NOT EXISTS cdr_calldate ON cdr (calldate);  -- sespcl db prune-cdr

-- API keys (`sespcl keys`), and who created each call and campaign.
--
-- Privileges. The API process runs, on api_keys, only:
--   SELECT id, name, key_hash, scopes, rate_per_s, allow_countries, allow_premium, revoked_at
--       FROM api_keys WHERE id = $1                         (a key's row, cached 2 s)
--   UPDATE api_keys SET last_used_at = now() WHERE id = $1  (at most once a minute per key)
-- i.e. GRANT SELECT, UPDATE (last_used_at) ON api_keys. On calls and campaigns it writes the new
-- column created_by in the INSERTs it already runs (INSERT grants cover every column).
-- `sespcl keys` (the CLI, an operator's role) runs:
--   INSERT INTO api_keys (id, name, key_hash, scopes, rate_per_s, allow_countries, allow_premium)
--   SELECT id, name, scopes, rate_per_s, allow_countries, allow_premium, created_at, last_used_at,
--          revoked_at FROM api_keys                         (keys list; never key_hash)
--   UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL
--   SELECT name, revoked_at FROM api_keys WHERE name = $1
-- Nothing deletes a key: a revoked key keeps its name, so created_by always names one key.
CREATE TABLE IF NOT EXISTS api_keys (
    id               text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    name             text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_-]{0,39}$' AND name <> 'bootstrap'),
    key_hash         bytea NOT NULL CHECK (length(key_hash) = 32),  -- SHA-256 of the whole key
    scopes           text[] NOT NULL,
    rate_per_s       double precision NOT NULL DEFAULT 50 CHECK (rate_per_s > 0),
    allow_countries  text[],  -- ISO 3166-1 alpha-2; NULL: every country
    allow_premium    boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_used_at     timestamptz,
    revoked_at       timestamptz
);
-- The key's name ('bootstrap' for SESPCL_API_KEY); NULL for what was created before keys.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS created_by text;
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS created_by text;

-- Status callbacks (docs/webhooks.md): an outbox of events to deliver, one row per event, written
-- by triggers on `calls` in the same transaction as the change that makes the event, whoever
-- makes it (the dispatcher, the API's cancel, the sweeps): no event is lost to a process dying.
-- `sespcl webhooks run` delivers them, a call's events in order (`seq`), each try recorded.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id               text PRIMARY KEY CHECK (id ~ '^msg_[0-9a-f]{32}$'),  -- the webhook-id header
    -- A call's rows are written under its row lock, so their order in this sequence is the
    -- order of its events (a later event's transaction starts after the earlier one's commit).
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    call_id          uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    type             text NOT NULL CHECK (type IN ('initiated', 'ringing', 'answered', 'completed',
                                                   'digits', 'machine_detection', 'hook')),
    payload          jsonb NOT NULL,  -- the call as it was at the event: what is POSTed
    url              text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'delivered', 'failed', 'stopped')),
    tries            int NOT NULL DEFAULT 0,
    next_try_at      timestamptz NOT NULL DEFAULT now(),
    -- A sender delivering the row holds it until then; killed mid-delivery, the row is taken
    -- again once the lease has run out (longer than a try's 15 s).
    leased_until     timestamptz,
    last_status_code int,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    ended_at         timestamptz  -- delivered, failed or stopped
);
-- Every index costs each event (an insert in the statement that makes it): two besides the key.
-- Due rows by time for the claim (a 410's sweep of a URL's pending rows walks it too); a call's
-- rows in order for the claim's "oldest pending of its call" and for the API.
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_try_at)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_call ON webhook_deliveries (call_id, seq);

CREATE TABLE IF NOT EXISTS webhook_tries (
    delivery_id  text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    number       int NOT NULL CHECK (number >= 1),
    at           timestamptz NOT NULL,
    status_code  int,          -- NULL: no HTTP answer (timeout, refused, SSRF)
    latency_ms   real NOT NULL,
    error        text,
    PRIMARY KEY (delivery_id, number)
);

-- A receiver that answered 410 Gone: nothing more is sent to that URL (its pending and later
-- deliveries end `stopped`).
CREATE TABLE IF NOT EXISTS webhook_stopped_urls (
    url          text PRIMARY KEY,
    stopped_at   timestamptz NOT NULL DEFAULT now(),
    delivery_id  text
);

-- Idempotency-Key on the bulk paths (POST /v1/campaigns, /v1/campaigns/{id}/calls, /voice/bulk).
-- One key space for all three (single calls keep theirs on calls.idempotency_key). A row is a
-- claim while answer_status is NULL (its holder beats touched_at), then the first answer, replayed
-- for 24 h from taken_at. request_hash: sha256 of the key's owner, method, path, query, media type
-- and raw body. Expired rows are deleted a few at a time by each claim (no process of their own).
CREATE TABLE IF NOT EXISTS idempotent_requests (
    key              text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    holder           uuid NOT NULL,
    taken_at         timestamptz NOT NULL DEFAULT now(),
    touched_at       timestamptz NOT NULL DEFAULT now(),
    request_hash     text,
    answer_status    smallint,
    answer_body      jsonb,
    answer_location  text,
    answered_at      timestamptz
);
CREATE INDEX IF NOT EXISTS idempotent_requests_taken_at ON idempotent_requests (taken_at);

-- The payload of one event: the call as the statement left it. Plain arguments, so that it is
-- inlined into the triggers' statement (no function call per event).
CREATE OR REPLACE FUNCTION sespcl_webhook_payload(
    kind text, extra jsonb, at timestamptz, call_id uuid, status text, status_reason text,
    answered_by text, digits text, hooks jsonb, attempt int, metadata jsonb, hangup_cause int,
    hangup_cause_text text, campaign_id uuid, to_number text
) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'type', kind,
        'call_id', call_id,
        'status', status,
        'status_reason', status_reason,
        'answered_by', answered_by,
        'digits', digits,
        'hooks', coalesce(hooks, '{}'::jsonb),
        'attempt', attempt,
        'at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'metadata', metadata,
        'hangup_cause', CASE WHEN hangup_cause IS NULL THEN NULL
                             ELSE jsonb_build_object('code', hangup_cause, 'text', hangup_cause_text) END,
        'campaign_id', campaign_id,
        'to', to_number
    ) || extra
$$;

-- The events one change of a call makes (old: NULL for an inserted call), in the order they
-- happened: a status reached (initiated, ringing, answered), the machine-detection verdict, the
-- digits, each hook whose value is new, then a final status (`completed`, its payload's `status`
-- saying which). A call going back to `queued` for a retry makes none.
CREATE OR REPLACE FUNCTION sespcl_webhook_kinds(
    old_status text, old_answered_by text, old_digits text, old_hooks jsonb,
    new_status text, new_answered_by text, new_digits text, new_hooks jsonb
) RETURNS TABLE (ord int, sub text, kind text, extra jsonb)
LANGUAGE sql IMMUTABLE AS $$
    SELECT 1, '', CASE new_status WHEN 'initiated' THEN 'initiated' WHEN 'ringing' THEN 'ringing'
                                  ELSE 'answered' END, '{}'::jsonb
    WHERE new_status IS DISTINCT FROM old_status AND new_status IN ('initiated', 'ringing', 'in-progress')
    UNION ALL
    SELECT 2, '', 'machine_detection', '{}'::jsonb
    WHERE new_answered_by IS NOT NULL AND new_answered_by IS DISTINCT FROM old_answered_by
    UNION ALL
    SELECT 3, '', 'digits', '{}'::jsonb WHERE new_digits IS NOT NULL AND new_digits IS DISTINCT FROM old_digits
    UNION ALL
    SELECT 4, h.key, 'hook', jsonb_build_object('hook', jsonb_build_object('name', h.key, 'value', h.value))
    FROM jsonb_each(coalesce(new_hooks, '{}'::jsonb)) AS h
    WHERE coalesce(old_hooks, '{}'::jsonb) -> h.key IS DISTINCT FROM h.value
    UNION ALL
    SELECT 5, '', 'completed', '{}'::jsonb
    WHERE new_status IS DISTINCT FROM old_status
      AND new_status IN ('completed', 'busy', 'no-answer', 'failed', 'canceled')
$$;

-- Writes the outbox rows of a statement's changed calls, filtered by each callback's `events`
-- (absent: all), a call's rows in the order of its events (`seq` is drawn in the insert's
-- order, which the ORDER BY sets).
-- A statement trigger: the transition tables are captured anyway for call_status_counts, and a
-- statement whose calls have no callback (a million-row upload, nearly every dispatcher batch)
-- costs one scan of them and nothing else. SECURITY DEFINER: no process's role may write the
-- outbox itself, only through this; the fixed search_path keeps a caller's schemas out of it.
-- jit off: its plan is cached from the first statement's size, and a plan costed for thousands
-- of rows made every later 30-row statement spend ~1 s compiling JIT code (measured).
CREATE OR REPLACE FUNCTION sespcl_webhook_events() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public SET jit = off AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM new_calls WHERE status_callback IS NOT NULL AND status <> 'queued') THEN
            RETURN NULL;
        END IF;
        INSERT INTO webhook_deliveries (id, call_id, type, payload, url)
        SELECT 'msg_' || replace(sespcl_uuid7()::text, '-', ''), n.id, k.kind,
               sespcl_webhook_payload(k.kind, k.extra, clock_timestamp(), n.id, n.status, n.status_reason,
                   n.answered_by, n.digits, n.hooks, n.attempt_count, n.metadata, n.hangup_cause,
                   n.hangup_cause_text, n.campaign_id, n.to_number),
               n.status_callback ->> 'url'
        FROM new_calls n
        CROSS JOIN LATERAL sespcl_webhook_kinds(NULL, NULL, NULL, NULL,
                                               n.status, n.answered_by, n.digits, n.hooks) k
        WHERE n.status_callback IS NOT NULL AND n.status <> 'queued'
          AND (n.status_callback -> 'events' IS NULL OR n.status_callback -> 'events' ? k.kind)
        ORDER BY n.id, k.ord, k.sub;
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM new_calls WHERE status_callback IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries (id, call_id, type, payload, url)
    SELECT 'msg_' || replace(sespcl_uuid7()::text, '-', ''), n.id, k.kind,
           sespcl_webhook_payload(k.kind, k.extra, clock_timestamp(), n.id, n.status, n.status_reason,
               n.answered_by, n.digits, n.hooks, n.attempt_count, n.metadata, n.hangup_cause,
               n.hangup_cause_text, n.campaign_id, n.to_number),
           n.status_callback ->> 'url'
    FROM new_calls n JOIN old_calls o ON o.id = n.id
    CROSS JOIN LATERAL sespcl_webhook_kinds(o.status, o.answered_by, o.digits, o.hooks,
                                           n.status, n.answered_by, n.digits, n.hooks) k
    WHERE n.status_callback IS NOT NULL
      AND (n.status_callback -> 'events' IS NULL OR n.status_callback -> 'events' ? k.kind)
    ORDER BY n.id, k.ord, k.sub;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION sespcl_webhook_events() FROM PUBLIC;

-- Made once: dropping a trigger locks calls against every reader, which a migration under a
-- running stack must not do at each run (the function above is replaced in place).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'calls'::regclass AND tgname = 'calls_webhook_inserted') THEN
        CREATE TRIGGER calls_webhook_inserted AFTER INSERT ON calls
            REFERENCING NEW TABLE AS new_calls FOR EACH STATEMENT EXECUTE FUNCTION sespcl_webhook_events();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'calls'::regclass AND tgname = 'calls_webhook_updated') THEN
        CREATE TRIGGER calls_webhook_updated AFTER UPDATE ON calls
            REFERENCING OLD TABLE AS old_calls NEW TABLE AS new_calls
            FOR EACH STATEMENT EXECUTE FUNCTION sespcl_webhook_events();
    END IF;
END $$;

-- Grafana's views (deploy/grafana/, docs/operations.md "Grafana"): what the dashboards read, as
-- the role sespcl_grafana, which may read these views and nothing else. They carry no phone
-- numbers, message text, metadata or secrets. Each panel answers in < 200 ms over 10 million
-- call_events (`make bench-dashboards`); the indexes below are what that takes.

-- A call that reached a final status is also stored with its `status` event, in the same
-- statement: counting ended calls here gives the final status events' figures. Partial (a
-- call is indexed once, when it ends: intake pays nothing) and covering, so a panel's counts by
-- time, status, trunk, campaign, verdict or digits are an index-only scan: the status in
-- call_events sits in jsonb, which no index can hand back without reading the table.
CREATE INDEX IF NOT EXISTS calls_ended ON calls (ended_at)
    INCLUDE (status, trunk, campaign_id, answered_by, digits) WHERE ended_at IS NOT NULL;
-- The far end ringing (a `status` event), with its attempt: post-dial delay per trunk.
CREATE INDEX IF NOT EXISTS call_events_ringing ON call_events (at) INCLUDE (attempt_id)
    WHERE type = 'status' AND data ->> 'status' = 'ringing';
-- How many events are of each type and status (the status sits in jsonb, which has no statistics
-- of its own): without it the planner took 6 hours of ringing events for 1,200 instead of 48,000
-- and fetched their attempts one by one (340 ms instead of 60).
CREATE STATISTICS IF NOT EXISTS call_events_kinds (mcv) ON type, (data ->> 'status') FROM call_events;
-- What calls heard back (digits, machine_detection, hook events): a few in a hundred events.
CREATE INDEX IF NOT EXISTS call_events_facts ON call_events (at)
    WHERE type IN ('digits', 'machine_detection', 'hook');

CREATE OR REPLACE VIEW grafana_calls_ended AS
SELECT id AS call_id, ended_at, status, trunk, campaign_id, answered_by, digits, attempt_count,
       answered_at IS NOT NULL AS answered, hangup_cause, hangup_cause_text
FROM calls WHERE ended_at IS NOT NULL;
COMMENT ON VIEW grafana_calls_ended IS
    'Calls that reached a final status (completed, busy, no-answer, failed, canceled), when, on which trunk and campaign, who answered (answered_by) and the digits pressed. Same figures as the final status events.';

CREATE OR REPLACE VIEW grafana_attempts AS
SELECT id AS attempt_id, call_id, number, trunk, node, status, started_at, answered_at, ended_at,
       ended_at IS NULL AS live, answered_at IS NOT NULL AS answered,
       extract(epoch FROM ended_at - answered_at) AS talk_s, hangup_cause, hangup_cause_text
FROM call_attempts;
COMMENT ON VIEW grafana_attempts IS
    'One row per attempt (one dial of a call on a trunk and node): its status (initiated, ringing, in-progress while live; then its outcome), start, answer and end, talk time in seconds, and the Q.850 cause of its Hangup event.';

CREATE OR REPLACE VIEW grafana_status_changes AS
SELECT e.at, e.call_id, e.attempt_id, e.data ->> 'status' AS status, e.data ->> 'reason' AS reason,
       (e.data ->> 'cause')::int AS cause, e.data ->> 'cause_text' AS cause_text,
       e.data ->> 'retry_after' AS retry_after, c.trunk, c.campaign_id
FROM call_events e LEFT JOIN calls c ON c.id = e.call_id
WHERE e.type = 'status';
COMMENT ON VIEW grafana_status_changes IS
    'The `status` events: each status a call reached and when, with the reason, the Q.850 cause and, for a call queued again for a retry, the outcome of the attempt it retries after (retry_after).';

-- A ring comes at most a ring timeout (120 s) after its attempt started: a query bounds
-- started_at as well as rang_at, so that only that slice of call_attempts is read.
CREATE OR REPLACE VIEW grafana_post_dial_delays AS
SELECT a.id AS attempt_id, a.call_id, a.trunk, a.node, a.started_at, r.at AS rang_at,
       extract(epoch FROM r.at - a.started_at) AS pdd_s
FROM call_events r JOIN call_attempts a ON a.id = r.attempt_id
WHERE r.type = 'status' AND r.data ->> 'status' = 'ringing';
COMMENT ON VIEW grafana_post_dial_delays IS
    'Post-dial delay of each attempt whose far end rang (SIP 180): seconds from the attempt''s start (its claim, at most 0.15 s before its Originate left) to its `ringing` status event.';

CREATE OR REPLACE VIEW grafana_call_facts AS
SELECT e.at, e.call_id, e.attempt_id, e.type AS fact, e.data ->> 'digits' AS digits,
       e.data ->> 'answered_by' AS answered_by, e.data ->> 'name' AS hook_name,
       e.data ->> 'value' AS hook_value, coalesce((e.data ->> 'dnc')::boolean, false) AS opted_out,
       c.campaign_id
FROM call_events e LEFT JOIN calls c ON c.id = e.call_id
WHERE e.type IN ('digits', 'machine_detection', 'hook');
COMMENT ON VIEW grafana_call_facts IS
    'What calls heard back, from the dialplan''s reports: `digits` events (keys pressed; opted_out when they put the number on the do-not-call list), `machine_detection` events (answered_by: human, machine_start, machine_end_beep, machine_end_silence, machine_end_other, unknown) and `hook` events (an operator''s dialplan hook: name, value).';

CREATE OR REPLACE VIEW grafana_campaigns AS
SELECT id AS campaign_id, name, status, trunk, max_attempts, cps, created_at FROM campaigns;
COMMENT ON VIEW grafana_campaigns IS 'Every campaign: its name, status (active, paused, canceled), trunk and dialing limits.';

-- Counts from call_status_counts (kept by triggers, as GET /v1/campaigns/{id} reads them);
-- the pace from the attempts started in the last 10 minutes.
CREATE OR REPLACE VIEW grafana_campaign_progress AS
SELECT k.id AS campaign_id, k.name, k.status AS campaign_status, k.created_at,
       coalesce(s.total, 0) AS total, coalesce(s.queued, 0) AS queued, coalesce(s.live, 0) AS live,
       coalesce(s.completed, 0) AS completed, coalesce(s.busy, 0) AS busy,
       coalesce(s.no_answer, 0) AS no_answer, coalesce(s.failed, 0) AS failed,
       coalesce(s.canceled, 0) AS canceled, coalesce(s.done, 0) AS done,
       round(100.0 * coalesce(s.done, 0) / nullif(s.total, 0), 1) AS done_pct,
       coalesce(p.started, 0) / 600.0 AS pace_cps,
       round(s.queued / (p.started / 600.0)) AS eta_s
FROM campaigns k
LEFT JOIN (
    SELECT campaign_id, sum(n) AS total,
           sum(n) FILTER (WHERE status = 'queued') AS queued,
           sum(n) FILTER (WHERE status IN ('initiated', 'ringing', 'in-progress')) AS live,
           sum(n) FILTER (WHERE status = 'completed') AS completed,
           sum(n) FILTER (WHERE status = 'busy') AS busy,
           sum(n) FILTER (WHERE status = 'no-answer') AS no_answer,
           sum(n) FILTER (WHERE status = 'failed') AS failed,
           sum(n) FILTER (WHERE status = 'canceled') AS canceled,
           sum(n) FILTER (WHERE status IN ('completed', 'busy', 'no-answer', 'failed', 'canceled')) AS done
    FROM call_status_counts GROUP BY campaign_id
) s ON s.campaign_id = k.id
LEFT JOIN (
    SELECT c.campaign_id, count(*) AS started
    FROM call_attempts a JOIN calls c ON c.id = a.call_id
    WHERE a.started_at > now() - interval '10 minutes'
    GROUP BY c.campaign_id
) p ON p.campaign_id = k.id;
COMMENT ON VIEW grafana_campaign_progress IS
    'Each campaign''s calls by status now (total, queued, live, completed, busy, no_answer, failed, canceled, done, done_pct), its pace (attempts started per second over the last 10 minutes, pace_cps) and the time left at that pace (eta_s: queued / pace_cps; NULL while nothing is dialed).';

CREATE OR REPLACE VIEW grafana_trunks AS
SELECT name, host, port, transport, is_default, max_channels, cps FROM trunks;
COMMENT ON VIEW grafana_trunks IS 'The trunks (carriers) calls may be dialed through, and their limits.';

CREATE OR REPLACE VIEW grafana_nodes AS
SELECT n.name, n.driver, n.state, n.drained, n.max_channels, n.pace_cps, n.version, n.last_seen_at,
       (SELECT count(*) FROM call_attempts a WHERE a.node = n.name AND a.ended_at IS NULL) AS live_calls
FROM nodes n;
COMMENT ON VIEW grafana_nodes IS
    'The Asterisk nodes (never their AMI or ARI secrets): driver, state (up, down, unknown), drained, channel cap, the pace the dispatcher allows them (calls/s), and their live calls.';

CREATE OR REPLACE VIEW grafana_dispatchers AS
SELECT id, host, pid, started_at, heartbeat_at, extract(epoch FROM now() - heartbeat_at) AS heartbeat_age_s
FROM dispatchers;
COMMENT ON VIEW grafana_dispatchers IS 'The dispatchers and how old their heartbeat is (one older than 8 s is taken for dead).';

-- Privileges: each process may run the statements it runs, nothing more. The roles are made once
-- per server by deploy/postgres/roles.sql; a database without them (a developer's) gets none.
-- SELECT … FOR UPDATE/SHARE needs UPDATE on one column: the dispatcher's locks of trunks and
-- campaigns get it on updated_at alone.
DO $$
DECLARE
    service text;
BEGIN
    -- From nothing at every migrate: a privilege a process no longer needs is gone with it.
    FOREACH service IN ARRAY ARRAY['sespcl_api', 'sespcl_dispatcher', 'sespcl_worker', 'sespcl_node',
                                   'sespcl_webhooks', 'sespcl_grafana'] LOOP
        IF to_regrole(service) IS NOT NULL THEN
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', service);
            EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I', service);
        END IF;
    END LOOP;
    IF to_regrole('sespcl_api') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA public TO sespcl_api;
        GRANT SELECT ON trunks, calls, call_attempts, call_events, call_status_counts, campaigns,
            dispatchers, audio_assets, dnc TO sespcl_api;
        -- the nodes' AMI and ARI secrets are the dispatcher's alone
        GRANT SELECT (name, ami_host, ami_port, drained, state, pace_cps, version, last_seen_at)
            ON nodes TO sespcl_api;
        GRANT INSERT ON calls, call_events, call_status_counts, campaigns, audio_assets TO sespcl_api;
        GRANT SELECT, INSERT ON campaign_audio TO sespcl_api;
        GRANT UPDATE ON calls, campaigns TO sespcl_api;
        GRANT UPDATE (status, error, planned_at, failed_renders) ON audio_assets TO sespcl_api;
        GRANT DELETE ON campaigns TO sespcl_api;
        GRANT USAGE ON SEQUENCE call_events_id_seq TO sespcl_api;
        GRANT SELECT (id, name, key_hash, scopes, rate_per_s, allow_countries, allow_premium, revoked_at),
            UPDATE (last_used_at) ON api_keys TO sespcl_api;
        GRANT SELECT ON webhook_deliveries, webhook_tries TO sespcl_api;  -- GET /v1/calls/{id}/webhooks
        -- Idempotency-Key on the bulk paths: claims, answers, and the sweep of expired keys
        GRANT SELECT, INSERT, UPDATE, DELETE ON idempotent_requests TO sespcl_api;
    END IF;
    IF to_regrole('sespcl_dispatcher') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA public TO sespcl_dispatcher;
        GRANT SELECT ON trunks, nodes, calls, call_attempts, call_events, call_status_counts,
            campaigns, dispatchers, audio_assets, dnc, cdr TO sespcl_dispatcher;
        GRANT UPDATE (updated_at) ON trunks, campaigns TO sespcl_dispatcher;
        GRANT UPDATE (state, version, pace_cps, last_seen_at) ON nodes TO sespcl_dispatcher;
        GRANT UPDATE ON calls TO sespcl_dispatcher;
        GRANT INSERT, UPDATE, DELETE ON call_attempts, dispatchers TO sespcl_dispatcher;
        GRANT INSERT ON call_events TO sespcl_dispatcher;
        -- an in-call opt-out ("press 9") lands on the list as the digits are stored
        GRANT INSERT ON dnc TO sespcl_dispatcher;
        GRANT INSERT, DELETE ON call_status_counts TO sespcl_dispatcher;
        GRANT USAGE ON SEQUENCE call_events_id_seq TO sespcl_dispatcher;
    END IF;
    IF to_regrole('sespcl_worker') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA public TO sespcl_worker;
        GRANT SELECT ON audio_assets, calls TO sespcl_worker;
        GRANT UPDATE ON audio_assets, calls TO sespcl_worker;
        GRANT INSERT ON call_events, call_status_counts TO sespcl_worker;
        -- ON CONFLICT (event_uid) DO NOTHING reads the key it arbitrates on
        GRANT SELECT (event_uid) ON call_events TO sespcl_worker;
        GRANT USAGE ON SEQUENCE call_events_id_seq TO sespcl_worker;
    END IF;
    IF to_regrole('sespcl_node') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA public TO sespcl_node;
        GRANT SELECT ON ps_endpoints, ps_aors, ps_auths, ps_endpoint_id_ips TO sespcl_node;
        GRANT INSERT ON cdr TO sespcl_node;
        -- On Kubernetes each node registers itself when it starts and drains itself when it goes
        -- (`sespcl nodes add --replace`, `nodes undrain`, `nodes drain`: deploy/k8s): it writes a
        -- node's row, reading back only the name it matches on, never a secret nor a call.
        GRANT SELECT (name) ON nodes TO sespcl_node;
        GRANT INSERT (name, ami_host, ami_port, ami_user, ami_secret, ari_url, max_channels, driver,
                      ari_user, ari_secret),
              UPDATE (ami_host, ami_port, ami_user, ami_secret, ari_url, max_channels, driver,
                      ari_user, ari_secret, drained) ON nodes TO sespcl_node;
    END IF;
    -- The webhook sender: takes and settles outbox rows, records tries, stops URLs. Rows come
    -- only from the triggers on calls (SECURITY DEFINER): no role inserts them itself.
    IF to_regrole('sespcl_webhooks') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA public TO sespcl_webhooks;
        GRANT SELECT, UPDATE (status, tries, next_try_at, leased_until, last_status_code, last_error,
                              delivered_at, ended_at) ON webhook_deliveries TO sespcl_webhooks;
        GRANT SELECT, INSERT ON webhook_tries, webhook_stopped_urls TO sespcl_webhooks;
    END IF;
    -- Grafana: its views, nothing else (they read the tables with their owner's rights).
    IF to_regrole('sespcl_grafana') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA public TO sespcl_grafana;
        GRANT SELECT ON grafana_calls_ended, grafana_attempts, grafana_status_changes,
            grafana_post_dial_delays, grafana_call_facts, grafana_campaigns, grafana_campaign_progress,
            grafana_trunks, grafana_nodes, grafana_dispatchers TO sespcl_grafana;
    END IF;
END $$;
