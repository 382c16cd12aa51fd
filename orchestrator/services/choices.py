"""The trunk and voice a request ends up with: given, or the configured default, and known."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Protocol

from orchestrator.domain.errors import ValidationFailed


class TrunkDirectory(Protocol):
    async def trunk_names(self) -> frozenset[str]: ...

    async def trunk_exists(self, name: str) -> bool: ...

    async def default_trunk(self) -> str | None: ...


async def choose_trunk(trunks: TrunkDirectory, requested: str | None, *, field: str) -> str:
    name = requested or await trunks.default_trunk()
    if name is None:
        raise ValidationFailed("no trunk given and no default trunk is configured", field=field)
    if not await trunks.trunk_exists(name):
        raise ValidationFailed(f"no trunk named {name!r}", field=field, code="unknown-trunk")
    return name


def choose_voice(
    requested: str | None, default: str, voices: Callable[[], Collection[str]], *, field: str
) -> str:
    name = requested or default
    if name.lower() not in voices():
        raise ValidationFailed(f"unknown voice {name!r}", field=field, code="unknown-voice")
    return name
