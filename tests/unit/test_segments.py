"""Prompts from segments: the template's pieces, typed values as words of a closed set, the
row errors a value its type cannot say gets, and the whole-text mode."""

from __future__ import annotations

import pytest

from orchestrator.domain.campaign import RowError, Template
from orchestrator.domain.dialing import AUDIO_VARIABLE_BYTES, audio_variables
from orchestrator.domain.segments import (
    MAX_PIECES,
    Slot,
    SlotType,
    TtsMode,
    parse_parts,
    speaks_english,
    spoken_pieces,
)

REMINDER = "Hello {{name}}, your code is {{code|digits}}. We call on {{day|date}} at {{at|time}}."


def test_a_template_splits_into_literals_and_typed_slots() -> None:
    assert parse_parts(REMINDER) == (
        "Hello ",
        Slot("name", SlotType.TEXT),
        ", your code is ",
        Slot("code", SlotType.DIGITS),
        ". We call on ",
        Slot("day", SlotType.DATE),
        " at ",
        Slot("at", SlotType.TIME),
        ".",
    )


def test_an_unknown_type_is_refused_when_the_template_is_made() -> None:
    with pytest.raises(ValueError, match="unknown type"):
        Template("Your balance is {{amount|money}}")


def test_pieces_say_each_literal_value_and_typed_word_in_order() -> None:
    template = Template(REMINDER)
    values = {"name": "Margaret O'Brien", "code": "40-17", "day": "2026-12-09", "at": "14:30"}
    assert template.pieces(values, TtsMode.SEGMENTS) == (
        "Hello",
        "Margaret O'Brien",
        ", your code is",
        "four",
        "zero",
        "one",
        "seven",
        ". We call on",
        "Wednesday",
        "December",
        "ninth",
        "twenty",
        "twenty",
        "six",
        "at",
        "two",
        "thirty",
        "p m",
    )
    # What the call shows keeps the values as given.
    assert template.render(values) == (
        "Hello Margaret O'Brien, your code is 40-17. We call on 2026-12-09 at 14:30."
    )


def test_a_million_codes_need_only_the_ten_digit_words() -> None:
    template = Template("Your code is {{code|digits}}")
    words = {
        piece
        for code in range(0, 1_000_000, 7919)
        for piece in template.pieces({"code": f"{code:06d}"}, TtsMode.SEGMENTS)
    }
    assert words == {
        "Your code is",
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
    }


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("1250", ["one", "thousand", "two", "hundred", "fifty"]),
        ("42.50", ["forty", "two", "point", "five"]),
        ("-3", ["minus", "three"]),
        ("1,000,000", ["one", "million"]),
        ("0", ["zero"]),
    ],
)
def test_numbers_are_said_as_words(value: str, words: list[str]) -> None:
    parts = parse_parts("{{amount|number}}")
    assert spoken_pieces(parts, {"amount": value}) == words


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("09:05", ["nine", "oh", "five", "a m"]),
        ("00:00", ["twelve", "o'clock", "a m"]),
        ("23:45", ["eleven", "forty", "five", "p m"]),
    ],
)
def test_times_are_said_on_a_twelve_hour_clock(value: str, words: list[str]) -> None:
    assert spoken_pieces(parse_parts("{{at|time}}"), {"at": value}) == words


@pytest.mark.parametrize(
    ("template", "value", "field"),
    [
        ("{{code|digits}}", "12a4", "code"),
        ("{{code|digits}}", "٣٤٥", "code"),  # digits of another script: not said in English
        ("{{code|digits}}", "1" * 33, "code"),
        ("{{amount|number}}", "twelve", "amount"),
        ("{{amount|number}}", "NaN", "amount"),
        ("{{amount|number}}", "1e300", "amount"),
        ("{{at|time}}", "25:00", "at"),
        ("{{at|time}}", "noon; DROP TABLE calls", "at"),
        ("{{day|date}}", "2026-02-30", "day"),
        ("{{day|date}}", "12/09/2026", "day"),
    ],
)
def test_a_value_its_type_cannot_say_rejects_the_row(template: str, value: str, field: str) -> None:
    with pytest.raises(RowError) as caught:
        Template(f"Hello, {template}").pieces({field: value}, TtsMode.SEGMENTS)
    assert caught.value.field == field
    assert f"|{parse_parts(template)[0].type.value}" in caught.value.message  # type: ignore[union-attr]


def test_punctuation_alone_and_empty_values_say_nothing() -> None:
    template = Template("{{greeting}} {{name}} !")
    assert template.pieces({"greeting": "Hi", "name": " "}, TtsMode.SEGMENTS) == ("Hi",)
    with pytest.raises(RowError, match="says nothing"):
        template.pieces({"greeting": "...", "name": ""}, TtsMode.SEGMENTS)


def test_too_many_pieces_reject_the_row() -> None:
    template = Template("Account {{a|digits}}, reference {{b|digits}}")
    with pytest.raises(RowError, match=f"at most {MAX_PIECES}"):
        template.pieces({"a": "1" * 32, "b": "2" * 32}, TtsMode.SEGMENTS)


def test_whole_mode_renders_one_text_that_says_the_same_words() -> None:
    template = Template(REMINDER)
    values = {"name": "Ana", "code": "12", "day": "2026-12-09", "at": "09:00"}
    (whole,) = template.pieces(values, TtsMode.WHOLE)
    assert whole == " ".join(template.pieces(values, TtsMode.SEGMENTS))
    plain = Template("Hello {{name}}, your parcel is on its way.")
    assert plain.pieces({"name": "Ana"}, TtsMode.WHOLE) == ("Hello Ana, your parcel is on its way.",)


def test_a_fixed_text_is_one_piece_in_either_mode() -> None:
    fixed = Template("Power is back on in your street.")
    for mode in TtsMode:
        assert fixed.pieces({}, mode) == ("Power is back on in your street.",)


@pytest.mark.parametrize(
    ("voice", "english"), [("en-us", True), ("gmw/en-GB-x-rp", True), ("de", False), ("roa/es", False)]
)
def test_typed_values_need_an_english_voice(voice: str, english: bool) -> None:
    assert speaks_english(voice) is english


def test_long_messages_are_cut_at_a_piece_edge_across_audio_variables() -> None:
    paths = [f"/var/lib/sespcl/audio/{n:064x}" for n in range(MAX_PIECES)]
    variables = audio_variables("&".join(paths))
    assert list(variables) == ["SESPCL_AUDIO"] + [f"SESPCL_AUDIO_{n}" for n in range(2, len(variables) + 1)]
    assert all(len(value) <= AUDIO_VARIABLE_BYTES for value in variables.values())
    assert "&".join(variables.values()).split("&") == paths
    assert audio_variables(paths[0]) == {"SESPCL_AUDIO": paths[0]}


@pytest.mark.parametrize(
    "text",
    ["Hello", 'Siobhán "Shiv" O\'Brien', "Zoë\\n", "東京の田中さん", "tab\there", "emoji 📞 call", ""],
)
def test_the_audio_key_keeps_its_canonical_form(text: str) -> None:
    """Files on disk are named by this key: its fast path must give the general form's bytes."""
    import hashlib
    import json

    from orchestrator.domain.audio import SpeechRequest

    request = SpeechRequest(text=text, voice="gmw/en-us")
    canonical = json.dumps(
        {"engine": "espeak-ng", "voice": "gmw/en-us", "options": {}, "text": text},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert request.key() == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
