"""A small client for the v1 REST API, used by the CLI and the demo."""

from __future__ import annotations

import os
from typing import Any

import httpx


class ApiClientError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = error.get("message") or str(body)
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.code = error.get("code")


class ApiClient:
    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, timeout: float = 10.0
    ) -> None:
        base = base_url or os.environ.get("SESPCL_API_URL", "http://127.0.0.1:5000")
        key = api_key if api_key is not None else os.environ.get("SESPCL_API_KEY", "")
        self._http = httpx.Client(base_url=base, timeout=timeout, headers={"Authorization": f"Bearer {key}"})

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiClientError(0, {"error": {"message": f"API not reachable: {exc}"}}) from exc
        try:
            body = response.json() if response.content else None
        except ValueError as exc:  # not our API answering (a proxy's page, another service)
            raise ApiClientError(
                response.status_code, {"error": {"message": f"not an API answer: {response.text[:200]!r}"}}
            ) from exc
        if response.status_code >= 400:
            raise ApiClientError(response.status_code, body)
        return body

    def submit(self, payload: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return dict(self._call("POST", "/v1/calls", json=payload, headers=headers))

    def get(self, call_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/calls/{call_id}"))

    def events(self, call_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/v1/calls/{call_id}/events")["events"])

    def cancel(self, call_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/v1/calls/{call_id}/cancel"))

    def health(self) -> dict[str, Any]:
        response = self._http.get("/health")
        return dict(response.json())
