"""What the health checks read, and the verdict their results give. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CHECKS = ("postgres", "redis", "asterisk", "dispatcher", "workers")
"""Every check, in the order they are reported."""

SERVING_NEEDS = ("postgres", "redis", "asterisk")
"""The checks /health answers 503 for (issue 2); the others only make it "degraded"."""


@dataclass(frozen=True)
class NodeAddress:
    """A node as the checks probe it: its AMI port should greet with a banner."""

    name: str
    ami_host: str
    ami_port: int
    drained: bool


@dataclass(frozen=True)
class HealthSnapshot:
    """What the checks read from PostgreSQL, on one connection."""

    dispatchers: int
    """Dispatchers whose heartbeat is recent."""
    nodes: tuple[NodeAddress, ...]


@dataclass(frozen=True)
class Verdict:
    status: str
    """"ok", "degraded" (taking calls, but they wait) or "unavailable"."""
    degraded: tuple[str, ...] = ()
    """The failed checks that do not stop calls being taken, sorted (listed whatever the
    status)."""

    @property
    def serving(self) -> bool:
        return self.status != "unavailable"


def verdict(checks: Mapping[str, Mapping[str, Any]]) -> Verdict:
    """PostgreSQL, Redis and a node are what taking calls needs: without one the API must not
    look ready. A silent dispatcher or no worker is reported, as degraded: calls are taken but
    wait."""
    serving = all(checks[name]["ok"] for name in SERVING_NEEDS)
    degraded = tuple(sorted(n for n, c in checks.items() if not c["ok"] and n not in SERVING_NEEDS))
    status = "unavailable" if not serving else "degraded" if degraded else "ok"
    return Verdict(status, degraded)
