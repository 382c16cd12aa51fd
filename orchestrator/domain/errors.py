"""Domain errors. Each carries a stable kebab-case `code`; only the API edge picks an HTTP status.

SespclError
├── ValidationFailed        bad input, names the field
├── NotFound                no such call / trunk / node
├── Conflict                idempotency key reused with another body, duplicate name, …
└── Unavailable             a dependency (database, Redis, Asterisk) does not answer
    └── Busy                at capacity now (too many uploads at once): try again shortly
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
