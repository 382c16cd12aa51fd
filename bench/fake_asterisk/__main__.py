"""`python -m bench.fake_asterisk --node f1=127.0.70.1 --node f2=127.0.70.2 ...`: simulated nodes in
one process (uvloop), each with its AMI and its ARI on its own loopback address, until SIGTERM.

The AMI users and the ARI password are the stack's: SESPCL_AMI_SECRET (user sespcl),
SESPCL_AMI_ADMIN_SECRET (sespcl-admin), SESPCL_ARI_PASSWORD (ARI user sespcl). Prints one line,
`ready <names>`, once every node listens."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from aiohttp import web

from bench.fake_asterisk.ami_server import AmiUser, serve_ami
from bench.fake_asterisk.ari_server import serve_ari
from bench.fake_asterisk.calls import Behaviour
from bench.fake_asterisk.node import FakeNode
from orchestrator.loop import asyncio_run


def _node(spec: str) -> tuple[str, str]:
    name, sep, address = spec.partition("=")
    if not sep or not name or not address:
        raise argparse.ArgumentTypeError(f"--node takes NAME=ADDRESS, not {spec!r}")
    return name, address


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--node", type=_node, action="append", required=True, metavar="NAME=ADDRESS")
    parser.add_argument("--ami-port", type=int, default=5038)
    parser.add_argument("--ari-port", type=int, default=8088)
    parser.add_argument("--capacity", type=int, default=500, help="most channels live at once, per node")
    parser.add_argument(
        "--answer-delay", type=float, default=0.5, help="seconds the far end rings before answering"
    )
    parser.add_argument("--call-seconds", type=float, default=2.0, help="seconds an answered call plays")
    return parser.parse_args()


async def _serve(args: argparse.Namespace) -> None:
    behaviour = Behaviour(capacity=args.capacity, answer_delay_s=args.answer_delay, call_s=args.call_seconds)
    users = {"sespcl": AmiUser.dispatcher(os.environ["SESPCL_AMI_SECRET"])}
    if os.environ.get("SESPCL_AMI_ADMIN_SECRET"):
        users["sespcl-admin"] = AmiUser.admin(os.environ["SESPCL_AMI_ADMIN_SECRET"])
    ari_password = os.environ.get("SESPCL_ARI_PASSWORD", "")
    servers: list[asyncio.Server] = []
    runners: list[web.AppRunner] = []
    for name, address in args.node:
        node = FakeNode(name, behaviour)
        servers.append(await serve_ami(node, address, args.ami_port, users))
        if ari_password:
            runners.append(await serve_ari(node, address, args.ari_port, "sespcl", ari_password))
    print("ready", " ".join(name for name, _ in args.node), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()
    for runner in runners:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio_run(_serve(_arguments()))
