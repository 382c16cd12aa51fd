"""Domain errors. Each carries a stable kebab-case `code`; only the API edge picks an HTTP status.

SespclError
├── ValidationFailed        bad input, names the field
├── NotFound                no such call / trunk / node
├── Conflict                idempotency key reused with another body, duplicate name, …
├── Unavailable             a dependency (database, Redis, Asterisk) does not answer
│   └── Busy                at capacity now (too many uploads at once): try again shortly
└── StoreError              a repository port failed to do what it was asked (what services catch)
    ├── StoreUnavailable    the database did not do it now (also an Unavailable): the same
    │                       request later may well succeed
    └── StoreRefused        the database refused the statement: a bug, or a schema out of step

A store adapter raises only StoreError for its database's failures (the adapter maps them at its
edge); any other exception out of a store is a bug, left to the caller's last resort.
"""

from __future__ import annotations


class SespclError(Exception):
    code = "error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class ValidationFailed(SespclError):
    code = "invalid-request"


class NotFound(SespclError):
    code = "not-found"


class Conflict(SespclError):
    code = "conflict"


class Unavailable(SespclError):
    code = "unavailable"


class Busy(Unavailable):
    """Working at capacity: the same request later will be served."""

    code = "busy"
    retry_after_s = 5


class StoreError(SespclError):
    code = "store-error"


class StoreUnavailable(StoreError, Unavailable):
    """Connection lost or refused, no pooled connection free in time, a statement timed out, a
    deadlock or serialization failure: nothing the request itself got wrong."""

    code = "unavailable"


class StoreRefused(StoreError):
    """The database refused the statement (a constraint, bad data, SQL it does not know)."""

    code = "store-refused"
