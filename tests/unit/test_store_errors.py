"""The dispatch store's edge: psycopg's and psycopg_pool's errors come out as the domain's port
errors (StoreUnavailable, StoreRefused), from every method of DispatchStore; anything else, a
bug, passes unchanged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import psycopg_pool
import pytest

from orchestrator.domain.attempt import Transition
from orchestrator.domain.call import CallStatus
from orchestrator.domain.errors import StoreError, StoreRefused, StoreUnavailable, Unavailable
from orchestrator.domain.ports import DispatchRepository, Unsent
from orchestrator.persistence.db import Pool
from orchestrator.persistence.dispatch import DispatchStore
from orchestrator.persistence.errors import ERROR_MAP, port_error, raises_port_errors


def _subclasses(cls: type[psycopg.Error]) -> Iterator[type[psycopg.Error]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _subclasses(sub)


def _raising(exc: BaseException) -> Any:
    @raises_port_errors
    async def method() -> None:
        raise exc

    return method


@pytest.mark.parametrize(("cls", "port"), ERROR_MAP, ids=[cls.__name__ for cls, _ in ERROR_MAP])
async def test_each_error_class_named_comes_out_as_its_port_error(
    cls: type[psycopg.Error], port: type[StoreError]
) -> None:
    exc = cls("connection refused")
    with pytest.raises(StoreError) as raised:
        await _raising(exc)()
    assert type(raised.value) is port
    assert raised.value.__cause__ is exc, "the driver's error is kept as the cause"
    assert str(raised.value) == "connection refused", "the message logged is the driver's"


def test_every_error_the_driver_and_its_pool_define_has_a_port_error() -> None:
    classes = set(_subclasses(psycopg.Error))
    assert {psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed, psycopg_pool.TooManyRequests} <= classes
    assert len(classes) > 200, "every SQLSTATE class of psycopg.errors is walked"
    for cls in classes:
        unavailable = issubclass(cls, psycopg.OperationalError | psycopg.InterfaceError)
        assert type(port_error(cls("x"))) is (StoreUnavailable if unavailable else StoreRefused), cls


def test_a_store_that_does_not_answer_is_unavailable_at_the_api_and_a_refusal_is_not() -> None:
    assert isinstance(port_error(psycopg_pool.PoolTimeout("x")), Unavailable)
    assert isinstance(port_error(psycopg.errors.DeadlockDetected("x")), StoreUnavailable)
    assert not isinstance(port_error(psycopg.errors.UniqueViolation("x")), Unavailable)


@pytest.mark.parametrize("exc", [KeyError("id"), AssertionError(), asyncio.CancelledError()])
async def test_anything_else_passes_unchanged(exc: BaseException) -> None:
    with pytest.raises(type(exc)) as raised:
        await _raising(exc)()
    assert raised.value is exc


class _DownPool:
    """A pool with no connection to give."""

    def connection(self) -> Any:
        raise psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec")


_TRANSITION = Transition(uuid.uuid4(), uuid.uuid4(), CallStatus.RINGING, datetime.now(UTC))
_ARGS: dict[str, tuple[Any, ...]] = {
    "nodes": (),
    "mark_node": ("n1",),
    "claim": (["n1"],),
    "mark_sending": ([uuid.uuid4()],),
    "requeue_unsent": ([uuid.uuid4()], Unsent.NOT_SENT),
    "requeue_stray": (10.0,),
    "apply": ([_TRANSITION],),
    "heartbeat": ("host", 1),
    "retire": (),
    "adopt_orphans": (8.0,),
    "dispatchers_on": ("host",),
    "cancel_requests": (),
    "stale_renders": (10.0,),
    "expire_due": (),
    "fold_status_counts": (),
    "record_events": ([],),
    "cdr_dispositions": (["a1"],),
}


async def test_every_method_of_the_store_raises_port_errors_only() -> None:
    public = {name for name in vars(DispatchStore) if not name.startswith("_")}
    port = {name for name in vars(DispatchRepository) if not name.startswith("_")}
    assert set(_ARGS) == public == port, "each method of the port is tried below"
    store = DispatchStore(cast(Pool, _DownPool()), "owner")
    for name, args in _ARGS.items():
        kwargs = {"up": True} if name == "mark_node" else {}
        with pytest.raises(StoreUnavailable):
            await getattr(store, name)(*args, **kwargs)
