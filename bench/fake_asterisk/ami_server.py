"""The simulated node's AMI: Asterisk's text protocol over TCP (banner, `Key: Value` lines, a blank
line after each message), with the users of asterisk-config/manager.conf and their rights: the
dispatcher's user originates, hangs up, lists channels and reads call events; the CLI's
administrative user may not dial and reads none of them.

Actions answered: Login, Logoff, Ping, Originate (Async), Hangup, CoreShowChannels, CoreSettings,
CoreStatus, Command ("core show uptime"), SorceryMemoryCacheExpireObject (`sespcl trunks add`
tells every node; nothing is cached here, so it answers as Asterisk does for an object it has not
cached). Any other is refused as Asterisk refuses an unknown action."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from bench.fake_asterisk import ami_frames
from bench.fake_asterisk.ami_frames import response
from bench.fake_asterisk.calls import Dialed, Step, dialed_endpoint
from bench.fake_asterisk.node import Channel, FakeNode

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
VERSION = "22.0.0-simulated"
DEFAULT_RING_TIMEOUT_MS = 30000
LIST_COMMANDS = "Use Action: ListCommands to show available commands."


@dataclass(frozen=True)
class AmiUser:
    secret: str
    write: frozenset[str]
    read: frozenset[str]

    @classmethod
    def dispatcher(cls, secret: str) -> AmiUser:
        writes, reads = frozenset({"originate", "call", "reporting"}), frozenset({"call", "user", "system"})
        return cls(secret, writes, reads)

    @classmethod
    def admin(cls, secret: str) -> AmiUser:
        return cls(secret, frozenset({"system", "command", "reporting"}), frozenset({"system", "reporting"}))

    @property
    def reads_calls(self) -> bool:
        return "call" in self.read


NEEDS: Mapping[str, frozenset[str]] = {
    "originate": frozenset({"originate"}),
    "hangup": frozenset({"call"}),
    "coreshowchannels": frozenset({"reporting"}),
    "coresettings": frozenset({"system", "reporting"}),
    "corestatus": frozenset({"system", "reporting"}),
    "command": frozenset({"command"}),
    "sorcerymemorycacheexpireobject": frozenset({"system"}),
}
"""The write classes that allow an action (any one of them); an action not here needs none."""

Action = dict[str, list[str]]


def parse_action(block: str) -> Action:
    """An action's headers, names lowercased (AMI's are case-insensitive); a header given more
    than once (Variable) keeps every value."""
    action: Action = {}
    for line in block.split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            action.setdefault(key.strip().lower(), []).append(value.strip())
    return action


def _one(action: Action, key: str, default: str = "") -> str:
    values = action.get(key)
    return values[0] if values else default


def _variables(action: Action) -> dict[str, str]:
    """Originate's Variable headers: each "K=V", several per header split at bare commas."""
    found: dict[str, str] = {}
    for header in action.get("variable", []):
        for assignment in header.replace("\\,", "\x00").split(","):
            key, _, value = assignment.partition("=")
            found[key.strip()] = value.replace("\x00", ",")
    return found


def _caller(caller_id: str) -> str:
    """The number of a CallerID header ("+14155550100" or "Name <+14155550100>")."""
    if "<" in caller_id:
        caller_id = caller_id.partition("<")[2].partition(">")[0]
    return caller_id.strip() or ami_frames.UNKNOWN


def dialed_of(action: Action) -> Dialed | None:
    """What an Originate asks for; None for a channel that is not PJSIP/<number>@<trunk>."""
    endpoint = dialed_endpoint(_one(action, "channel"))
    if endpoint is None:
        return None
    number, trunk = endpoint
    variables = _variables(action)
    try:
        ring_s = int(_one(action, "timeout", str(DEFAULT_RING_TIMEOUT_MS))) / 1000
        max_call_s = float(variables.get("SESPCL_MAX_CALL_S", "0") or 0)
    except ValueError:
        return None
    return Dialed(
        uniqueid=_one(action, "channelid") or str(uuid.uuid4()),
        trunk=trunk,
        number=number,
        caller=_caller(_one(action, "callerid")),
        call_id=variables.get("SESPCL_CALL_ID", ""),
        ring_timeout_s=ring_s,
        max_call_s=max_call_s,
        action_id=_one(action, "actionid"),
        context=_one(action, "context", "sespcl-outbound"),
    )


class AmiEvents:
    """The node's listener for AMI: each step's frames built once, and what a turn of the loop
    told written in one piece to every session whose user reads call events (as Asterisk's
    manager thread writes what it has queued: one write, not one per frame)."""

    def __init__(self, node: FakeNode) -> None:
        self._node = node
        self.sessions: set[asyncio.Transport] = set()
        self._pending: list[bytes] = []
        node.listeners.append(self)

    def tell(self, channel: Channel, step: Step) -> None:
        if self.sessions:
            self._queue(ami_frames.step_frames(channel, step, self._node.name))

    def refused(self, dialed: Dialed) -> None:
        if self.sessions:
            self._queue([ami_frames.refused_frame(dialed, self._node.name)])

    def _queue(self, frames: list[bytes]) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.extend(frames)

    def _flush(self) -> None:
        data, self._pending = b"".join(self._pending), []
        for transport in list(self.sessions):
            if not transport.is_closing():
                transport.write(data)


