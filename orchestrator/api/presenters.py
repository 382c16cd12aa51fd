"""Database rows → the JSON the v1 API promises (docs/openapi.json)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.api.two_way import callback_shape, interaction_shape
from orchestrator.domain.call import FINAL_STATUSES, CallStatus, call_duration_s
from orchestrator.domain.campaign import CancelProgress
from orchestrator.domain.interaction import Interaction
from orchestrator.services.metrics import FarmOverview


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _cause(code: int | None, text: str | None) -> dict[str, Any] | None:
    return None if code is None else {"code": code, "text": text}


def call_json(call: dict[str, Any], attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    answered, ended = call["answered_at"], call["ended_at"]
    body: dict[str, Any] = {
        "id": str(call["id"]),
        "to": call["to_number"],
        "from": call["from_number"],
        "trunk": call["trunk"],
        "status": call["status"],
        "status_reason": call["status_reason"],
        "tts": {"text": call["tts_text"], "voice": call["tts_voice"]},
        "ring_timeout_s": call["ring_timeout_s"],
        "created_at": _iso(call["created_at"]),
        "updated_at": _iso(call["updated_at"]),
        "answered_at": _iso(answered),
        "ended_at": _iso(ended),
        "duration_s": call_duration_s(answered, ended),
        "hangup_cause": _cause(call["hangup_cause"], call["hangup_cause_text"]),
        "metadata": call["metadata"],
        "not_before": _iso(call.get("not_before")),
        "expires_at": _iso(call.get("expires_at")),
        "calling_window": (
            {"start": call["window_start"].strftime("%H:%M"), "end": call["window_end"].strftime("%H:%M")}
            if call.get("window_start") is not None
            else None
        ),
        "time_zones": call.get("time_zones"),
        "max_attempts": call.get("max_attempts", 1),
        "retry_on": call.get("retry_on") or [],
        "retry_backoff_s": call.get("retry_backoff_s", 60.0),
        "created_by": call.get("created_by"),
        # What came back (the dispatcher writes it), then what was asked, as it was asked.
        "digits": call.get("digits"),
        "answered_by": call.get("answered_by"),
        "hooks": call.get("hooks") or {},
        **_two_way(call),
    }
    if attempts is not None:
        body["attempts"] = [attempt_json(a) for a in attempts]
    return body


def _two_way(row: dict[str, Any]) -> dict[str, Any]:
    """A call's or a campaign's two-way fields, in the request's shape (null: not asked)."""
    return {
        **interaction_shape(Interaction.from_json(row.get("interaction"))),
        "status_callback": callback_shape(row.get("status_callback")),
    }


def attempt_json(attempt: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(attempt["id"]),
        "number": attempt["number"],
        "node": attempt["node"],
        "trunk": attempt["trunk"],
        "status": attempt["status"],
        "started_at": _iso(attempt["started_at"]),
        "answered_at": _iso(attempt["answered_at"]),
        "ended_at": _iso(attempt["ended_at"]),
        "cause": _cause(attempt["hangup_cause"], attempt["hangup_cause_text"]),
    }


def event_json(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": event["seq"],
        "at": _iso(event["at"]),
        "type": event["type"],
        "attempt_id": str(event["attempt_id"]) if event["attempt_id"] else None,
        "data": event["data"],
    }


def campaign_json(
    campaign: dict[str, Any],
    counts: dict[str, int] | None = None,
    pace: float | None = None,
    renders: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """`renders`: (needed, ready) of the audio its calls play (shown by GET /v1/campaigns/{id})."""
    body: dict[str, Any] = {
        "id": str(campaign["id"]),
        "name": campaign["name"],
        "status": campaign["status"],
        "defaults": {
            "trunk": campaign["trunk"],
            "from": campaign["from_number"],
            "tts": {
                "text": campaign["tts_template"],
                "voice": campaign["tts_voice"],
                "mode": campaign.get("tts_mode", "segments"),
            },
            "ring_timeout_s": campaign["ring_timeout_s"],
            "calling_window": (
                {
                    "start": campaign["window_start"].strftime("%H:%M"),
                    "end": campaign["window_end"].strftime("%H:%M"),
                }
                if campaign.get("window_start") is not None
                else None
            ),
            "expires_at": _iso(campaign.get("expires_at")),
            "max_attempts": campaign.get("max_attempts", 1),
            "retry_on": campaign.get("retry_on") or [],
            "retry_backoff_s": campaign.get("retry_backoff_s", 60.0),
            **_two_way(campaign),
        },
        "cps": campaign["cps"],
        "created_by": campaign.get("created_by"),
        "created_at": _iso(campaign["created_at"]),
        "updated_at": _iso(campaign["updated_at"]),
    }
    if counts is not None:
        total = sum(counts.values())
        done = sum(counts.get(s.value, 0) for s in FINAL_STATUSES)
        waiting = counts.get(CallStatus.QUEUED.value, 0)
        body["counts"] = counts
        body["total"] = total
        body["progress"] = round(done / total, 4) if total else 0.0
        body["pace_cps"] = round(pace or 0.0, 2)
        body["eta_s"] = round(waiting / pace) if pace else None
        cancel = CancelProgress.of(campaign["status"], counts)
        body["cancel"] = None if cancel is None else {"queued_left": cancel.queued_left, "done": cancel.done}
    if renders is not None:
        body["renders"] = {"needed": renders[0], "ready": renders[1]}
    return body


def farm_json(farm: FarmOverview) -> dict[str, Any]:
    return {
        "calls_by_status": farm.calls_by_status,
        "queue_depths": {"dialable": farm.dialable, **farm.queue_depths},
        "live_calls_per_node": farm.live_calls_per_node,
        # The calls that could go now, at the pace of the last minute: how long until they
        # have (calls held for later are in calls_by_status.queued, not here).
        "dial_pace_cps": round(farm.dial_pace_cps, 2),
        "eta_s": farm.eta_s,
        # Rendered audio on disk (`sespcl audio prune` deletes what no live call needs).
        "audio": {"prompts": farm.audio.prompts, "bytes": farm.audio.bytes},
    }
