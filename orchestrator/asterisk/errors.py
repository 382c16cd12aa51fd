"""The drivers' libraries' errors as the port's (domain/dialing.py: `NodeError` and its kinds),
mapped in one place per adapter, as httpx's `map_exceptions`: each adapter wraps its library
calls in `map_errors` with its own table."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from orchestrator.domain.dialing import NodeError, NodeTimeout

ErrorTable = Sequence[tuple[type[BaseException], type[NodeError]]]
"""(a library's error, the port's error it is raised as); the first entry that fits wins, so
the narrower errors come first (TimeoutError is an OSError)."""


def port_error(table: ErrorTable, error: type[BaseException]) -> type[NodeError] | None:
    """The port's error a library's error is raised as; None for one the table does not know."""
    for library_error, mapped in table:
        if issubclass(error, library_error):
            return mapped
    return None


@contextlib.contextmanager
def map_errors(table: ErrorTable, what: str, *, within_s: float | None = None) -> Iterator[None]:
    """Raise a library's error from inside as the port's error the table gives, saying `what`
    was being done. The port's own errors, and any error the table does not know (a bug is not
    the node's fault), go through unchanged; so does a cancellation."""
    try:
        yield
    except NodeError:
        raise
    except Exception as exc:
        mapped = port_error(table, type(exc))
        if mapped is None:
            raise
        raise mapped(f"{what}: {_detail(exc, mapped, within_s)}") from exc


def _detail(exc: Exception, mapped: type[NodeError], within_s: float | None) -> str:
    if issubclass(mapped, NodeTimeout) and not str(exc):
        return f"no reply within {within_s:g} s" if within_s is not None else "no reply in time"
    return str(exc) or type(exc).__name__
