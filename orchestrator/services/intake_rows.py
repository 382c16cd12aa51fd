"""One bulk upload's rows, read one at a time: the call each asks for, or the RowError that
rejects it. The work a row costs stays what it was for plain calls unless the row carries
two-way fields of its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from orchestrator.domain.calling_hours import CallingWindow, callee_zones
from orchestrator.domain.campaign import ROW_TWO_WAY, BulkRow, RowError, RowParser
from orchestrator.domain.errors import ValidationFailed
from orchestrator.domain.interaction import Interaction
from orchestrator.domain.requests import InteractionRequest
from orchestrator.domain.webhooks import StatusCallback
from orchestrator.services.two_way import SpeechRenderer

TwoWay = tuple[Interaction, StatusCallback | None]
PIECES_REMEMBERED = 10_000


class RowTwoWayReader(Protocol):
    """Reads a row's two-way fields (api/two_way.py) over the campaign's defaults; raises
    RowError for a row that breaks a rule."""

    def __call__(
        self, fields: Mapping[str, Any], defaults: Interaction, callback: StatusCallback | None
    ) -> tuple[InteractionRequest, StatusCallback | None]: ...


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a µs a row
class StagedRow:
    row: BulkRow
    audio_hash: str
    time_zones: tuple[str, ...] | None
    two_way: TwoWay | None
    """The row's own two-way fields over the defaults; None: the campaign's, unchanged."""
    pieces: tuple[tuple[str, str], ...]
    """(audio hash, text) of each piece the call plays, in order; the first is `audio_hash`."""


@dataclass(frozen=True, kw_only=True)
class RowReader:
    parser: RowParser
    speech: SpeechRenderer
    voice: str
    """The campaign's voice: its prompts', and its replies' unless they name their own."""
    window: CallingWindow | None
    now: datetime
    defaults: Interaction
    callback: StatusCallback | None
    two_way: RowTwoWayReader | None
    pieces_seen: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    def read(self, raw: Mapping[str, Any]) -> StagedRow:
        row = self.parser.parse(raw)
        zones = None
        if self.window is not None:
            try:
                zones = callee_zones(row.to, row.tz, self.window, self.now)
            except ValueError as exc:
                raise RowError("tz" if row.tz else "to", str(exc)) from exc
        own = None if raw.keys().isdisjoint(ROW_TWO_WAY) else self._own(raw)
        pieces = tuple(map(self._piece, row.pieces or (row.text,)))
        return StagedRow(row, pieces[0][0], zones, own, pieces)

    def _piece(self, text: str) -> tuple[str, str]:
        """(audio hash, text) of a piece: the same words repeat on most rows, each pair is made
        once (a bounded memory, as the hashes' own)."""
        found = self.pieces_seen.get(text)
        if found is None:
            if len(self.pieces_seen) >= PIECES_REMEMBERED:
                self.pieces_seen.clear()
            found = self.pieces_seen[text] = (self.speech.audio_hash(text, self.voice), text)
        return found

    def _own(self, raw: Mapping[str, Any]) -> TwoWay:
        fields = {key: raw[key] for key in ROW_TWO_WAY if key in raw}
        if self.two_way is None:
            raise RowError(min(fields), "two-way fields are not read on this path")
        ask, callback = self.two_way(fields, self.defaults, self.callback)
        try:
            return self.speech.interaction(ask, self.voice), callback
        except ValidationFailed as exc:  # a reply's unknown voice
            raise RowError(exc.field, exc.message, exc.code) from exc
