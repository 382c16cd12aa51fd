"""Test carriers: SIPp started through scripts/carrier.sh, and what its message log shows."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n(\w+) message (received|sent)", re.M)


@dataclass(frozen=True)
class SipMessage:
    at: datetime
    received: bool
    first_line: str
    call_id: str
    from_uri: str = ""
    """The From header's URI, e.g. sip:+14155550111@127.0.10.1."""

    @property
    def method(self) -> str:
        return self.first_line.split(" ", 1)[0]


class Carrier:
    """One SIPp far end on its own loopback address, with message tracing on."""

    def __init__(
        self,
        name: str,
        address: str,
        scenario: str,
        *,
        audio_dir: Path | None = None,
        media_port: int | None = None,
        digit: str | None = None,
    ) -> None:
        """`audio_dir`: where the human/voicemail far ends find human.ulaw or voicemail.ulaw
        (tests/far_ends.py write_far_end); `media_port`: their RTP port; `digit`: the key the
        dtmf far end presses (scripts/carrier.sh checks all three)."""
        self.name, self.address, self.scenario = name, address, scenario
        self.state = Path(os.environ["SESPCL_STATE_DIR"])
        self.log = self.state / f"carrier-{name}-messages.log"
        self.options = {
            "SESPCL_CARRIER_AUDIO_DIR": str(audio_dir) if audio_dir is not None else None,
            "SESPCL_CARRIER_MEDIA_PORT": str(media_port) if media_port is not None else None,
            "SESPCL_CARRIER_DIGIT": digit,
        }

    def start(self) -> Carrier:
        self.log.unlink(missing_ok=True)
        env = dict(os.environ, SESPCL_SIPP_TRACE="1")
        env.update({key: value for key, value in self.options.items() if value is not None})
        subprocess.run(
            [
                "bash",
                str(REPO / "scripts/carrier.sh"),
                "start",
                self.name,
                self.address,
                "5060",
                self.scenario,
            ],
            check=True,
            env=env,
            capture_output=True,
            timeout=30,
        )
        return self

    def stop(self) -> None:
        subprocess.run(
            ["bash", str(REPO / "scripts/carrier.sh"), "stop", self.name],
            check=False,
            capture_output=True,
            timeout=30,
        )

    def messages(self) -> list[SipMessage]:
        if not self.log.exists():
            return []
        text = self.log.read_text(errors="replace")
        starts = list(_BLOCK.finditer(text))
        found = []
        for i, match in enumerate(starts):
            body = text[match.end() : starts[i + 1].start() if i + 1 < len(starts) else len(text)]
            lines = [line for line in body.splitlines() if line.strip()]
            if len(lines) < 2:  # lines[0] is the rest of the "... bytes" header line
                continue
            first = lines[1]
            call_id = next(
                (line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("call-id:")), ""
            )
            from_header = next((line for line in lines if line.lower().startswith("from:")), "")
            found.append(
                SipMessage(
                    datetime.fromisoformat(match.group(1)),
                    match.group(3) == "received",
                    first.strip(),
                    call_id,
                    from_header.partition("<")[2].partition(">")[0],
                )
            )
        return found

    def invites(self) -> list[SipMessage]:
        """First INVITE of each dialog (retransmissions share the Call-ID)."""
        seen: dict[str, SipMessage] = {}
        for message in self.messages():
            if message.received and message.method == "INVITE" and message.call_id not in seen:
                seen[message.call_id] = message
        return sorted(seen.values(), key=lambda m: m.at)

    def max_concurrent_dialogs(self) -> int:
        """Most dialogs open at once: from the INVITE received to the BYE received."""
        edges: list[tuple[datetime, int]] = []
        for invite in self.invites():
            edges.append((invite.at, 1))
        for message in self.messages():
            if message.received and message.method == "BYE":
                edges.append((message.at, -1))
        live = peak = 0
        for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
            live += step
            peak = max(peak, live)
        return peak

    def max_invites_in_any_second(self) -> int:
        times = [m.at for m in self.invites()]
        return max(
            (sum(1 for t in times[i:] if (t - start).total_seconds() < 1.0) for i, start in enumerate(times)),
            default=0,
        )
