"""The SIP probe compose-test aims at a node's published port: one OPTIONS, the answer's status
line, or None when nothing answers."""

from __future__ import annotations

import socket
import threading

from tests.sip_probe import options_request, probe


def _answer_once(sock: socket.socket, status: bytes, received: list[bytes]) -> None:
    request, peer = sock.recvfrom(65535)
    received.append(request)
    sock.sendto(status + b"\r\nContent-Length: 0\r\n\r\n", peer)


def test_the_request_asks_for_the_answer_at_its_source_port() -> None:
    request = options_request("127.0.0.1", 5160, "10.0.0.7", 40123, "f3a1c2")
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "OPTIONS sip:127.0.0.1:5160 SIP/2.0"
    # rport: through NAT the answer must go back to where the request came from.
    assert "Via: SIP/2.0/UDP 10.0.0.7:40123;rport;branch=z9hG4bKf3a1c2" in lines
    assert "Content-Length: 0" in lines and body == b""


def test_any_sip_answer_is_returned_as_its_status_line() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        received: list[bytes] = []
        thread = threading.Thread(target=_answer_once, args=(server, b"SIP/2.0 401 Unauthorized", received))
        thread.start()
        status = probe("127.0.0.1", server.getsockname()[1], timeout_s=2.0)
        thread.join()
    assert status == "SIP/2.0 401 Unauthorized"
    assert received[0].startswith(b"OPTIONS sip:127.0.0.1:")


def test_silence_is_none() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))  # bound, never answers
        assert probe("127.0.0.1", server.getsockname()[1], timeout_s=0.3) is None
