"""structlog set-up shared by every process; bind `call_id` on each call's lines."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import orjson
import structlog


def configure_logging(level: str = "info", json: bool | None = None) -> None:
    """`json`: one JSON object per line; None (the default) chooses it whenever stderr is not a
    terminal, as under the supervisor or in a container. The console renderer is for people
    at a terminal: it costs the dispatcher about four times as much per line."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(message)s")
    if json is None:
        json = not sys.stderr.isatty()
    renderer: structlog.types.Processor
    factory: Callable[..., Any]
    if json:
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = structlog.BytesLoggerFactory(file=sys.stderr.buffer)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        factory = structlog.PrintLoggerFactory(file=sys.stderr)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # panoramisk and aiohttp log through stdlib logging; keep them quieter than ours.
    logging.getLogger("panoramisk").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("aiohttp.access").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("aiohttp.server").addFilter(_bad_requests_in_one_line)


def _bad_requests_in_one_line(record: logging.LogRecord) -> bool:
    """aiohttp answers a request it cannot parse (a NUL in a header, a broken request line) with
    400 itself, and logs a traceback for each: a client's fault, one warning line is enough."""
    from aiohttp.http_exceptions import HttpProcessingError

    if record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
        structlog.get_logger("aiohttp.server").warning(
            "api.bad_http_request", error=" ".join(str(record.exc_info[1]).split())[:200]
        )
        return False
    return True
