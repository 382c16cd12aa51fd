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
The bare baseline for the timing is the greeting itself (the beep's own time in the stream);
for the cost, the same far ends called again into a context that only listens (Wait): the node's
CPU ms per second of answered call, both ways (its pid from the state dir, --node-name).

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
from pathlib import Path

from bench.amd_report import Outcome, call_seconds, print_report
from bench.far_end_carriers import FarEnd, add_trunks, remove_trunks, start_far_end, stop_far_ends
from tests.far_ends import DEFAULT_SEED, render_all
from tests.node_ami import ContextNode

BENCH_CONTEXT = "sespcl-bench-amd"
BARE_CONTEXT = "sespcl-bench-amd-bare"
VERDICT_DEADLINE_S = 90.0  # the longest greeting (≈25 s) + the subroutine's 45 s bound + slack


async def _one_call(
    node: ContextNode, far_end: FarEnd, args: argparse.Namespace, gate: asyncio.Semaphore
) -> Outcome:
    async with gate:
        variables = {"SESPCL_AMD": args.mode, "SESPCL_AMD_ARGS": args.amd_args}
        seen = await node.call(far_end.trunk, variables, deadline_s=VERDICT_DEADLINE_S)
    ended_at = seen.at("Hangup") if seen.hung_up.is_set() else None
    verdicts = seen.named("SespclMachine")
    if not verdicts:
        return Outcome(far_end.greeting, seen.answered_at, None, None, ended_at)
    verdict = {key: verdicts[0].get(key, "") for key in ("Status", "Cause", "End")}
    return Outcome(far_end.greeting, seen.answered_at, verdict, seen.at("SespclMachine"), ended_at)


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) process `pid` has spent; 0 when it cannot be read."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _node_pid(state: Path, name: str) -> int | None:
    try:
        return int(Path(state, f"asterisk-{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


async def _pass(
    node: ContextNode, far_ends: list[FarEnd], args: argparse.Namespace, pid: int | None
) -> tuple[list[Outcome], float]:
    """Every far end called once, at most --concurrency at once; and the node's CPU ms per
    second of answered call meanwhile."""
    gate = asyncio.Semaphore(args.concurrency)
    cpu = _cpu_s(pid)
    outcomes = list(await asyncio.gather(*(_one_call(node, far_end, args, gate) for far_end in far_ends)))
    return outcomes, (_cpu_s(pid) - cpu) * 1e3 / max(call_seconds(outcomes), 1e-9)


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
        node = ContextNode(args.node, BENCH_CONTEXT, [("Gosub", "sespcl-amd,s,1"), ("Hangup", "16")], secrets)
        # The bare baseline: the same far ends, answered and listened to for as long, no analysis.
        bare = ContextNode(args.node, BARE_CONTEXT, [("Wait", "12"), ("Hangup", "16")], secrets)
        pid = _node_pid(args.state_dir, args.node_name)
        try:
            for index, greeting in enumerate(greetings):
                far_ends.append(await start_far_end(greeting, index, args.carrier_address, work))
            add_trunks(args.database_url, far_ends, args.carrier_address)
            await node.open()
            await bare.open()
            started = time.monotonic()
            outcomes, amd_cpu = await _pass(node, far_ends, args, pid)
            print(
                f"{len(outcomes)} calls, at most {args.concurrency} at once, "
                f"in {time.monotonic() - started:.0f} s"
            )
            print_report(outcomes)
            print(f"mode {args.mode}, SESPCL_AMD_ARGS {args.amd_args!r} (empty fields: the node's amd.conf)")
            if pid is not None:
                _, bare_cpu = await _pass(bare, far_ends, args, pid)
                print(
                    f"Asterisk CPU per second of answered call: {amd_cpu:.2f} ms with sespcl-amd, "
                    f"{bare_cpu:.2f} ms bare (the same far ends, listened to without analysis)"
                )
        finally:
            node.close()
            bare.close()
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
    parser.add_argument(
        "--node-name", default="n1", help="the node's name: its pid is read from the state dir (CPU figures)"
    )
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
        "--amd-args", default=":::", help="SESPCL_AMD_ARGS: initial_silence:greeting:after_silence:total ms"
    )
    args = parser.parse_args()
    if not args.database_url:
        parser.error("--database-url (or DATABASE_URL) is needed: the far ends become trunks there")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
