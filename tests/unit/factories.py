"""Objects the unit tests build often."""

from __future__ import annotations

from typing import Any

from orchestrator.domain.dialing import OriginateRequest


def originate_request(**overrides: Any) -> OriginateRequest:
    fields: dict[str, Any] = dict(
        attempt_id="a1b2",
        to="+14155550123",
        trunk="demo",
        caller_id="+14155550100",
        audio_path="/var/lib/sespcl/audio/abc",
        call_id="c1",
        timeout_ms=30000,
        max_call_s=600,
    )
    fields.update(overrides)
    return OriginateRequest(**fields)
