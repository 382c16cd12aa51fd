"""What a two-way call asks of its callee, and what it can hear back. Pure: no I/O.

A call may gather digits while its prompt plays (barge-in), answer a digit with a reply (and
put the number on the do-not-call list), detect an answering machine (and leave its voicemail
message after the beep), or hand the answered call to an operator's own dialplan context that
reports back through the `sespcl-hook` subroutine. `Interaction` is stored as `calls.
interaction` (its `to_json`), read back by the dispatcher's claim, and given to the node as
channel variables (`channel_variables`): numbers, fixed words and audio paths only, each of
which the dialplan filters again before use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

DIGIT_KEY = re.compile(r"^[0-9*#]{1,32}$")
CUSTOM_CONTEXT = re.compile(r"^sespcl-custom-[a-z0-9][a-z0-9-]{0,39}$")
HOOK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
HOOK_VALUE = re.compile(r"^[A-Za-z0-9_.:+-]{0,64}$")
"""What the dialplan lets through of a hook's arguments (its FILTER), so a stored value never
holds what the node would not pass."""


class AnsweredBy(str, Enum):
    """Who answered, in Twilio's words (`AnsweredBy`)."""

    HUMAN = "human"
    MACHINE_START = "machine_start"
    MACHINE_END_BEEP = "machine_end_beep"
    MACHINE_END_SILENCE = "machine_end_silence"
    MACHINE_END_OTHER = "machine_end_other"
    UNKNOWN = "unknown"


class MachineDetection(str, Enum):
    ENABLE = "enable"
    """Tell a person from a machine, then go on at once (the verdict is `machine_start`)."""
    DETECT_MESSAGE_END = "detect_message_end"
    """On a machine, wait for its greeting's end (a beep or silence) and leave the voicemail
    message then, so the recording holds all of it."""


@dataclass(frozen=True, kw_only=True)
class Gather:
    """Listen for digits during the prompt and `timeout_s` after it; play the prompt again
    `retries` times while nothing is pressed."""

    num_digits: int
    timeout_s: int = 5
    finish_on_key: str = "#"
    """"" : none; else one of the keys 0-9 * #."""
    retries: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.num_digits <= 32:
            raise ValueError("gather.num_digits must be 1 to 32")
        if not 1 <= self.timeout_s <= 60:
            raise ValueError("gather.timeout_s must be 1 to 60")
        if self.finish_on_key not in ("", "#", "*") and not (
            len(self.finish_on_key) == 1 and self.finish_on_key.isdigit()
        ):
            raise ValueError("gather.finish_on_key must be one key (0-9, *, #) or empty")
        if not 0 <= self.retries <= 3:
            raise ValueError("gather.retries must be 0 to 3")


@dataclass(frozen=True, kw_only=True)
class Speech:
    """Words to say, as their rendered audio's hash (audio_assets) and what was asked."""

    text: str
    voice: str
    audio_hash: str


@dataclass(frozen=True, kw_only=True)
class DigitReply:
    """What follows a digit (or digits) pressed: words said, and an action."""

    speech: Speech | None = None
    dnc: bool = False
    """Put the callee's number on the do-not-call list, during the call."""


@dataclass(frozen=True, kw_only=True)
class AmdTuning:
    """Asterisk's AMD() parameters, in ms (None: the node's amd.conf)."""

    initial_silence_ms: int | None = None
    greeting_ms: int | None = None
    after_greeting_silence_ms: int | None = None
    total_analysis_ms: int | None = None

    def __post_init__(self) -> None:
        for name in ("initial_silence_ms", "greeting_ms", "after_greeting_silence_ms", "total_analysis_ms"):
            value = getattr(self, name)
            if value is not None and not 100 <= value <= 60_000:
                raise ValueError(f"amd.{name} must be 100 to 60000")

    def arguments(self) -> str:
        """AMD()'s first four arguments, colon-separated (AMI splits a Variable header's value
        at commas; the dialplan CUTs at colons); an empty one takes amd.conf's."""
        values = (
            self.initial_silence_ms,
            self.greeting_ms,
            self.after_greeting_silence_ms,
            self.total_analysis_ms,
        )
        return ":".join("" if v is None else str(v) for v in values)


