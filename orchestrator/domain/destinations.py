"""Where a key may call: never premium-rate or shared-cost numbers unless allowed, and only the
countries it lists. Pure: no I/O.

A leaked key is toll fraud at the farm's full rate: the numbers that earn their owner money per
minute (PREMIUM_RATE, SHARED_COST in libphonenumber's terms) are refused unless the key says
otherwise. The number's country and type are phonenumbers' own verdicts (region_code_for_number,
number_type), reached without a full parse per number: a bulk upload checks a million rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberType

REFUSED_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "premium-rate",
    PhoneNumberType.SHARED_COST: "shared-cost",
}

# phonenumbers' _number_type_helper tests the types in this order; the first that matches wins.
_TYPE_ORDER = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
    ("fixed_line", PhoneNumberType.FIXED_LINE),
    ("mobile", PhoneNumberType.MOBILE),
)


@dataclass(frozen=True)
class Destination:
    region: str | None
    """ISO 3166-1 alpha-2 code ("001" for a non-geographic code such as +800); None: unknown."""
    kind: int
    """A phonenumbers.PhoneNumberType."""


def _lengths(desc: object) -> frozenset[int]:
    return frozenset(getattr(desc, "possible_length", None) or ())


def _pattern(desc: object) -> str | None:
    return getattr(desc, "national_number_pattern", None) or None


class _RegionTypes:
    """One region's number types as one regular expression per national length: a number's
    type is then one match (the first alternative that matches is the type phonenumbers would
    answer), instead of up to ten."""

    def __init__(self, region: str, metadata: PhoneMetadata) -> None:
        self.region = region
        self._leading = re.compile(metadata.leading_digits) if metadata.leading_digits else None
        general = metadata.general_desc
        self._general = re.compile(_pattern(general) or r"(?!)")
        self._general_lengths = _lengths(general)
        self._same_fixed_mobile = bool(metadata.same_mobile_and_fixed_line_pattern)
        mobile = metadata.mobile
        self._mobile = re.compile(_pattern(mobile) or r"(?!)")
        self._mobile_lengths = _lengths(mobile)
        self._types = [
            (name, kind, _lengths(getattr(metadata, name)), _pattern(getattr(metadata, name)))
            for name, kind in _TYPE_ORDER
            if not (name == "mobile" and self._same_fixed_mobile)
        ]
        self._by_length: dict[int, tuple[re.Pattern[str], dict[str, int]] | None] = {}

    def claim(self, national: str) -> int | None:
        """phonenumbers' choice among the regions sharing a country code: the leading digits
        when the region has them, else whether the number is valid there. The number's type
        in this region when it is this region's, else None."""
        if self._leading is not None:
            return self.kind(national) if self._leading.match(national) else None
        kind = self.kind(national)
        return None if kind == PhoneNumberType.UNKNOWN else kind

    def refused_patterns(self) -> list[tuple[frozenset[int], str]]:
        """The (lengths, pattern) of the types refused by default, for a quick screen."""
        return [
            (lengths, pattern)
            for _, kind, lengths, pattern in self._types
            if kind in REFUSED_TYPES and pattern is not None
        ]

    def kind(self, national: str) -> int:
        size = len(national)
        if self._general_lengths and size not in self._general_lengths:
            return PhoneNumberType.UNKNOWN
        if not self._general.fullmatch(national):
            return PhoneNumberType.UNKNOWN
        if size not in self._by_length:
            self._by_length[size] = self._combined(size)
        combined = self._by_length[size]
        if combined is None:
            return PhoneNumberType.UNKNOWN
        pattern, kinds = combined
        found = pattern.fullmatch(national)
        if found is None or found.lastgroup is None:
            return PhoneNumberType.UNKNOWN
        kind = kinds[found.lastgroup]
        if kind == PhoneNumberType.FIXED_LINE and (self._same_fixed_mobile or self._is_mobile(national)):
            return PhoneNumberType.FIXED_LINE_OR_MOBILE
        return kind

    def _is_mobile(self, national: str) -> bool:
        if self._mobile_lengths and len(national) not in self._mobile_lengths:
            return False
        return self._mobile.fullmatch(national) is not None

    def _combined(self, size: int) -> tuple[re.Pattern[str], dict[str, int]] | None:
        parts, kinds = [], {}
        for index, (_, kind, lengths, pattern) in enumerate(self._types):
            if pattern is None or (lengths and size not in lengths):
                continue
            # The wrapping group closes last, so it is the match's lastgroup; phonenumbers'
            # patterns hold no named groups of their own.
            parts.append(f"(?P<t{index}>{pattern})")
            kinds[f"t{index}"] = kind
        return (re.compile("|".join(parts)), kinds) if parts else None


class DestinationClassifier:
    """region_code_for_number and number_type of an E.164 number, the compiled patterns kept
    per country code. The number must be valid already (E164Checker)."""

    def __init__(self) -> None:
        self._codes: dict[str, list[_RegionTypes] | None] = {}
        self._screens: dict[str, dict[int, re.Pattern[str] | None]] = {}

    def classify(self, number: str) -> Destination:
        found = self._split(number)
        if found is None:
            return Destination(None, PhoneNumberType.UNKNOWN)
        _, national, regions = found
        if len(regions) == 1:  # as phonenumbers: a country code of one region is that region
            return Destination(regions[0].region, regions[0].kind(national))
        for region in regions:
            kind = region.claim(national)
            if kind is not None:
                return Destination(region.region, kind)
        return Destination(None, PhoneNumberType.UNKNOWN)

    def region(self, number: str) -> str | None:
        """classify(number).region, without the type when the country code has one region."""
        found = self._split(number)
        if found is not None and len(found[2]) == 1:
            return found[2][0].region
        return self.classify(number).region

    def may_be_refused_type(self, number: str) -> bool:
        """False when `number` is certainly not premium-rate or shared-cost: no region of its
        country code has such a pattern that matches it. One small match for the common case,
        where classify() would match the country's whole numbering plan."""
        found = self._split(number)
        if found is None:
            return False
        code, national, _ = found
        screens = self._screens.setdefault(code, {})
        if len(national) not in screens:
            screens[len(national)] = self._screen(code, len(national))
        screen = screens[len(national)]
        return screen is not None and screen.fullmatch(national) is not None

    def _split(self, number: str) -> tuple[str, str, list[_RegionTypes]] | None:
        """(country code, national number, the code's regions); None for an unknown code.
        Country codes are prefix-free: the first known one of 1 to 3 digits is it."""
        digits = number[1:]
        for size in (1, 2, 3):
            regions = self._regions(digits[:size])
            if regions is not None:
                return digits[:size], digits[size:], regions
        return None

    def _screen(self, code: str, size: int) -> re.Pattern[str] | None:
        patterns = {
            pattern
            for region in self._regions(code) or ()
            for lengths, pattern in region.refused_patterns()
            if not lengths or size in lengths
        }
        return re.compile("|".join(f"(?:{p})" for p in sorted(patterns))) if patterns else None

    def _regions(self, code: str) -> list[_RegionTypes] | None:
        if code in self._codes:
            return self._codes[code]
        names = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(code)) if code.isdigit() else None
        regions = []
        for name in names or ():
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(int(code), name)
            if metadata is not None and metadata.general_desc is not None:
                regions.append(_RegionTypes(name, metadata))
        self._codes[code] = regions or None
        return self._codes[code]


_CLASSIFIER = DestinationClassifier()
"""Shared: the compiled patterns depend only on phonenumbers' metadata."""


def classify(number: str) -> Destination:
    return _CLASSIFIER.classify(number)


def may_be_refused_type(number: str) -> bool:
    return _CLASSIFIER.may_be_refused_type(number)


def region_of(number: str) -> str | None:
    return _CLASSIFIER.region(number)


def parse_countries(codes: Iterable[str]) -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes phonenumbers knows, upper-cased; ValueError names a bad one."""
    found = set()
    for raw in codes:
        code = raw.strip().upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{raw.strip()!r} is not a country code (ISO 3166-1 alpha-2, e.g. US, GB, DE)")
        found.add(code)
    if not found:
        raise ValueError("name at least one country (ISO 3166-1 alpha-2, e.g. US,CA)")
    return frozenset(found)


@dataclass(frozen=True)
class DestinationPolicy:
    countries: frozenset[str] | None = None
    """The countries a key may call; None: every one."""
    premium: bool = False
    """Whether premium-rate and shared-cost numbers may be called."""

    def refusal(self, number: str) -> str | None:
        """Why `number` (valid E.164) may not be called under this policy; None when it may."""
        if not self.premium and may_be_refused_type(number):
            kind = classify(number).kind
            if kind in REFUSED_TYPES:
                return (
                    f"{number} is a {REFUSED_TYPES[kind]} number; "
                    "this key may not call premium-rate or shared-cost numbers"
                )
        if self.countries is None:
            return None
        region = region_of(number)
        if region not in self.countries:
            where = f"in {region}" if region not in (None, "001") else "in no country"
            return f"{number} is {where}; this key may call only {', '.join(sorted(self.countries))}"
        return None
