"""What the dispatcher asks of a node, independent of AMI or ARI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

OUTBOUND_CONTEXT = "sespcl-outbound"
"""The dialplan context in asterisk-config/extensions.conf that plays the prompt."""


@dataclass(frozen=True)
class OriginateRequest:
    attempt_id: str
    """Becomes the channel's Uniqueid, so every event of the channel names its attempt."""
    to: str
    trunk: str
    caller_id: str | None
    audio_path: str
    call_id: str
    timeout_ms: int
    max_call_s: int
    """Longest the call may last once answered: the node hangs it up then (0: no limit)."""
    interaction_variables: Mapping[str, str] = field(default_factory=dict)
    """A two-way call's (domain/interaction.py `channel_variables`)."""

    @property
    def channel(self) -> str:
        return f"PJSIP/{self.to}@{self.trunk}"

    @property
    def variables(self) -> dict[str, str]:
        return {
            **self.interaction_variables,
            **audio_variables(self.audio_path),
            "SESPCL_CALL_ID": self.call_id,
            "SESPCL_MAX_CALL_S": str(self.max_call_s),
        }


AUDIO_VARIABLE_BYTES = 900
"""An AMI line holds at most 1024 bytes: a message from segments (its pieces' paths joined by
"&") is cut at a piece's edge into SESPCL_AUDIO, SESPCL_AUDIO_2, ... of at most this many."""
AUDIO_VARIABLES = 8
"""The dialplan (sespcl-audio-list) reads up to SESPCL_AUDIO_8."""


def audio_variables(audio_path: str) -> dict[str, str]:
    parts: list[str] = []
    for piece in audio_path.split("&"):
        if parts and len(parts[-1]) + 1 + len(piece) <= AUDIO_VARIABLE_BYTES:
            parts[-1] = f"{parts[-1]}&{piece}"
        else:
            parts.append(piece)
    if len(parts) > AUDIO_VARIABLES:
        raise ValueError(f"the message's audio paths need {len(parts)} variables; at most {AUDIO_VARIABLES}")
    return {"SESPCL_AUDIO" if i == 0 else f"SESPCL_AUDIO_{i + 1}": part for i, part in enumerate(parts)}


class NodeError(Exception):
    """A node could not do what it was asked. The errors of the `DialNode` port: each driver
    maps its libraries' errors to these at its boundary (asterisk/errors.py), so a service
    catches these and nothing broader around a driver call."""


class NodeNotConnected(NodeError):
    """Raised by a driver before anything was sent: the node's link is down. An Originate
    refused so was never dialed, and goes back to the queue rather than count as failed."""


class NodeTimeout(NodeError):
    """No reply within the bound. The request may have taken effect (an Originate may ring)."""


class NodeLinkFailed(NodeError):
    """The link failed while the request was out. It may have taken effect, as a timeout."""


class NodeRefused(NodeError):
    """The node answered, and refused the request."""


@dataclass(frozen=True)
class OriginateOutcome:
    success: bool
    reason: int
    message: str = ""
