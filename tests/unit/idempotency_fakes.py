"""An in-memory Idempotency-Key store with the PostgreSQL store's rules (no expiry or staleness:
those are the database's, exercised there)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from orchestrator.services.idempotency import Answer, Claim


@dataclass
class Held:
    holder: UUID
    request_hash: str | None = None
    answer: Answer | None = None
    touches: int = 0


class MemoryIdempotency:
    def __init__(self) -> None:
        self.keys: dict[str, Held] = {}
        self.claims = 0

    async def claim(self, key: str, holder: UUID, *, ttl_s: float, stale_after_s: float) -> Claim:
        self.claims += 1
        held = self.keys.get(key)
        if held is None:
            self.keys[key] = Held(holder)
            return Claim(holder=holder)
        if held.answer is None:
            return Claim()
        return Claim(answer=held.answer, request_hash=held.request_hash)

    async def touch(self, key: str, holder: UUID) -> None:
        held = self.keys.get(key)
        if held is not None and held.holder == holder and held.answer is None:
            held.touches += 1

    async def answer(self, key: str, holder: UUID, request_hash: str, answer: Answer) -> None:
        held = self.keys.get(key)
        if held is not None and held.holder == holder and held.answer is None:
            held.request_hash, held.answer = request_hash, answer

    async def release(self, key: str, holder: UUID) -> None:
        held = self.keys.get(key)
        if held is not None and held.holder == holder and held.answer is None:
            del self.keys[key]

    def running(self, key: str) -> bool:
        held = self.keys.get(key)
        return held is not None and held.answer is None
