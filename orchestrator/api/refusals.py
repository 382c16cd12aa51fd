"""A pydantic ValidationError as the API reports it: the first error's field path, code and
message, for a 422 body or a bulk row's entry in an upload's `errors`."""

from __future__ import annotations

from pydantic import ValidationError

REFUSAL_CODES = frozenset(
    {
        "invalid-digit-key",
        "digit-key-never-matches",
        "on-digits-without-gather",
        "amd-without-machine-detection",
        "voicemail-without-message-end",
        "dialplan-context-refused",
        "dialplan-excludes-gather",
        "callback-url-refused",
        "placeholders-not-supported",
    }
)
"""The codes of the rules between two-way fields (api/two_way.py): raised as pydantic custom
errors of that type. Any other refusal is `invalid-field`, or `unknown-field`."""


def first_refusal(exc: ValidationError) -> tuple[str | None, str, str]:
    """(field path, code, message) of the first error."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    if first["type"] == "extra_forbidden":
        return field, "unknown-field", "unknown field"
    code = first["type"] if first["type"] in REFUSAL_CODES else "invalid-field"
    return field, code, first["msg"].removeprefix("Value error, ")
