"""Calls through a compose deployment's published API, followed to their final statuses
(scripts/compose-test.sh, `make compose-test`).

    python -m tests.compose_calls --api-url URL --completed N --busy M [--busy-trunk T] [--deadline S]

Places N calls on the default trunk (a SIPp far end that answers) and M on the busy trunk (one
that answers 486), as a client would: valid E.164 numbers, a caller id, a spoken notice, an
idempotency key each. Polls every call until it is final or the deadline passes, prints a line
per call (status, node, duration) and exits 1 unless every call ended as its trunk says.
SESPCL_API_KEY is the bearer key.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from dataclasses import dataclass

import phonenumbers

from orchestrator.client import ApiClient
from orchestrator.domain.call import CallStatus

CALLER_ID = "+12025550143"
POLL_S = 0.5
FINAL = frozenset(status.value for status in CallStatus if status.is_final)


@dataclass(frozen=True)
class PlacedCall:
    id: str
    to: str
    expected: str


def callee(rng: random.Random) -> str:
    """A valid North American number (an exchange starting 2-9, as phonenumbers requires)."""
    number = f"+1415{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
    if not phonenumbers.is_valid_number(phonenumbers.parse(number)):
        raise AssertionError(f"generated an invalid number {number}")
    return number


def notice(to: str) -> str:
    return (
        f"This is a service notice for {to[-4:]}. Power on your street was restored at 4:15 PM. "
        "No action is needed. Thank you for your patience."
    )


def place(client: ApiClient, rng: random.Random, trunk: str | None, expected: str) -> PlacedCall:
    to = callee(rng)
    payload: dict[str, object] = {"to": to, "from": CALLER_ID, "tts": {"text": notice(to)}}
    if trunk is not None:
        payload["trunk"] = trunk
    call = client.submit(payload, idempotency_key=f"compose-test-{uuid.uuid4()}")
    return PlacedCall(id=str(call["id"]), to=to, expected=expected)


def follow(client: ApiClient, calls: list[PlacedCall], deadline_s: float) -> dict[str, dict[str, object]]:
    """Each call's last body, polled until all are final or the deadline passes."""
    last: dict[str, dict[str, object]] = {}
    ends_at = time.monotonic() + deadline_s
    pending = {call.id for call in calls}
    while pending and time.monotonic() < ends_at:
        for call_id in sorted(pending):
            last[call_id] = client.get(call_id)
            if last[call_id]["status"] in FINAL:
                pending.discard(call_id)
        if pending:
            time.sleep(POLL_S)
    return last


def report(calls: list[PlacedCall], last: dict[str, dict[str, object]]) -> bool:
    ok = True
    for call in calls:
        body = last.get(call.id, {})
        attempts = body.get("attempts")
        nodes = ",".join(str(a["node"]) for a in attempts) if isinstance(attempts, list) and attempts else "-"
        status = body.get("status", "unknown")
        mark = "ok" if status == call.expected else f"FAILED (expected {call.expected})"
        print(f"  {call.id} to {call.to}: {status} on {nodes}, {body.get('duration_s')} s  {mark}")
        ok = ok and status == call.expected
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--completed", type=int, default=3, help="calls on the default trunk")
    parser.add_argument("--busy", type=int, default=1, help="calls on the busy trunk")
    parser.add_argument("--busy-trunk", default="busy")
    parser.add_argument("--deadline", type=float, default=90.0, help="seconds for every call to end")
    args = parser.parse_args(argv)

    rng = random.Random()
    client = ApiClient(base_url=args.api_url)
    try:
        calls = [place(client, rng, None, CallStatus.COMPLETED.value) for _ in range(args.completed)]
        calls += [place(client, rng, args.busy_trunk, CallStatus.BUSY.value) for _ in range(args.busy)]
        started = time.monotonic()
        last = follow(client, calls, args.deadline)
        ok = report(calls, last)
    finally:
        client.close()
    print(
        f"{len(calls)} calls, {'all' if ok else 'NOT all'} as expected, in {time.monotonic() - started:.1f} s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
