"""Expire a changed trunk from the nodes' sorcery memory caches (asterisk-config/sorcery.conf).

Nodes cache the PJSIP objects they read from PostgreSQL; a trunk added, changed or removed is
expired on every node at once so its next call uses the change. A node that cannot be reached
refreshes on its own when the cached object's lifetime ends.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from orchestrator.asterisk.ami import header_value
from orchestrator.asterisk.session import AmiLogin, ami_session

CACHES = ("sespcl-endpoint", "sespcl-auth")
"""The caches sorcery.conf names, one per cached realtime object type (each named as the trunk)."""
NOT_CACHED = "could not be expired from the cache"
CACHE_LIFETIME_S = 15
"""sorcery.conf's object_lifetime_maximum: how stale a node that missed the expiry can be."""


@dataclass(frozen=True)
class ExpiryResult:
    node: str
    expired: bool
    detail: str = ""


async def expire_trunk_on(node: AmiLogin, trunk: str, timeout: float) -> ExpiryResult:
    async with ami_session(node, timeout) as manager:
        if manager is None:
            return ExpiryResult(node.node, False, "AMI does not answer")
        name = header_value(trunk)
        for cache in CACHES:
            action = {"Action": "SorceryMemoryCacheExpireObject", "Cache": cache, "Object": name}
            reply = await asyncio.wait_for(manager.send_action(action), timeout)
            # An object the node has not cached "could not be expired": nothing stale there.
            message = str(reply.get("Message", ""))
            if reply.get("Response") != "Success" and NOT_CACHED not in message:
                return ExpiryResult(node.node, False, f"{cache}: {message}")
        return ExpiryResult(node.node, True)


async def expire_trunk_everywhere(
    nodes: list[AmiLogin], trunk: str, timeout: float = 3.0
) -> list[ExpiryResult]:
    async def one(node: AmiLogin) -> ExpiryResult:
        try:
            return await expire_trunk_on(node, trunk, timeout)
        except (TimeoutError, OSError) as exc:
            return ExpiryResult(node.node, False, str(exc) or type(exc).__name__)

    return list(await asyncio.gather(*(one(n) for n in nodes)))
