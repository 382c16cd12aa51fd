"""A small AMI server (asyncio) for driving AmiNode through its link in unit tests: the banner,
the actions AmiNode sends, events on demand, and connections dropped at the test's word. The
driver's behaviour against real Asterisk is in tests/integration."""

from __future__ import annotations

import asyncio


def frame(fields: dict[str, str]) -> bytes:
    return ("".join(f"{key}: {value}\r\n" for key, value in fields.items()) + "\r\n").encode()


def parse(block: str) -> dict[str, str]:
    pairs = (line.partition(": ") for line in block.split("\r\n"))
    return {key: value for key, sep, value in pairs if sep}


class FakeAmi:
    def __init__(self, *, boot: str = "12:00:00", version: str = "22.fake") -> None:
        self.boot = boot
        self.version = version
        self.logins = 0
        self.actions: list[str] = []
        self.channels: dict[str, str] = {}  # Uniqueid -> ChannelStateDesc
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def emit(self, fields: dict[str, str]) -> None:
        for writer in list(self._writers):
            writer.write(frame(fields))
            await writer.drain()

    async def drop(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        buffer = ""
        try:
            while data := await reader.read(4096):
                buffer += data.decode()
                *blocks, buffer = buffer.split("\r\n\r\n")
                for block in blocks:
                    for reply in self._answer(parse(block)):
                        writer.write(frame(reply))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            if writer in self._writers:
                self._writers.remove(writer)
            writer.close()

    def _answer(self, action: dict[str, str]) -> list[dict[str, str]]:
        name, ident = action.get("Action", ""), action.get("ActionID", "")
        self.actions.append(name)
        ok = {"Response": "Success", "ActionID": ident}
        if name == "Login":
            self.logins += 1
            return [ok | {"Message": "Authentication accepted"}]
        if name == "CoreSettings":
            return [ok | {"AsteriskVersion": self.version}]
        if name == "CoreStatus":
            return [ok | {"CoreStartupDate": "2026-12-01", "CoreStartupTime": self.boot}]
        if name == "CoreShowChannels":
            listed = [
                {"Event": "CoreShowChannel", "ActionID": ident, "Uniqueid": key, "ChannelStateDesc": state}
                for key, state in self.channels.items()
            ]
            complete = {"Event": "CoreShowChannelsComplete", "ActionID": ident, "EventList": "Complete"}
            return [ok | {"EventList": "start", "Message": "Channels will follow"}, *listed, complete]
        return [ok | ({"Ping": "Pong"} if name == "Ping" else {})]
