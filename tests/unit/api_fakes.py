"""Stand-ins for what the API's handlers reach, shared by the unit tests of the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from orchestrator.api.deps import ApiDeps


class Stub:
    """Any service: every awaited method records its name and keyword arguments, then raises
    `fault(name)` (the test's sign that the handler got that far)."""

    def __init__(self, fault: Callable[[str], Exception]) -> None:
        self.fault = fault
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        async def method(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            raise self.fault(name)

        return method


def api_deps(fault: Callable[[str], Exception], **given: Any) -> ApiDeps:
    """ApiDeps with the limits the tests assume; each service not `given` is its own Stub."""
    fields: dict[str, Any] = {
        name: cast(Any, Stub(fault))
        for name in ("calls", "keys", "health", "metrics", "campaigns", "webhooks", "idempotency")
    }
    fields |= {
        "max_body_bytes": 65536,
        "max_bulk_bytes": 1 << 20,
        "max_line_bytes": 65536,
        "upload_idle_s": 30.0,
    }
    return ApiDeps(**(fields | given))


class OneTrunk:
    """A trunk directory holding one trunk, `demo`, the default."""

    async def trunk_names(self) -> frozenset[str]:
        return frozenset({"demo"})

    async def trunk_exists(self, name: str) -> bool:
        return name == "demo"

    async def default_trunk(self) -> str | None:
        return "demo"
