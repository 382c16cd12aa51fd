"""`sespcl trunks test`: SIP OPTIONS to a trunk from every node, over each node's AMI."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

from orchestrator.asterisk.ami import header_value
from orchestrator.asterisk.session import AmiLogin, ami_session


@dataclass(frozen=True)
class QualifyResult:
    node: str
    reachable: bool
    rtt_ms: float | None
    status: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _contact(messages: Any, aor: str) -> tuple[str, str] | None:
    """(Status, RoundtripUsec) of the AOR's contact in a PJSIPShowEndpoint reply."""
    for message in messages if isinstance(messages, list) else [messages]:
        if message.get("Event") == "ContactStatusDetail" and message.get("AOR") == aor:
            return str(message.get("Status", "")), str(message.get("RoundtripUsec", ""))
    return None


async def qualify_on(node: AmiLogin, trunk: str, timeout: float) -> QualifyResult:
    async with ami_session(node, min(timeout, 3.0)) as manager:
        if manager is None:
            return QualifyResult(node.node, False, None, "node-down", "AMI does not answer")
        name = header_value(trunk)
        # Realtime AORs are only qualify-tracked once synchronised.
        await manager.send_action({"Action": "Command", "Command": f"pjsip reload qualify aor {name}"})
        before = _contact(await manager.send_action({"Action": "PJSIPShowEndpoint", "Endpoint": name}), name)
        reply = await manager.send_action({"Action": "PJSIPQualify", "Endpoint": name})
        if reply.get("Response") != "Success":
            return QualifyResult(node.node, False, None, "error", str(reply.get("Message", "")))
        deadline = time.monotonic() + timeout
        current = before
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            current = _contact(
                await manager.send_action({"Action": "PJSIPShowEndpoint", "Endpoint": name}), name
            )
            if current is not None and current != before and current[0] in ("Reachable", "Unreachable"):
                break
        if current is None:
            return QualifyResult(node.node, False, None, "unknown", "the node does not know the trunk")
        status, rtt = current
        reachable = status == "Reachable"
        rtt_ms = round(int(rtt) / 1000, 3) if reachable and rtt.isdigit() else None
        return QualifyResult(node.node, reachable, rtt_ms, status.lower() or "unknown")


async def qualify_everywhere(nodes: list[AmiLogin], trunk: str, timeout: float) -> list[QualifyResult]:
    return list(await asyncio.gather(*(qualify_on(n, trunk, timeout) for n in nodes)))
