"""One SIP OPTIONS over UDP, and the status line of the answer (scripts/compose-test.sh: a
node's published SIP port reaches Asterisk through the container network's NAT).

    python -m tests.sip_probe HOST PORT [--timeout S]

Prints the answer's status line (any status: an unknown caller gets 401, which still shows
Asterisk answered) and exits 0, or exits 1 when nothing answers in time.
"""

from __future__ import annotations

import argparse
import socket
import sys
import uuid


def options_request(host: str, port: int, local_host: str, local_port: int, call_id: str) -> bytes:
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {local_host}:{local_port};rport;branch=z9hG4bK{call_id}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{local_host}>;tag={call_id[:10]}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def probe(host: str, port: int, timeout_s: float) -> str | None:
    """The status line of the answer to one OPTIONS, or None when nothing answered."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect((host, port))
        local_host, local_port = sock.getsockname()
        sock.send(options_request(host, port, local_host, local_port, uuid.uuid4().hex))
        try:
            answer = sock.recv(65535)
        except OSError:  # timeout, or ICMP port unreachable
            return None
    return answer.decode("utf-8", "replace").split("\r\n", 1)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    status = probe(args.host, args.port, args.timeout)
    if status is None or not status.startswith("SIP/2.0 "):
        print(f"no SIP answer from {args.host}:{args.port}/udp", file=sys.stderr)
        return 1
    print(status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
