"""Transitions stored set-based: each layer holds a call at most once, in the batch's order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from orchestrator.domain.attempt import Transition
from orchestrator.domain.call import CallStatus
from orchestrator.persistence.dispatch import transition_layers

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _t(call: uuid.UUID, status: CallStatus) -> Transition:
    return Transition(attempt_id=uuid.uuid5(call, "a"), call_id=call, status=status, at=AT)


def test_a_calls_later_transitions_go_to_later_layers_in_their_order() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    batch = [
        _t(a, CallStatus.RINGING),
        _t(b, CallStatus.RINGING),
        _t(a, CallStatus.IN_PROGRESS),
        _t(c, CallStatus.RINGING),
        _t(a, CallStatus.COMPLETED),
        _t(b, CallStatus.BUSY),
    ]
    assert transition_layers(batch) == [[0, 1, 3], [2, 5], [4]]


def test_every_position_lands_once_and_no_layer_holds_a_call_twice() -> None:
    calls = [uuid.uuid4() for _ in range(5)]
    batch = [_t(calls[(i * 7) % 5 if i % 3 else 0], CallStatus.RINGING) for i in range(40)]
    layers = transition_layers(batch)
    assert sorted(p for layer in layers for p in layer) == list(range(40))
    for layer in layers:
        assert len({batch[p].call_id for p in layer}) == len(layer)
        assert layer == sorted(layer)
    # A call's transitions keep their order across layers.
    for call in calls:
        depths = [d for d, layer in enumerate(layers) for p in layer if batch[p].call_id == call]
        positions = [p for layer in layers for p in layer if batch[p].call_id == call]
        assert depths == list(range(len(depths)))
        assert positions == sorted(positions)


def test_an_empty_batch_has_no_layers() -> None:
    assert transition_layers([]) == []
