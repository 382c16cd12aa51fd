"""The database's failures as the domain's port errors, at the store's edge: services catch
StoreError, never psycopg's or psycopg_pool's own classes."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import psycopg
import psycopg_pool

from orchestrator.domain.errors import StoreError, StoreRefused, StoreUnavailable

P = ParamSpec("P")
T = TypeVar("T")

ERROR_MAP: tuple[tuple[type[psycopg.Error], type[StoreError]], ...] = (
    # The first that matches wins. The pool's errors are OperationalErrors too: named for the
    # reader, as each is a way the database is unavailable rather than wrong.
    (psycopg_pool.PoolTimeout, StoreUnavailable),  # no connection free in time
    (psycopg_pool.TooManyRequests, StoreUnavailable),  # too many callers waiting for one
    (psycopg_pool.PoolClosed, StoreUnavailable),  # the pool is closing with the process
    # Connection lost or refused, server shutting down, statement timeout, deadlock,
    # serialization failure, lock not available: the same request later may succeed.
    (psycopg.OperationalError, StoreUnavailable),
    (psycopg.InterfaceError, StoreUnavailable),  # the connection is closed or broken
    # Everything else the driver raises (integrity, data, SQL the server does not know,
    # internal): the database refused the statement.
    (psycopg.Error, StoreRefused),
)


def port_error(exc: psycopg.Error) -> StoreError:
    """`exc` as its port error, with the same message (as logged before)."""
    port = next(port for cls, port in ERROR_MAP if isinstance(exc, cls))
    return port(str(exc))


def raises_port_errors(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """A store method whose database failures come out as StoreError (the driver's error as
    its cause); anything else it raises, a bug, passes unchanged."""

    @functools.wraps(method)
    async def mapped(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except psycopg.Error as exc:
            raise port_error(exc) from exc

    return mapped
