"""API keys: their scopes, their form, and what a request made with one may do. Pure: no I/O.

A key is `sespcl_<id>_<secret>`: the id (16 hex digits, not secret) finds its row, the
secret (256 random bits) proves it. Only SHA-256 of the whole key is stored: for a random
secret of that size a plain hash is enough (a slow password hash guards guessable secrets),
and it is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from enum import Enum

from orchestrator.domain.destinations import DestinationPolicy

BOOTSTRAP = "bootstrap"
"""The name SESPCL_API_KEY acts under (created_by of what it creates)."""
KEY_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_KEY = re.compile(r"^sespcl_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


class Scope(str, Enum):
    CALLS_READ = "calls:read"
    CALLS_WRITE = "calls:write"
    CAMPAIGNS_READ = "campaigns:read"
    CAMPAIGNS_WRITE = "campaigns:write"
    METRICS_READ = "metrics:read"
    ADMIN = "admin"
    """Every other scope."""


def parse_scopes(text: str) -> frozenset[Scope]:
    """`calls:read,calls:write` → scopes; ValueError names an unknown one."""
    known = {s.value: s for s in Scope}
    found = set()
    for raw in text.split(","):
        name = raw.strip()
        if name not in known:
            raise ValueError(f"unknown scope {name!r}; the scopes are {', '.join(known)}")
        found.add(known[name])
    return frozenset(found)


def check_key_name(name: str) -> str:
    if not KEY_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r}: lowercase letters, digits, '_' and '-', starting with a letter, at most 40"
        )
    if name == BOOTSTRAP:
        raise ValueError(f"{name!r} is the name of SESPCL_API_KEY")
    return name


@dataclass(frozen=True)
class NewKey:
    id: str
    key: str
    """Shown once, to the one who made it; never stored."""
    digest: bytes


def new_key() -> NewKey:
    key_id = secrets.token_hex(8)
    key = f"sespcl_{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(key_id, key, key_digest(key))


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_id(token: str) -> str | None:
    """The lookup id of a token shaped like a key, else None."""
    found = _KEY.fullmatch(token)
    return found.group(1) if found else None


def key_matches(token: str, digest: bytes) -> bool:
    return hmac.compare_digest(key_digest(token), digest)


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: a key's name and what it may do."""

    name: str
    scopes: frozenset[Scope]
    rate_per_s: float | None
    """Requests a second across every API process; None: not limited."""
    destinations: DestinationPolicy = field(default_factory=DestinationPolicy)

    def may(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes
