"""Status callbacks: which events a call reports, where to, and which addresses are never
called (SSRF). Pure: no I/O (resolving a name is the sender's job; it checks each address
here)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class WebhookEvent(str, Enum):
    INITIATED = "initiated"
    RINGING = "ringing"
    ANSWERED = "answered"
    COMPLETED = "completed"
    """Every final status: the payload's `status` says which."""
    DIGITS = "digits"
    MACHINE_DETECTION = "machine_detection"
    HOOK = "hook"


ALL_EVENTS = frozenset(WebhookEvent)


@dataclass(frozen=True, kw_only=True)
class StatusCallback:
    url: str
    events: frozenset[WebhookEvent] = ALL_EVENTS

    def to_json(self) -> dict[str, object]:
        return {"url": self.url, "events": sorted(e.value for e in self.events)}

    @classmethod
    def from_json(cls, stored: Mapping[str, Any] | None) -> StatusCallback | None:
        if not stored:
            return None
        return cls(url=stored["url"], events=frozenset(WebhookEvent(e) for e in stored["events"]))


@dataclass(frozen=True)
class AllowList:
    """SESPCL_WEBHOOK_ALLOW_HOSTS: host names and networks a callback may reach even when
    they are private, loopback or link-local (a receiver on the operator's own network)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AllowList:
        hosts: set[str] = set()
        networks: list[IpNetwork] = []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IpAddress) -> bool:
        return any(address in network for network in self.networks)


class UrlRefused(ValueError):
    """A callback URL that is never called: the message says why."""


def forbidden_address(address: IpAddress) -> bool:
    """Loopback, private, link-local, multicast, unspecified or reserved space (an IPv4 address
    mapped into IPv6 counts as itself)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or not address.is_global
    )


def literal_address(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_url(url: str, allow: AllowList) -> str:
    """The host to resolve, or UrlRefused: only http(s) with a host, no credentials; a literal
    address must be public unless allowed. A name is checked again at each delivery, on every
    address it resolves to (`check_resolved`)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"is not a valid URL: {exc}") from exc
    if port == 0:
        raise UrlRefused("port 0 is not a port")
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("must use http or https")
    host = parts.hostname
    if not host:
        raise UrlRefused("must name a host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("may not carry credentials (the signature authenticates the sender)")
    address = literal_address(host)
    if address is not None and forbidden_address(address) and not allow.allows_address(address):
        raise UrlRefused(f"names {address}, a loopback, private or otherwise non-public address")
    return host


def check_resolved(host: str, addresses: Iterable[IpAddress], allow: AllowList) -> list[IpAddress]:
    """The addresses a delivery may connect to; UrlRefused when any is forbidden (a name that
    resolves to one private address among public ones is refused whole: DNS rebinding)."""
    resolved = list(addresses)
    if not resolved:
        raise UrlRefused(f"{host} resolves to no address")
    if allow.allows_host(host):
        return resolved
    for address in resolved:
        if forbidden_address(address) and not allow.allows_address(address):
            raise UrlRefused(f"{host} resolves to {address}, a non-public address")
    return resolved
