"""A carrier trunk: what an operator may set, checked, and how it becomes PJSIP realtime rows.
Pure: no I/O. Every value here ends up in Asterisk's configuration, so every value is checked."""

from __future__ import annotations

import ipaddress
import re
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.domain.phone import parse_e164

TRUNK_NAME = r"^[a-z][a-z0-9_-]{0,39}$"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_SIP_USER = r"^[A-Za-z0-9._~+-]{1,40}$"
KNOWN_CODECS = frozenset({"ulaw", "alaw", "g722", "gsm", "g726", "ilbc", "speex", "slin", "opus", "g729"})
INBOUND_CONTEXT = "sespcl-inbound"


class Transport(str, Enum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"


MAX_CHANNELS_LIMIT = 100_000
"""The most channels a trunk or a node may be given (far above any one Asterisk's capacity)."""


def check_host(value: str) -> str:
    """An IP address or a DNS name; nothing that could carry a URI parameter or a header."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        # A name's last label is never all digits (RFC 1123): 999.999.999.999 is a bad address.
        if _HOSTNAME.fullmatch(value) and not value.rstrip(".").rsplit(".", 1)[-1].isdigit():
            return value.lower()
    else:
        # An IPv6 scope id (after "%") may hold any character at all: ];, spaces, newlines.
        if not getattr(address, "scope_id", None):
            return str(address)
    raise ValueError(f"{value!r} is not an IP address (without a scope id) or a DNS name")


class TrunkSpec(BaseModel):
    """Everything `sespcl trunks add` accepts; the password never leaves this object in clear
    except into ps_auths."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=TRUNK_NAME)
    host: str
    port: int = Field(default=5060, ge=1, le=65535)
    transport: Transport = Transport.UDP
    tls_verify: bool = True
    """TLS only: verify the carrier's certificate (and name) against the nodes' CA list. Off
    only for a lab: anyone on the path could then pose as the carrier."""
    username: str | None = Field(default=None, pattern=_SIP_USER)
    password: str | None = Field(default=None, min_length=1, max_length=128, repr=False)
    from_user: str | None = Field(default=None, pattern=_SIP_USER)
    from_domain: str | None = None
    caller_id: str | None = None
    codecs: tuple[str, ...] = ("ulaw", "alaw")
    max_channels: int | None = Field(default=None, ge=1, le=MAX_CHANNELS_LIMIT)
    cps: float | None = Field(default=None, ge=0.01, le=10_000)
    is_default: bool = False

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_host(value)

    @field_validator("from_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        return None if value is None else check_host(value)

    @field_validator("caller_id")
    @classmethod
    def _caller_id(cls, value: str | None) -> str | None:
        return None if value is None else parse_e164(value)

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("codecs", mode="before")
    @classmethod
    def _codecs(cls, value: Any) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)
        codecs = tuple(dict.fromkeys(str(c).strip().lower() for c in items if str(c).strip()))
        if not codecs:
            raise ValueError("give at least one codec")
        unknown = [c for c in codecs if c not in KNOWN_CODECS]
        if unknown:
            raise ValueError(f"unknown codec {unknown[0]!r}; known: {', '.join(sorted(KNOWN_CODECS))}")
        return codecs

    @model_validator(mode="after")
    def _credentials_pair(self) -> TrunkSpec:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: give both or neither")
        if not self.tls_verify and self.transport is not Transport.TLS:
            raise ValueError("tls_verify applies to the tls transport only")
        return self

    @property
    def has_auth(self) -> bool:
        return self.username is not None and self.password is not None

    def contact_uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        uri = f"sip:{host}:{self.port}"
        if self.transport is not Transport.UDP:
            uri += f";transport={self.transport.value}"
        return uri

    def identify_match(self) -> str:
        return self.host


def transport_name(spec: TrunkSpec) -> str:
    """The node's transport (asterisk-config/pjsip.conf) the trunk's calls leave on."""
    if spec.transport is Transport.TLS and not spec.tls_verify:
        return "transport-tls-noverify"
    return f"transport-{spec.transport.value}"


def pjsip_rows(spec: TrunkSpec) -> dict[str, dict[str, Any]]:
    """The ps_* rows that make this trunk on every node (table → row)."""
    endpoint: dict[str, Any] = {
        "id": spec.name,
        "transport": transport_name(spec),
        "aors": spec.name,
        "auth": None,
        "outbound_auth": spec.name if spec.has_auth else None,
        "context": INBOUND_CONTEXT,
        "disallow": "all",
        "allow": ",".join(spec.codecs),
        "direct_media": "no",
        "rtp_symmetric": "yes",
        "force_rport": "yes",
        "rewrite_contact": "yes",
        "from_user": spec.from_user,
        "from_domain": spec.from_domain,
        "callerid": None,
        "dtmf_mode": "rfc4733",
        "trust_id_outbound": "yes",
        "send_pai": "no",
        "send_rpid": "no",
        "timers": "no",
        "allow_subscribe": "no",
        "identify_by": "ip",
    }
    aor = {
        "id": spec.name,
        "contact": spec.contact_uri(),
        "max_contacts": 1,
        # Nodes watch every trunk with OPTIONS (`pjsip show contacts`); `trunks test` asks now.
        "qualify_frequency": 60,
        "qualify_timeout": 3.0,
        "remove_existing": "yes",
    }
    rows: dict[str, dict[str, Any]] = {
        "ps_endpoints": endpoint,
        "ps_aors": aor,
        "ps_endpoint_id_ips": {"id": spec.name, "endpoint": spec.name, "match": spec.identify_match()},
    }
    if spec.has_auth:
        rows["ps_auths"] = {
            "id": spec.name,
            "auth_type": "userpass",
            "username": spec.username,
            "password": spec.password,
            "realm": None,
        }
    return rows
