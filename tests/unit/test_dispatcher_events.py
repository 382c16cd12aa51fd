"""Event ids minted by the dispatcher: unique, and valid UUIDs for the call_events column."""

from __future__ import annotations

import itertools
import uuid

from orchestrator.services.dispatch import event_uids


def test_event_uids_are_unique_version_4_uuids() -> None:
    ids = list(itertools.islice(event_uids(), 5000))
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert all(str(u) == i for u, i in zip(parsed, ids)), "already in canonical form"


def test_each_process_gets_its_own_prefix() -> None:
    assert next(event_uids()) != next(event_uids())
