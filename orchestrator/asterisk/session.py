"""A short AMI session to one node, for the CLI's one-off actions (trunk checks, cache expiry)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from panoramisk import Manager

from orchestrator.asterisk.ami import header_value
from orchestrator.domain.records import NodeRow


@asynccontextmanager
async def ami_session(node: NodeRow, login_timeout: float) -> AsyncIterator[Manager | None]:
    """Logged in to the node's AMI, or None when it does not answer within `login_timeout`."""
    manager = Manager(
        loop=asyncio.get_running_loop(),
        host=header_value(node.ami_host),
        port=node.ami_port,
        username=header_value(node.ami_user),
        secret=header_value(node.ami_secret),
        reconnect_timeout=3600,
        ping_delay=3600,
    )
    logged_in = asyncio.Event()
    manager.on_login = lambda _m: logged_in.set()
    manager.connect()
    try:
        try:
            await asyncio.wait_for(logged_in.wait(), login_timeout)
        except TimeoutError:
            yield None
            return
        yield manager
    finally:
        manager.close()
