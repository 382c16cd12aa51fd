"""`make bench-amd`: how well the node's answering-machine detection ([sespcl-amd] in
asterisk-config/extensions.conf, AMD() tuned by amd.conf) tells people from voicemail boxes.

Renders --humans short answers ("Hello?", "Yes?", "Hello, this is Maria" … then silence) and
--machines voicemail greetings of 5-20 s (a quarter with no beep: silence only), in varied
espeak-ng voices, speeds and pitches (tests/far_ends.py, fixed seed), starts one SIPp far end per
greeting (sipp/uas-human.xml, uas-voicemail.xml) as a trunk of the node, and places every call
through AMI at once, at most --concurrency live: each goes into a context this benchmark adds to
the node at run time (over the administrative AMI user), which Gosubs sespcl-amd with
SESPCL_AMD=end, as [sespcl-outbound] does. The verdict is the SespclMachine user event.

Prints the confusion matrix (rows: the truth; columns: the call's answered_by, as
orchestrator/domain/interaction.py maps the event), the share right each way (target: 90 %
or more), answer → verdict p50/p95, and for machines how their greeting's end was found (beep
or silence) and how long after the beep (or after the last word) the message would start.
The bare baseline for the timing is the greeting itself: the beep's own time in the stream.

By default it runs against the stack's node n1 (`make up`; SESPCL_STATE_DIR's secrets.env gives
the AMI secrets, DATABASE_URL the database whose trunks the node reads); --node, --state-dir,
--database-url and --carrier-address point it at another node, e.g. a private one:

    SESPCL_ASTERISK_DB_NAME=sespcl_x SESPCL_STATE_DIR=/tmp/x \\
        scripts/asterisk-node.sh start x1 127.0.40.1 30000 30999
    python -m bench.amd --node 127.0.40.1 --state-dir /tmp/x \\
        --database-url postgresql://postgres@localhost/sespcl_x --carrier-address 127.0.41.1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panoramisk import Manager

from bench.amd_report import Outcome, print_report
from bench.far_end_carriers import FarEnd, add_trunks, remove_trunks, start_far_end, stop_far_ends
from orchestrator.asterisk.ami import header_value
from tests.far_ends import DEFAULT_SEED, render_all

BENCH_CONTEXT = "sespcl-bench-amd"
ANSWER_TIMEOUT_MS = 15_000
VERDICT_DEADLINE_S = 90.0  # the longest greeting (≈25 s) + the subroutine's 45 s bound + slack


@dataclass
class LiveCall:
    far_end: FarEnd
    sent_at: float
    answered_at: float | None = None
    verdict: dict[str, str] | None = None
    verdict_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Node:
    """The node's AMI: Originate and the channel events as the orchestrator's user sees them;
    the bench's own dialplan context added over the administrative user."""

    def __init__(self, address: str, secret: str, admin_secret: str) -> None:
        self._calls: dict[str, LiveCall] = {}
        self._ami = Manager(host=address, port=5038, username="sespcl", secret=secret, ping_delay=0)
        self._admin = Manager(
            host=address, port=5038, username="sespcl-admin", secret=admin_secret, ping_delay=0
        )
        self._ami.register_event("Newstate", self._on_state)
        self._ami.register_event("UserEvent", self._on_user_event)
        self._ami.register_event("Hangup", self._on_hangup)

    async def connect(self) -> None:
        await self._ami.connect()
        await self._admin.connect()
        steps = ("Gosub", "sespcl-amd,s,1"), ("Hangup", "16")
        for priority, (application, data) in enumerate(steps, start=1):
            reply = await self._admin.send_action(
                {
                    "Action": "DialplanExtensionAdd",
                    "Context": BENCH_CONTEXT,
                    "Extension": "s",
                    "Priority": str(priority),
                    "Application": application,
                    "ApplicationData": data,
                    "Replace": "yes",
                }
            )
            if reply.get("Response") != "Success":
                raise SystemExit(f"could not add the bench's dialplan context: {dict(reply)}")

    def close(self) -> None:
        self._ami.close()
        self._admin.close()

    async def originate(self, far_end: FarEnd, index: int, mode: str, amd_args: str) -> LiveCall:
        call_id = str(uuid.uuid4())
        call = LiveCall(far_end, time.monotonic())
        self._calls[call_id] = call
        variables = {"CALLID": call_id, "SESPCL_AMD": mode, "SESPCL_AMD_ARGS": amd_args}
        reply = await self._ami.send_action(
            {
                "Action": "Originate",
                "ChannelId": call_id,
                "Channel": header_value(
                    f"PJSIP/+1415{200 + index // 10000:03d}{index % 10000:04d}@{far_end.trunk}"
                ),
                "Context": BENCH_CONTEXT,
                "Exten": "s",
                "Priority": "1",
                "Async": "true",
                "Timeout": str(ANSWER_TIMEOUT_MS),
                "Variable": [_ami_variable(k, v) for k, v in variables.items()],
            }
        )
        replies = reply if isinstance(reply, list) else [reply]
        if replies[0].get("Response") != "Success":
            call.done.set()
        return call

    def _on_state(self, _: Manager, event: Any) -> None:
        call = self._calls.get(event.get("Uniqueid", ""))
        if call is not None and call.answered_at is None and event.get("ChannelStateDesc") == "Up":
            call.answered_at = time.monotonic()

    def _on_user_event(self, _: Manager, event: Any) -> None:
        call = self._calls.get(event.get("Uniqueid", ""))
        if call is not None and event.get("UserEvent") == "SespclMachine" and call.verdict is None:
            call.verdict_at = time.monotonic()
            call.verdict = {k: str(event.get(k, "")) for k in ("Status", "Cause", "End")}

    def _on_hangup(self, _: Manager, event: Any) -> None:
        call = self._calls.get(event.get("Uniqueid", ""))
        if call is not None:
            call.done.set()


