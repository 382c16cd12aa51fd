"""The pure side of webhook delivery: the signature (checked with the independent
`standardwebhooks` package), the retry schedule, Retry-After, and what each answer means."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from orchestrator.domain.webhook_delivery import (
    GIVE_UP_AFTER,
    TryResult,
    Verdict,
    classify,
    decide,
    delay_after_failed_try,
    parse_retry_after,
    parse_secret,
    signed_headers,
)

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
EVENT_AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
BODY = json.dumps(
    {
        "type": "digits",
        "call_id": "0193a6c2-8d2e-7c51-9a43-1f0e2b7c9d10",
        "status": "in-progress",
        "digits": "1",
        "metadata": {"patient": "Zoë O'Brien", "note": "<script>alert(1)</script>\u2028"},
    },
    ensure_ascii=False,
).encode()


def _try(code: int | None = None, *, at: datetime = EVENT_AT, **extra: object) -> TryResult:
    return TryResult(at=at, latency_ms=12.5, status_code=code, **extra)  # type: ignore[arg-type]


def test_a_signed_body_verifies_with_standardwebhooks() -> None:
    timestamp = int(datetime.now(UTC).timestamp())
    headers = signed_headers(parse_secret(SECRET), "msg_01a24e85640770dcb066a4c7892262be", timestamp, BODY)
    assert headers["webhook-signature"].startswith("v1,")
    payload = Webhook(SECRET).verify(BODY, headers)
    assert payload["metadata"]["patient"] == "Zoë O'Brien"


def test_standardwebhooks_refuses_a_changed_body_or_another_id() -> None:
    timestamp = int(datetime.now(UTC).timestamp())
    headers = signed_headers(parse_secret(SECRET), "msg_01a24e85640770dcb066a4c7892262be", timestamp, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY.replace(b'"1"', b'"9"'), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY, headers | {"webhook-id": "msg_01a24e85640a7260bfbaebb9f0e8cb50"})


def test_a_secret_must_be_whsec_base64_of_enough_bytes() -> None:
    assert parse_secret(SECRET) == bytes(range(32))
    for bad in (
        "",
        bytes(range(32)).hex(),
        "whsec_not*base64",
        "whsec_" + base64.b64encode(b"short").decode(),
    ):
        with pytest.raises(ValueError):
            parse_secret(bad)


def test_the_schedule_is_5s_5min_30min_2h_5h_10h_then_every_10h() -> None:
    waits = [delay_after_failed_try(n) for n in range(1, 10)]
    assert waits == [5, 300, 1800, 7200, 18000, 36000, 36000, 36000, 36000]


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (299, Verdict.DELIVERED),
        (301, Verdict.FAILED),  # redirects are not followed: a failure, not retried
        (302, Verdict.FAILED),
        (400, Verdict.FAILED),
        (401, Verdict.FAILED),
        (404, Verdict.FAILED),
        (410, Verdict.STOPPED),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (599, Verdict.RETRY),
        (None, Verdict.RETRY),  # timeout or connection error
    ],
)
def test_what_an_answer_means(code: int | None, verdict: Verdict) -> None:
    assert classify(_try(code)) is verdict


def test_an_address_refused_as_ssrf_fails_without_retry() -> None:
    refused = _try(None, error="refused (SSRF): localhost resolves to 127.0.0.1", refused=True)
    assert decide(refused, tries=1, event_at=EVENT_AT).verdict is Verdict.FAILED


def test_a_retry_follows_the_schedule_from_the_try() -> None:
    at = EVENT_AT + timedelta(seconds=7)
    decision = decide(_try(500, at=at), tries=2, event_at=EVENT_AT)
    assert decision.verdict is Verdict.RETRY
    assert decision.next_try_at == at + timedelta(minutes=5)


def test_retry_after_wins_only_when_later_than_the_schedule() -> None:
    later = decide(_try(429, retry_after="120"), tries=1, event_at=EVENT_AT)
    assert later.next_try_at == EVENT_AT + timedelta(seconds=120)
    sooner = decide(_try(503, retry_after="1"), tries=1, event_at=EVENT_AT)
    assert sooner.next_try_at == EVENT_AT + timedelta(seconds=5)
    dated = decide(_try(503, retry_after="Mon, 07 Dec 2026 10:00:00 GMT"), tries=1, event_at=EVENT_AT)
    assert dated.next_try_at == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("value", ["", "soon", "-5", "1.5", "Mon, 99 Foo 2026", "\x00"])
def test_an_unreadable_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after(value, EVENT_AT) is None
    assert decide(
        _try(503, retry_after=value), tries=1, event_at=EVENT_AT
    ).next_try_at == EVENT_AT + timedelta(seconds=5)


def test_three_days_after_the_event_a_retry_becomes_a_failure() -> None:
    near_end = EVENT_AT + GIVE_UP_AFTER - timedelta(hours=1)
    assert decide(_try(500, at=near_end), tries=9, event_at=EVENT_AT).verdict is Verdict.FAILED
    far_retry_after = decide(_try(503, retry_after=str(4 * 86400)), tries=1, event_at=EVENT_AT)
    assert far_retry_after.verdict is Verdict.FAILED
    still_in_time = decide(_try(500, at=EVENT_AT + timedelta(days=2)), tries=9, event_at=EVENT_AT)
    assert still_in_time.verdict is Verdict.RETRY
