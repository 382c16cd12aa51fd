"""Writing a batch of prompts with one sync: each file whole under its content address, an
error kept in its place, nothing half-written left behind."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.domain.audio import SpeechRequest, audio_file_name
from orchestrator.speech.render import SpeechError, store_many


def _request(text: str) -> SpeechRequest:
    return SpeechRequest(text=text, voice="en-us")


def test_a_batch_lands_whole_in_order_with_its_errors_in_place(tmp_path: Path) -> None:
    greetings = [_request(f"Hello {name}") for name in ("Ngozi", "Päivi", "Tomás")]
    refused = SpeechError("unknown voice 'xx'", permanent=True)
    items: list[tuple[SpeechRequest, bytes] | SpeechError] = [
        (greetings[0], b"\x7f" * 8000),
        refused,
        (greetings[1], b"\x00\xff" * 4000),
        (greetings[2], b"\x10" * 12),
    ]
    results = store_many(items, tmp_path)
    assert results[1] is refused
    for request, audio, result in zip(
        greetings,
        (b"\x7f" * 8000, b"\x00\xff" * 4000, b"\x10" * 12),
        results[::1][:1] + results[2:],
        strict=True,
    ):
        assert not isinstance(result, SpeechError)
        path, ms = result
        assert path == tmp_path / audio_file_name(request.key())
        assert path.read_bytes() == audio and ms == len(audio) // 8
        assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


def test_a_prompt_that_cannot_take_its_name_fails_alone_and_leaves_nothing(tmp_path: Path) -> None:
    blocked, fine = _request("Hello Ines"), _request("Hello Aroha")
    # Something else holds the name (a directory with a file in it): the rename cannot replace it.
    (tmp_path / audio_file_name(blocked.key())).mkdir()
    (tmp_path / audio_file_name(blocked.key()) / "keep").write_bytes(b"")
    results = store_many([(blocked, b"\x7f" * 800), (fine, b"\x7f" * 80)], tmp_path)
    assert isinstance(results[0], SpeechError) and not results[0].permanent
    assert not isinstance(results[1], SpeechError)
    assert results[1][0].read_bytes() == b"\x7f" * 80
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]
