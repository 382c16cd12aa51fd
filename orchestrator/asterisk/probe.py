"""Is an Asterisk node answering? A TCP connect that reads the AMI banner, nothing more."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


async def tcp_answers(url: str | None, timeout: float = 1.0) -> bool:
    """Does anything accept a connection at the URL's host and port (e.g. a node's ARI)?"""
    if not url:
        return False
    parsed = urlsplit(url)
    if not parsed.hostname:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parsed.hostname, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def node_reachable(ami_host: str, ami_port: int, ari_url: str | None, timeout: float = 1.0) -> bool:
    """Does the node accept connections on its AMI port or its HTTP (ARI) port? Either one means
    the node lives and only a link is cut; neither means it is gone (or its host is)."""
    checks = await asyncio.gather(
        tcp_answers(f"tcp://{ami_host}:{ami_port}", timeout), tcp_answers(ari_url, timeout)
    )
    return any(checks)


async def ami_banner(host: str, port: int, timeout: float = 1.5) -> str | None:
    """The banner ("Asterisk Call Manager/11.0.0"), or None when the node does not answer."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return None
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
    text = line.decode("utf-8", "replace").strip()
    return text if text.startswith("Asterisk Call Manager/") else None
