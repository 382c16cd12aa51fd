"""The API's one error shape, {"error": {"code", "message", "field"}}, and the status per error."""

from __future__ import annotations

from aiohttp import web

from orchestrator.domain.errors import Busy, Conflict, NotFound, SespclError, Unavailable, ValidationFailed

_STATUS: dict[type[SespclError], int] = {
    ValidationFailed: 422,
    NotFound: 404,
    Conflict: 409,
    Unavailable: 503,
}


class ApiError(Exception):
    """An error decided at the HTTP edge itself (auth, body size, malformed JSON)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "field": field}}, status=status, headers=headers
    )


def from_domain(exc: SespclError) -> web.Response:
    status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 500)
    response = error_response(status, exc.code, exc.message, exc.field)
    if isinstance(exc, Busy):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response
