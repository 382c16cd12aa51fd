"""A short AMI session to one node, for the CLI's one-off actions (trunk checks, cache expiry).

These log in as the nodes' administrative AMI user (`SESPCL_AMI_ADMIN_USER`, asterisk-config's
manager.conf), never as the dispatcher's: the dispatcher's user may only dial and hang up, and
the administrative secret lives only where the CLI runs, not in the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from panoramisk import Manager

from orchestrator.asterisk.ami import header_value
from orchestrator.domain.records import NodeRow


@dataclass(frozen=True)
class AmiLogin:
    node: str
    host: str
    port: int
    username: str
    secret: str

    @classmethod
    def admin(cls, node: NodeRow, username: str, secret: str) -> AmiLogin:
        """The node's AMI address with the administrative user's credentials."""
        return cls(node.name, node.ami_host, node.ami_port, username, secret)


@asynccontextmanager
async def ami_session(login: AmiLogin, login_timeout: float) -> AsyncIterator[Manager | None]:
    """Logged in to the node's AMI, or None when it does not answer within `login_timeout`."""
    manager = Manager(
        loop=asyncio.get_running_loop(),
        host=header_value(login.host),
        port=login.port,
        username=header_value(login.username),
        secret=header_value(login.secret),
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
