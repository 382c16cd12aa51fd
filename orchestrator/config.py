"""Every setting the orchestrator and workers read, from the environment, in one place.

Names are `SESPCL_*`, except DATABASE_URL and REDIS_URL which keep their conventional names.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_AUDIO_DIR = re.compile(r"/[a-z0-9_.-]+(/[a-z0-9_.-]+)*")
"""What the nodes' dialplan plays (FILTER), and asterisk-config/install.sh accepts."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SESPCL_", extra="ignore")

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/sespcl",
        validation_alias="DATABASE_URL",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")

    api_key: SecretStr = SecretStr("")
    """The bootstrap key: every scope, created_by "bootstrap". Empty refuses to start the API.
    Other keys: `sespcl keys add`."""
    ami_admin_user: str = "sespcl-admin"
    ami_admin_secret: SecretStr = SecretStr("")
    """The nodes' administrative AMI user (asterisk-config/manager.conf), for the CLI alone:
    `trunks test` and telling nodes of a changed trunk. The dispatcher's own user (its secret
    in each node's row) may only dial, hang up and list channels."""
    api_key_allow_premium: bool = False
    """Whether the bootstrap key may call premium-rate and shared-cost numbers."""
    api_key_rate_per_s: float = Field(default=0.0, ge=0)
    """The bootstrap key's requests a second across API processes; 0: not limited (the
    operator's own key: benchmarks and scripts drive hundreds of calls a second with it)."""
    key_rate_per_s: float = Field(default=50.0, gt=0)
    """What `sespcl keys add` gives a key that names no --rate-per-s."""
    key_cache_s: float = Field(default=2.0, gt=0, le=4.0)
    """How long each API process keeps a key's row: a revoked key is refused within this
    (the contract: 5 s)."""
    health_cache_s: float = Field(default=1.0, gt=0, le=1.0)
    """How long /health reuses its checks (one run at a time, however many probes ask)."""
    rate_limit_timeout_s: float = Field(default=0.25, gt=0, le=5.0)
    """Longest a request waits for Redis's rate check; past it the request goes through."""
    api_host: str = "127.0.0.1"
    api_port: int = 5000
    max_body_bytes: int = 64 * 1024
    """Largest request body /v1/calls accepts (413 above)."""
    max_bulk_bytes: int = 512 * 1024 * 1024
    """Largest bulk upload (/v1/campaigns/{id}/calls, /voice/bulk); it is streamed, not held."""
    max_line_bytes: int = Field(default=64 * 1024, ge=1024)
    """Longest row of a bulk upload: an NDJSON or CSV line, or an element of a JSON array. One
    longer refuses the whole upload (422): a reader holds at most this much of an unfinished row."""
    upload_idle_s: float = Field(default=30.0, gt=0)
    """How long a request body (a bulk upload or a single JSON body) may send nothing before it
    is cut off with 408 `upload-idle`; nothing of it is stored."""
    max_uploads: int = Field(default=4, ge=1, le=64)
    """Bulk uploads each API process stores at once. Each holds a database connection of its
    own while its body streams in, apart from the pool every other request uses; one more waits
    a few seconds for its turn, then gets 503 `too-many-uploads`."""

    audio_dir: Path = Path("/var/lib/sespcl/audio")
    """Shared storage for rendered prompts; Asterisk nodes read the same path. The dialplan
    plays only paths of [/a-z0-9_.-] (asterisk-config/install.sh holds the nodes to the same)."""
    tts_engine: str = "espeak-ng"
    tts_default_voice: str = "en-us"
    tts_rate_wpm: int = 160

    queue_render: str = "sespcl-render"
    queue_events: str = "sespcl-events"

    dispatch_poll_s: float = 0.2
    """How often the dispatcher looks for calls ready to dial."""
    dispatch_batch: int = 200
    """Most calls claimed per poll."""
    dispatch_cps: float = 500.0
    """Farm-wide ceiling on new calls per second, set by the operator; each node's own pace
    (below) and the trunks' cps come on top."""
    node_pace_initial_cps: float = 20.0
    """Each node starts at this pace; the dispatcher raises it while Originates are answered
    quickly and cuts it when they are not (AIMD)."""
    node_pace_max_cps: float = 500.0
    node_pace_target_ms: float = 100.0
    """Queueing latency (sent → the node's first sign, less its latency with no queue) above
    which a node's pace is cut; it stops growing at half of this."""
    node_max_channels_default: int = 500
    node_lost_after_s: float = 10.0
    """A node whose dialing link is silent this long, with its AMI and HTTP ports both refusing
    connections, has lost its live calls."""
    events_flush_s: float = 1.0
    """Longest an AMI event waits in the dispatcher before its batch is enqueued. Each batch is
    one RQ job, and a job costs a worker about 15 ms whatever its size: fewer, larger batches."""
    events_batch_max: int = Field(default=2000, ge=1, le=20000)
    """Most events in one batch (one RQ job). A call makes about 8, so 2000 keeps one job per
    flush up to ~250 calls/s, where 500 took three or four."""
    max_call_s: int = Field(default=600, ge=1)
    """Longest a call may stay answered: sent with each Originate, and the node's dialplan hangs
    the call up then (TIMEOUT(absolute)), whether or not a dispatcher is listening."""
    finalize_grace_s: float = 30.0
    """Extra time past ring timeout + max call length before an attempt is declared lost."""
    originate_failure_wait_s: float = 1.0
    """After a failed OriginateResponse, how long to wait for the Hangup that carries the cause."""

    db_upkeep_s: float = Field(default=15.0, ge=0)
    """How often `sespcl db upkeep` checks whether tables need VACUUM or ANALYZE; it acts only
    when the server's autovacuum is off (0: never)."""

    render_plan_every_s: float = Field(default=1.0, ge=0)
    """How often the render planner (in `sespcl db upkeep`) looks ahead of dialing (0: never)."""
    render_lookahead_s: float = Field(default=120.0, gt=0, le=3600)
    """The calls due to be dialed within this long, at the trunks' pace, are kept rendered."""
    render_lookahead_min_calls: int = Field(default=200, ge=1, le=100_000)
    """Calls kept rendered ahead of each campaign on each trunk however slow it dials."""

    audio_prune_every_s: float = Field(default=86400.0, ge=0)
    """How often `sespcl db upkeep` runs `sespcl audio prune` (0: never; it also runs once at
    the process's start)."""
    audio_keep_days: int = Field(default=7, ge=1)
    """The scheduled prune deletes rendered audio older than this that no queued or live call
    needs (a prompt asked again later is rendered again)."""
    audio_prune_batch: int = Field(default=10_000, ge=1, le=100_000)
    """Assets one prune transaction considers: each batch reads the live calls once (10,000:
    about 11,000 assets/s beside a million calls here, against 4,300/s in batches of 2,000)."""

    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """The dispatcher's, a worker's, the webhook sender's or upkeep's GET /metrics
    (SESPCL_METRICS_HOST:SESPCL_METRICS_PORT); unset: none. The API's is on its own port."""
    heartbeat_file: Path | None = None
    """Where a dispatcher or worker touches its heartbeat, every `heartbeat_s`, from its own
    loop: the watchdog (`make up`) and container healthchecks (`sespcl alive`) read it."""
    heartbeat_s: float = Field(default=1.0, gt=0, le=5)
    liveness_fail_after_s: float = Field(default=15.0, ge=3)
    """A process whose liveness fails this long is stopped (TERM, then KILL) and started again;
    `sespcl alive` fails once the heartbeat is this old."""

    webhook_secret: SecretStr = SecretStr("")
    """Signs every status callback (Standard Webhooks): `whsec_` + base64 of 24-64 random bytes;
    `make up` makes one. Empty refuses to start `sespcl webhooks run`."""
    webhook_allow_hosts: str = ""
    """Comma list of host names and networks (CIDR) a status callback may reach although they are
    loopback, private or link-local (a receiver on the operator's own network). Checked at
    submission for a literal address and at every delivery for every address a name resolves to."""
    webhook_concurrency: int = Field(default=200, ge=1, le=5000)
    """Deliveries each `sespcl webhooks run` keeps in flight at once."""
    webhook_batch: int = Field(default=200, ge=1, le=5000)
    """Most outbox rows one claim leases."""
    webhook_poll_s: float = Field(default=0.1, gt=0, le=5)
    """How often an idle sender looks for due deliveries."""

    log_level: str = "info"
    log_json: bool | None = None
    """One JSON object per log line; unset: JSON whenever stderr is not a terminal."""

    @field_validator("audio_dir")
    @classmethod
    def _playable(cls, value: Path) -> Path:
        if not _AUDIO_DIR.fullmatch(str(value)) or ".." in str(value):
            raise ValueError(f"{value} must be an absolute path of characters [/a-z0-9_.-] without '..'")
        return value


def settings_error(exc: ValidationError) -> str:
    """A settings ValidationError as one line naming the environment variables."""
    prefix = Settings.model_config.get("env_prefix", "")
    parts = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        env = name if name.isupper() else f"{prefix}{name}".upper()
        parts.append(f"{env}: {error['msg']}")
    return "invalid setting " + "; ".join(parts)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
