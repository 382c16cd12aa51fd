"""Carrier TLS is verified: a carrier whose certificate the nodes cannot verify (self-signed, as
a man in the middle's would be) is refused, unless the trunk says `--tls-verify no` (a lab).

SIPp here has no TLS, so the far end is a small SIP-over-TLS responder: it answers OPTIONS with
200, and records whether a TLS session was ever established and what came through it."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cli import sespcl

ADDRESS, PORT = "127.0.30.31", 5061


class TlsResponder:
    def __init__(self, cert_dir: Path) -> None:
        self.requests: list[str] = []
        self.sessions = 0
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert_dir / "cert.pem", cert_dir / "key.pem")
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TlsResponder:
        self._thread.start()
        assert self._ready.wait(10), "the TLS responder did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(
                self._serve, ADDRESS, PORT, ssl=self._context, ssl_handshake_timeout=5, reuse_address=True
            )
        )
        self._ready.set()
        self._loop.run_forever()
        server.close()
        sessions = asyncio.all_tasks(self._loop)
        for task in sessions:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*sessions, return_exceptions=True))
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                request = head.decode("utf-8", "replace")
                self.requests.append(request.split("\r\n", 1)[0])
                length = next(
                    (int(line.split(":", 1)[1]) for line in request.split("\r\n")
                     if line.lower().startswith("content-length:")), 0,
                )  # fmt: skip
                await reader.readexactly(length)
                copied = [
                    line for line in request.split("\r\n")
                    if line.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq")
                ]  # fmt: skip
                reply = "SIP/2.0 200 OK\r\n" + "\r\n".join(copied) + "\r\nContent-Length: 0\r\n\r\n"
                writer.write(reply.encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("carrier-tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={ADDRESS}",
            "-addext",
            f"subjectAltName=IP:{ADDRESS}",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
        ],  # fmt: skip
        check=True,
        capture_output=True,
    )
    return folder


@pytest.fixture
def tls_trunk() -> Iterator[str]:
    sespcl("trunks", "remove", "t-tls", "--force")
    yield "t-tls"
    sespcl("trunks", "remove", "t-tls", "--force")


def _test(trunk: str) -> list[dict[str, object]]:
    result = sespcl("trunks", "test", trunk, "--timeout", "6", "--json")
    rows: list[dict[str, object]] = json.loads(result.stdout)
    assert (result.returncode == 0) == all(r["reachable"] for r in rows), result.stderr
    return rows


def test_a_carrier_whose_certificate_cannot_be_verified_is_refused(self_signed: Path, tls_trunk: str) -> None:
    added = sespcl("trunks", "add", tls_trunk, "--host", ADDRESS, "--port", str(PORT), "--transport", "tls")
    assert added.returncode == 0, added.stderr
    assert "warning" not in added.stderr
    with TlsResponder(self_signed) as carrier:
        rows = _test(tls_trunk)
    assert not any(r["reachable"] for r in rows), rows
    assert carrier.requests == [], "nothing may cross a TLS session the node could not verify"


def test_a_lab_trunk_without_verification_reaches_it_and_says_so(self_signed: Path, tls_trunk: str) -> None:
    added = sespcl(
        "trunks", "add", tls_trunk, "--host", ADDRESS, "--port", str(PORT), "--transport", "tls",
        "--tls-verify", "no",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "warning" in added.stderr and "lab" in added.stderr
    with TlsResponder(self_signed) as carrier:
        rows = _test(tls_trunk)
    assert all(r["reachable"] for r in rows), rows
    assert carrier.sessions >= 1 and any(r.startswith("OPTIONS sip:") for r in carrier.requests)
    shown = json.loads(sespcl("trunks", "show", tls_trunk, "--json").stdout)
    assert shown["tls_verify"] is False


def test_tls_verify_applies_to_tls_trunks_only(tls_trunk: str) -> None:
    refused = sespcl("trunks", "add", tls_trunk, "--host", ADDRESS, "--tls-verify", "no")
    assert refused.returncode == 1 and "tls" in refused.stderr