def _ami_variable(name: str, value: str) -> str:
    """An Originate `Variable` header: Asterisk splits each at commas (several variables in one
    header) unless escaped, and SESPCL_AMD_ARGS is comma-separated."""
    return f"{name}={header_value(value).replace(',', chr(92) + ',')}"


async def _one_call(
    node: Node, far_end: FarEnd, index: int, args: argparse.Namespace, gate: asyncio.Semaphore
) -> Outcome:
    async with gate:
        call = await node.originate(far_end, index, args.mode, args.amd_args)
        try:
            await asyncio.wait_for(call.done.wait(), VERDICT_DEADLINE_S)
        except TimeoutError:
            pass
    return Outcome(far_end.greeting, call.answered_at, call.verdict, call.verdict_at)


def _secrets(state: Path) -> dict[str, str]:
    lines = Path(state, "secrets.env").read_text().split()
    return dict(line.split("=", 1) for line in lines if "=" in line)


async def run(args: argparse.Namespace) -> None:
    secrets = _secrets(args.state_dir)
    with tempfile.TemporaryDirectory(prefix="bench-amd-", dir=args.state_dir) as tmp:
        work = Path(tmp)
        started = time.monotonic()
        greetings = render_all(work / "audio", args.humans, args.machines, args.seed)
        print(f"rendered {len(greetings)} greetings in {time.monotonic() - started:.1f} s", flush=True)
        far_ends: list[FarEnd] = []
        node = Node(args.node, secrets["SESPCL_AMI_SECRET"], secrets["SESPCL_AMI_ADMIN_SECRET"])
        try:
            for index, greeting in enumerate(greetings):
                far_ends.append(await start_far_end(greeting, index, args.carrier_address, work))
            add_trunks(args.database_url, far_ends, args.carrier_address)
            await node.connect()
            gate = asyncio.Semaphore(args.concurrency)
            started = time.monotonic()
            outcomes = await asyncio.gather(
                *(_one_call(node, far_end, i, args, gate) for i, far_end in enumerate(far_ends))
            )
            print(
                f"{len(outcomes)} calls, at most {args.concurrency} at once, "
                f"in {time.monotonic() - started:.0f} s"
            )
            print_report(outcomes)
            print(f"mode {args.mode}, SESPCL_AMD_ARGS {args.amd_args!r} (empty fields: the node's amd.conf)")
        finally:
            node.close()
            stop_far_ends(far_ends)
            remove_trunks(args.database_url, far_ends)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    env = os.environ
    state = env.get("SESPCL_STATE_DIR", str(Path(__file__).resolve().parents[1] / ".stack"))
    parser.add_argument("--humans", type=int, default=30, help="people answering (default 30)")
    parser.add_argument("--machines", type=int, default=30, help="voicemail boxes (default 30)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the greetings' random seed")
    parser.add_argument("--concurrency", type=int, default=20, help="calls live at once (default 20)")
    parser.add_argument("--node", default="127.0.10.1", help="the node's AMI address (default n1's)")
    parser.add_argument("--state-dir", type=Path, default=Path(state), help="holds secrets.env (AMI secrets)")
    parser.add_argument(
        "--database-url", default=env.get("DATABASE_URL"), help="the database of the node's trunks"
    )
    parser.add_argument("--carrier-address", default="127.0.20.50", help="loopback address for the far ends")
    parser.add_argument(
        "--mode",
        choices=("end", "start"),
        default="end",
        help="SESPCL_AMD: end (detect_message_end) or start",
    )
    parser.add_argument(
        "--amd-args", default=",,,", help="SESPCL_AMD_ARGS: initial_silence,greeting,after_silence,total ms"
    )
    args = parser.parse_args()
    if not args.database_url:
        parser.error("--database-url (or DATABASE_URL) is needed: the far ends become trunks there")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
