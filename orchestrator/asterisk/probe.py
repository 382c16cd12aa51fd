"""Is an Asterisk node answering? A TCP connect that reads the AMI banner, nothing more."""

from __future__ import annotations

import asyncio


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