class AmiSession(asyncio.Protocol):
    def __init__(self, node: FakeNode, events: AmiEvents, users: Mapping[str, AmiUser]) -> None:
        self._node = node
        self._events = events
        self._users = users
        self._user: AmiUser | None = None
        self._transport: asyncio.Transport | None = None
        self._buffer = ""
        self._answers: dict[str, Callable[[Action, str], None]] = {
            "ping": self._ping,
            "originate": self._originate,
            "hangup": self._hangup,
            "coreshowchannels": self._channels,
            "coresettings": self._settings,
            "corestatus": self._status,
            "command": self._command,
            "sorcerymemorycacheexpireobject": self._expire,
            "logoff": self._logoff,
        }

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no asyncio.Transport subclass
        self._transport.write(BANNER)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._events.sessions.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data.decode("utf-8", "replace")
        *blocks, self._buffer = self._buffer.split("\r\n\r\n")
        for block in blocks:
            if block.strip():
                self._act(parse_action(block))

    def _send(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _act(self, action: Action) -> None:
        name = _one(action, "action").lower()
        ident = _one(action, "actionid")
        if name == "login":
            self._login(action, ident)
            return
        answer = self._answers.get(name)
        if self._user is None and name != "logoff":
            self._send(response(ident, ("Message", "Permission denied"), result="Error"))
        elif answer is None:
            message = f"Invalid/unknown command: {_one(action, 'action')}. {LIST_COMMANDS}"
            self._send(response(ident, ("Message", message), result="Error"))
        elif self._user is not None and name in NEEDS and not (NEEDS[name] & self._user.write):
            self._send(response(ident, ("Message", "Permission denied"), result="Error"))
        else:
            answer(action, ident)

    def _login(self, action: Action, ident: str) -> None:
        user = self._users.get(_one(action, "username"))
        if user is None or user.secret != _one(action, "secret"):
            self._send(response(ident, ("Message", "Authentication failed"), result="Error"))
            return
        self._user = user
        self._send(response(ident, ("Message", "Authentication accepted")))
        if "system" in user.read:
            self._send(ami_frames.fully_booted(self._node.uptime_s()))
        if user.reads_calls and self._transport is not None:
            self._events.sessions.add(self._transport)

    def _ping(self, action: Action, ident: str) -> None:
        self._send(response(ident, ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")))

    def _originate(self, action: Action, ident: str) -> None:
        dialed = dialed_of(action)
        if dialed is None or _one(action, "async").lower() not in ("true", "yes", "1"):
            self._send(response(ident, ("Message", "Originate failed"), result="Error"))
            return
        self._send(response(ident, ("Message", "Originate successfully queued")))
        self._node.dial(dialed)

    def _hangup(self, action: Action, ident: str) -> None:
        channel = _one(action, "channel")
        try:
            cause = int(_one(action, "cause", "16") or 16)
        except ValueError:
            cause = 16
        if self._node.find(channel) is None:
            self._send(response(ident, ("Message", "No such channel"), result="Error"))
            return
        self._send(response(ident, ("Message", "Channel Hungup")))
        self._node.hang_up(channel, cause)

    def _channels(self, action: Action, ident: str) -> None:
        now = asyncio.get_running_loop().time()
        listed = [ami_frames.channel_listing(c, ident, now) for c in self._node.channels.values()]
        self._send(response(ident, ("EventList", "start"), ("Message", "Channels will follow")))
        complete = [
            ("Event", "CoreShowChannelsComplete"),
            ("ActionID", ident),
            ("EventList", "Complete"),
            ("ListItems", len(listed)),
        ]
        self._send(b"".join(listed) + ami_frames.frame(complete))

    def _settings(self, action: Action, ident: str) -> None:
        self._send(
            response(
                ident,
                ("AMIversion", BANNER.decode().strip().partition("/")[2]),
                ("AsteriskVersion", VERSION),
                ("SystemName", self._node.name),
                ("CoreMaxCalls", self._node.behaviour.capacity),
            )
        )

    def _status(self, action: Action, ident: str) -> None:
        started = self._node.started_at
        date, clock = started.strftime("%Y-%m-%d"), started.strftime("%H:%M:%S")
        self._send(
            response(
                ident,
                ("CoreStartupDate", date),
                ("CoreStartupTime", clock),
                ("CoreReloadDate", date),
                ("CoreReloadTime", clock),
                ("CoreCurrentCalls", len(self._node.channels)),
            )
        )

    def _command(self, action: Action, ident: str) -> None:
        command = _one(action, "command")
        if command.strip() != "core show uptime":
            unknown = ("Output", f"No such command '{command}'")
            self._send(response(ident, ("Message", "Command output follows"), unknown, result="Error"))
            return
        output = f"System uptime: {self._node.uptime_s()} seconds"
        self._send(response(ident, ("Message", "Command output follows"), ("Output", output)))

    def _expire(self, action: Action, ident: str) -> None:
        message = (
            f"The provided object '{_one(action, 'object')}' could not be expired from the cache "
            f"'{_one(action, 'cache')}'"
        )
        self._send(response(ident, ("Message", message), result="Error"))

    def _logoff(self, action: Action, ident: str) -> None:
        self._send(response(ident, ("Message", "Thanks for all the fish."), result="Goodbye"))
        if self._transport is not None:
            self._transport.close()


async def serve_ami(node: FakeNode, host: str, port: int, users: Mapping[str, AmiUser]) -> asyncio.Server:
    events = AmiEvents(node)
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: AmiSession(node, events, users), host, port)
