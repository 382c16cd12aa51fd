"""Where a key may call: premium-rate and shared-cost numbers, countries; and that the fast
classifier gives phonenumbers' own verdicts."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from orchestrator.domain.campaign import CampaignDefaults, RowError, RowParser, Template
from orchestrator.domain.destinations import (
    DestinationPolicy,
    classify,
    may_be_refused_type,
    parse_countries,
    region_of,
)

SAN_FRANCISCO = "+14152345678"
VANCOUVER = "+16042345678"
BERLIN = "+4930123456"
PARIS = "+33123456789"
US_PREMIUM = "+19002345678"  # 1-900: premium rate in the whole NANP
UK_0871 = "+448712345678"  # 0871: premium rate in libphonenumber's GB metadata
UK_09 = "+449012345678"
FR_SHARED_COST = "+33810123456"  # 0810: shared cost
DE_PREMIUM = "+499001234567"
DE_SHARED_COST = "+4918012345"


@pytest.mark.parametrize(
    ("number", "kind"),
    [
        (US_PREMIUM, "premium-rate"),
        (UK_0871, "premium-rate"),
        (UK_09, "premium-rate"),
        (DE_PREMIUM, "premium-rate"),
        (FR_SHARED_COST, "shared-cost"),
        (DE_SHARED_COST, "shared-cost"),
    ],
)
def test_premium_and_shared_cost_numbers_are_refused_by_default(number: str, kind: str) -> None:
    refusal = DestinationPolicy().refusal(number)
    assert refusal is not None and f"is a {kind} number" in refusal and number in refusal
    assert DestinationPolicy(premium=True).refusal(number) is None


@pytest.mark.parametrize("number", [SAN_FRANCISCO, VANCOUVER, BERLIN, PARIS, "+447400123456", "+18002345678"])
def test_ordinary_numbers_are_allowed(number: str) -> None:
    assert DestinationPolicy().refusal(number) is None


def test_countries_outside_the_list_are_refused() -> None:
    north_america = DestinationPolicy(countries=frozenset({"US", "CA"}))
    assert north_america.refusal(SAN_FRANCISCO) is None
    assert north_america.refusal(VANCOUVER) is None
    refusal = north_america.refusal(BERLIN)
    assert refusal == f"{BERLIN} is in DE; this key may call only CA, US"
    # +1 242 is the Bahamas: same country code as the US, another country.
    bahamas = north_america.refusal("+12423571234")
    assert bahamas is not None and "in BS" in bahamas
    # Premium is refused even inside the list, unless allowed.
    assert north_america.refusal(US_PREMIUM) is not None
    assert DestinationPolicy(frozenset({"US"}), premium=True).refusal(US_PREMIUM) is None
    # A non-geographic number (+800, international freephone) is in no country.
    freephone = DestinationPolicy(frozenset({"US"})).refusal("+80012345678")
    assert freephone is not None and "in no country" in freephone


def test_country_codes_are_checked() -> None:
    assert parse_countries(["us", " CA "]) == frozenset({"US", "CA"})
    with pytest.raises(ValueError, match="'XX' is not a country code"):
        parse_countries(["US", "XX"])
    with pytest.raises(ValueError, match="at least one"):
        parse_countries([])


def _every_example_number() -> list[str]:
    """phonenumbers' example number of every type of every region, and variants of each with
    their last digits changed (valid ones of other types and ranges among them)."""
    found = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in range(11):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                found.add(phonenumbers.format_number(example, PhoneNumberFormat.E164))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            found.add(phonenumbers.format_number(example, PhoneNumberFormat.E164))
    rng = random.Random(15)
    for number in sorted(found):
        for _ in range(6):
            tail = rng.randint(1, min(5, len(number) - 3))
            found.add(number[:-tail] + "".join(rng.choice("0123456789") for _ in range(tail)))
    return sorted(found)


def test_the_classifier_gives_phonenumbers_verdicts() -> None:
    checked = 0
    for number in _every_example_number():
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number(parsed):
            continue
        checked += 1
        region, kind = phonenumbers.region_code_for_number(parsed), phonenumbers.number_type(parsed)
        assert (classify(number).region, classify(number).kind) == (region, kind), number
        assert region_of(number) == region, number
        if kind in (PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST):
            assert may_be_refused_type(number), number  # the screen never lets one through
    assert checked > 3000


def _parser(policy: DestinationPolicy | None) -> RowParser:
    defaults = CampaignDefaults("demo", None, Template("Hello {{name}}"), "en-us", 30)
    return RowParser(defaults, frozenset({"demo"}), policy)


def test_bulk_rows_are_held_to_the_policy() -> None:
    parser = _parser(DestinationPolicy(countries=frozenset({"US", "CA"})))
    assert parser.parse({"to": SAN_FRANCISCO, "name": "Ann"}).to == SAN_FRANCISCO
    for number in (US_PREMIUM, PARIS):
        with pytest.raises(RowError) as refused:
            parser.parse({"to": number, "name": "Bob"})
        assert (refused.value.field, refused.value.code) == ("to", "destination-not-allowed")
    # An invalid number keeps its own error: the policy only sees valid numbers.
    with pytest.raises(RowError) as invalid:
        parser.parse({"to": "+14150234567", "name": "Cy"})
    assert invalid.value.code == "invalid-field"
    # Without a policy (no key: e.g. a tool of the operator's), every valid number passes.
    assert _parser(None).parse({"to": US_PREMIUM, "name": "Di"}).to == US_PREMIUM
