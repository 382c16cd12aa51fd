"""A node driven over AMI into a dialplan context added at run time (tests, bench/amd.py): what
the node itself does with a call, whatever a dispatcher would make of it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from panoramisk import Manager

from orchestrator.asterisk.ami import header_value


@dataclass
class Seen:
    """One call's events on the node, by name, with when they came."""

    events: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)

    def named(self, name: str) -> list[dict[str, str]]:
        return [fields for _, n, fields in self.events if n == name]

    def at(self, name: str) -> float:
        return next(t for t, n, _ in self.events if n == name)

    @property
    def answered_at(self) -> float | None:
        """When the node said the channel was Up (monotonic), None if never."""
        return next(
            (t for t, n, f in self.events if n == "Newstate" and f.get("ChannelStateDesc") == "Up"), None
        )


class ContextNode:
    """A node driven over AMI into a context added at run time (over the administrative user,
    which may change the dialplan: `steps` are its extension s's applications and their data),
    each call's events gathered by its channel id. `secrets`: the stack's secrets.env, for the
    AMI users sespcl and sespcl-admin."""

    def __init__(
        self, address: str, context: str, steps: list[tuple[str, str]], secrets: Mapping[str, str]
    ) -> None:
        self.context, self.steps = context, steps
        self.calls: dict[str, Seen] = {}
        self.ami = Manager(
            host=address, port=5038, username="sespcl", secret=secrets["SESPCL_AMI_SECRET"], ping_delay=3600
        )
        self.admin = Manager(
            host=address,
            port=5038,
            username="sespcl-admin",
            secret=secrets["SESPCL_AMI_ADMIN_SECRET"],
            ping_delay=3600,
        )
        self.ami.register_event("*", self._on_event)

    async def open(self) -> None:
        await self.ami.connect()
        await self.admin.connect()
        for priority, (app, data) in enumerate(self.steps, start=1):
            reply = await self.admin.send_action(
                {
                    "Action": "DialplanExtensionAdd",
                    "Context": self.context,
                    "Extension": "s",
                    "Priority": str(priority),
                    "Application": app,
                    "ApplicationData": data,
                    "Replace": "yes",
                }
            )
            if reply.get("Response") != "Success":
                raise RuntimeError(f"the node refused to add {self.context}: {dict(reply)}")

    def close(self) -> None:
        self.ami.close()
        self.admin.close()

    def _on_event(self, _: Manager, event: Any) -> None:
        seen = self.calls.get(event.get("Uniqueid", ""))
        if seen is None:
            return
        seen.events.append((time.monotonic(), event.get("UserEvent") or event.get("Event"), dict(event)))
        if event.get("Event") == "Newstate" and event.get("ChannelStateDesc") == "Up":
            seen.answered.set()
        if event.get("Event") == "Hangup":
            seen.hung_up.set()

    async def call(
        self,
        trunk: str,
        variables: dict[str, str] | None = None,
        *,
        hang_up_after_s: float | None = None,
        deadline_s: float = 90.0,
    ) -> Seen:
        """Originate to `trunk` into the context and gather the call's events until it hangs up,
        or `deadline_s` passes (then `hung_up` is not set)."""
        attempt = str(uuid.uuid4())
        seen = self.calls[attempt] = Seen()
        variables = {"CALLID": attempt, **(variables or {})}
        await self.ami.send_action(
            {
                "Action": "Originate",
                "ChannelId": attempt,
                "Channel": f"PJSIP/+14152{uuid.uuid4().int % 900000 + 100000:06d}@{trunk}",
                "Context": self.context,
                "Exten": "s",
                "Priority": "1",
                "Async": "true",
                "Timeout": "10000",
                # Originate splits a Variable header at bare commas (SESPCL_AMD_ARGS has some)
                "Variable": [
                    f"{k}={header_value(v).replace(',', chr(92) + ',')}" for k, v in variables.items()
                ],
            }
        )
        if hang_up_after_s is not None:
            await self._hang_up_after_answer(seen, hang_up_after_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seen.hung_up.wait(), deadline_s)
        return seen

    async def _hang_up_after_answer(self, seen: Seen, after_s: float) -> None:
        await asyncio.wait_for(seen.answered.wait(), 20)
        await asyncio.sleep(after_s)  # when the far end hangs up is the scenario, not a synchronisation
        channel = seen.named("Newstate")[-1]["Channel"]
        await self.ami.send_action({"Action": "Hangup", "Channel": channel, "Cause": "16"})
