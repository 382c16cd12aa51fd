"""Delivering one status-callback event: the Standard Webhooks signature, what a try's answer
means, and when the next try is due. Pure: the sender's adapters do the HTTP and the SQL."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import Enum

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
"""Standard Webhooks asks for 24 to 64 random bytes; `make up` makes 32."""

RETRY_DELAYS_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000)
"""The wait after the 1st, 2nd, … failed try (the 1st try goes out at once): 5 s, 5 min,
30 min, 2 h, 5 h, 10 h; then every 10 h (`LAST_DELAY_S`) until `GIVE_UP_AFTER`."""
LAST_DELAY_S = 36000.0
GIVE_UP_AFTER = timedelta(days=3)
"""An event still undelivered this long after it happened ends `failed`."""


class Verdict(str, Enum):
    """What a delivery became after a try (the outbox row's status)."""

    DELIVERED = "delivered"
    RETRY = "pending"
    """Tried again later: timeout, connection error, 5xx, 429."""
    FAILED = "failed"
    """Never tried again: another 4xx, a 3xx (redirects are not followed), a refused address,
    or three days gone."""
    STOPPED = "stopped"
    """410 Gone: the URL takes nothing more, this delivery or any later one."""


@dataclass(frozen=True, kw_only=True)
class TryResult:
    """One HTTP try as the sender saw it."""

    at: datetime
    latency_ms: float
    status_code: int | None = None
    """None: no HTTP answer (timeout, connection error, refused address)."""
    error: str | None = None
    retry_after: str | None = None
    """The answer's Retry-After header, as sent."""
    refused: bool = False
    """The host is, or resolves to, an address callbacks may not reach (SSRF)."""


@dataclass(frozen=True, kw_only=True)
class Decision:
    verdict: Verdict
    next_try_at: datetime | None = None
    """When a RETRY is tried again."""


def parse_secret(text: str) -> bytes:
    """SESPCL_WEBHOOK_SECRET (`whsec_` + base64) as the HMAC key; ValueError says what is wrong."""
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX} (then base64 of random bytes)")
    try:
        key = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"is not base64 after {SECRET_PREFIX}: {exc}") from exc
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"must hold at least {MIN_SECRET_BYTES} bytes, not {len(key)}")
    return key


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: `v1,` + base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def signed_headers(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, webhook_id, timestamp, body),
    }


def delay_after_failed_try(tries: int) -> float:
    """Seconds to wait after the `tries`-th try failed."""
    if tries < 1:
        return 0.0
    return RETRY_DELAYS_S[tries - 1] if tries <= len(RETRY_DELAYS_S) else LAST_DELAY_S


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """Retry-After as a moment: delay-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return now + timedelta(seconds=int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def classify(result: TryResult) -> Verdict:
    """What a try's answer alone says (the schedule decides whether a RETRY still has time)."""
    code = result.status_code
    if code is None:
        return Verdict.FAILED if result.refused else Verdict.RETRY
    if 200 <= code < 300:
        return Verdict.DELIVERED
    if code == 410:
        return Verdict.STOPPED
    if code == 429 or 500 <= code < 600:
        return Verdict.RETRY
    return Verdict.FAILED


def decide(result: TryResult, *, tries: int, event_at: datetime) -> Decision:
    """The delivery after its `tries`-th try (this one): delivered, stopped, failed, or retried at
    the schedule's next moment (a later Retry-After wins) unless that is past three days."""
    verdict = classify(result)
    if verdict is not Verdict.RETRY:
        return Decision(verdict=verdict)
    scheduled = result.at + timedelta(seconds=delay_after_failed_try(tries))
    asked = parse_retry_after(result.retry_after, result.at)
    next_try = max(scheduled, asked) if asked is not None else scheduled
    if next_try > event_at + GIVE_UP_AFTER:
        return Decision(verdict=Verdict.FAILED)
    return Decision(verdict=Verdict.RETRY, next_try_at=next_try)


@dataclass(frozen=True, kw_only=True)
class OutboxDelivery:
    """An outbox row a sender has leased: the event to POST, exactly as stored."""

    id: str
    call_id: str
    url: str
    body: bytes
    tries: int
    """Tries made before this one."""
    event_at: datetime
    stopped: bool = False
    """Its URL answered 410 meanwhile: it ends `stopped` without a try."""


@dataclass(frozen=True, kw_only=True)
class Settlement:
    """A delivery's new state after a try (or without one: stopped, or its lease given back)."""

    delivery_id: str
    verdict: Verdict
    result: TryResult | None = None
    """None: no try was made (a stopped URL, a lease released at a stop)."""
    next_try_at: datetime | None = None
    stop_url: str | None = None
    """The URL to stop for good (it answered 410)."""