@dataclass(frozen=True, kw_only=True)
class Interaction:
    """Everything a two-way call asks; an `Interaction()` asks nothing (a plain call)."""

    gather: Gather | None = None
    on_digits: Mapping[str, DigitReply] = field(default_factory=dict)
    machine_detection: MachineDetection | None = None
    amd: AmdTuning | None = None
    voicemail: Speech | None = None
    """With DETECT_MESSAGE_END: said after the greeting (None: the call's own prompt)."""
    dialplan_context: str | None = None

    def __post_init__(self) -> None:
        for key in self.on_digits:
            if not DIGIT_KEY.fullmatch(key):
                raise ValueError(f"on_digits key {key!r} must be 1 to 32 of 0-9 * #")
        if self.dialplan_context is not None and not CUSTOM_CONTEXT.fullmatch(self.dialplan_context):
            raise ValueError("dialplan.context must be sespcl-custom-NAME (a-z, 0-9, -)")

    @property
    def is_plain(self) -> bool:
        return self == Interaction()

    def audio_hashes(self) -> list[str]:
        """The audio this call needs besides its prompt, in a stable order."""
        hashes = [r.speech.audio_hash for _, r in sorted(self.on_digits.items()) if r.speech]
        if self.voicemail is not None:
            hashes.append(self.voicemail.audio_hash)
        return list(dict.fromkeys(hashes))

    def speeches(self) -> list[Speech]:
        """The words behind `audio_hashes()`, one per hash: what their audio_assets rows hold."""
        speeches = [r.speech for _, r in sorted(self.on_digits.items()) if r.speech]
        if self.voicemail is not None:
            speeches.append(self.voicemail)
        return list({s.audio_hash: s for s in speeches}.values())

    def reply_for(self, digits: str) -> DigitReply | None:
        return self.on_digits.get(digits)

    def channel_variables(self, audio_path: Callable[[str], str]) -> dict[str, str]:
        """The node's channel variables for this call (asterisk-config/extensions.conf reads
        them); `audio_path` gives an audio hash's file on the nodes, without extension."""
        variables: dict[str, str] = {}
        if self.gather is not None:
            variables |= {
                "SESPCL_GATHER_DIGITS": str(self.gather.num_digits),
                "SESPCL_GATHER_TIMEOUT": str(self.gather.timeout_s),
                "SESPCL_GATHER_FINISH": self.gather.finish_on_key,
                "SESPCL_GATHER_RETRIES": str(self.gather.retries),
            }
        for key, reply in self.on_digits.items():
            if reply.speech is not None:
                variables[f"SESPCL_ON_{digit_variable_suffix(key)}"] = audio_path(reply.speech.audio_hash)
        if self.machine_detection is not None:
            variables["SESPCL_AMD"] = (
                "end" if self.machine_detection is MachineDetection.DETECT_MESSAGE_END else "start"
            )
            variables["SESPCL_AMD_ARGS"] = (self.amd or AmdTuning()).arguments()
        if self.voicemail is not None:
            variables["SESPCL_VOICEMAIL"] = audio_path(self.voicemail.audio_hash)
        if self.dialplan_context is not None:
            variables["SESPCL_CONTEXT"] = self.dialplan_context
        return variables

    def to_json(self) -> dict[str, Any] | None:
        """What `calls.interaction` stores (None for a plain call)."""
        if self.is_plain:
            return None
        return {
            "gather": None
            if self.gather is None
            else {
                "num_digits": self.gather.num_digits,
                "timeout_s": self.gather.timeout_s,
                "finish_on_key": self.gather.finish_on_key,
                "retries": self.gather.retries,
            },
            "on_digits": {
                key: {"tts": _speech_json(r.speech), "action": "dnc" if r.dnc else None}
                for key, r in self.on_digits.items()
            },
            "machine_detection": None if self.machine_detection is None else self.machine_detection.value,
            "amd": None
            if self.amd is None
            else {
                "initial_silence_ms": self.amd.initial_silence_ms,
                "greeting_ms": self.amd.greeting_ms,
                "after_greeting_silence_ms": self.amd.after_greeting_silence_ms,
                "total_analysis_ms": self.amd.total_analysis_ms,
            },
            "voicemail": None if self.voicemail is None else {"tts": _speech_json(self.voicemail)},
            "dialplan": None if self.dialplan_context is None else {"context": self.dialplan_context},
        }

    @classmethod
    def from_json(cls, stored: Mapping[str, Any] | None) -> Interaction:
        if not stored:
            return cls()
        gather = stored.get("gather")
        amd = stored.get("amd")
        voicemail = stored.get("voicemail")
        dialplan = stored.get("dialplan")
        machine = stored.get("machine_detection")
        return cls(
            gather=None if gather is None else Gather(**gather),
            on_digits={
                key: DigitReply(speech=_speech(r.get("tts")), dnc=r.get("action") == "dnc")
                for key, r in (stored.get("on_digits") or {}).items()
            },
            machine_detection=None if machine is None else MachineDetection(machine),
            amd=None if amd is None else AmdTuning(**amd),
            voicemail=None if voicemail is None else _speech(voicemail.get("tts")),
            dialplan_context=None if dialplan is None else dialplan["context"],
        )


def digit_variable_suffix(key: str) -> str:
    """A digit key as a variable name's end: '*' is S, '#' is H (dialplan: REPLACE)."""
    return key.replace("*", "S").replace("#", "H")


def _speech_json(speech: Speech | None) -> dict[str, str] | None:
    if speech is None:
        return None
    return {"text": speech.text, "voice": speech.voice, "audio_hash": speech.audio_hash}


def _speech(stored: Mapping[str, Any] | None) -> Speech | None:
    if stored is None:
        return None
    return Speech(text=stored["text"], voice=stored["voice"], audio_hash=stored["audio_hash"])


def answered_by(amd_status: str, message_end: str | None) -> AnsweredBy:
    """The verdict from AMD()'s AMDSTATUS and, for a machine whose greeting's end was
    waited for, how it ended (`beep`, `silence`, anything else: other)."""
    if amd_status == "HUMAN":
        return AnsweredBy.HUMAN
    if amd_status != "MACHINE":
        return AnsweredBy.UNKNOWN
    if message_end is None:
        return AnsweredBy.MACHINE_START
    return {
        "beep": AnsweredBy.MACHINE_END_BEEP,
        "silence": AnsweredBy.MACHINE_END_SILENCE,
    }.get(message_end, AnsweredBy.MACHINE_END_OTHER)
