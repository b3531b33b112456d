"""Contact points at ingest (engine/contact_points.py): what is refused with the field
named, what is stored in E.164, and which numbers can take an SMS."""

from __future__ import annotations

from datetime import timedelta

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from sqlalchemy import select

from cartflow.engine.contact_points import (
    NOT_A_NUMBER,
    NOT_MOBILE,
    check_email,
    check_phone,
    shop_phone,
    sms_refusal,
)
from cartflow.engine.errors import EventError
from cartflow.engine.events import parse_events
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.store.models import Contact

from ..factories import T0, event


def example(region: str, kind: int) -> str:
    number = phonenumbers.example_number_for_type(region, kind)
    assert number is not None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def national(region: str, kind: int) -> str:
    number = phonenumbers.example_number_for_type(region, kind)
    assert number is not None
    return phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("anna@example.com", "anna@example.com"),
        ("  Anna@Example.COM ", "Anna@example.com"),
        ("иван@пример.рф", "иван@пример.рф"),
    ],
)
def test_good_emails_are_normalised(raw: str, normalised: str) -> None:
    assert check_email(raw) == normalised


@pytest.mark.parametrize(
    "raw", ["anna", "anna@", "@example.com", "an na@example.com", "anna@@example.com", "a@b"]
)
def test_broken_emails_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="not an email address"):
        check_email(raw)


@pytest.mark.parametrize("region", ["RU", "GB", "DE", "US", "UA"])
def test_phones_are_stored_in_e164(region: str) -> None:
    e164 = example(region, PhoneNumberType.MOBILE)
    assert check_phone(e164) == e164
    assert check_phone(national(region, PhoneNumberType.MOBILE), region) == e164
    assert check_phone("00" + e164[1:]) == e164


def test_a_number_without_country_code_needs_a_region() -> None:
    with pytest.raises(ValueError, match="no country code"):
        check_phone(national("RU", PhoneNumberType.MOBILE))


@pytest.mark.parametrize("raw", ["+", "+7", "+7 999", "+7999123456789012"])
def test_what_is_no_phone_number_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="not a phone number"):
        check_phone(raw)


@pytest.mark.parametrize(
    ("region", "kind", "refusal"),
    [
        ("RU", PhoneNumberType.MOBILE, None),
        ("RU", PhoneNumberType.FIXED_LINE, NOT_MOBILE),
        ("GB", PhoneNumberType.MOBILE, None),
        ("GB", PhoneNumberType.FIXED_LINE, NOT_MOBILE),
        ("DE", PhoneNumberType.FIXED_LINE, NOT_MOBILE),
        ("RU", PhoneNumberType.TOLL_FREE, NOT_MOBILE),
        ("US", PhoneNumberType.FIXED_LINE, None),  # FIXED_LINE_OR_MOBILE: usable
    ],
)
def test_only_numbers_that_take_an_sms_are_usable_for_sms(
    region: str, kind: int, refusal: str | None
) -> None:
    assert sms_refusal(example(region, kind)) == refusal


def test_a_number_in_no_assigned_range_is_stored_but_not_texted() -> None:
    # 07700 900xxx: the UK's range reserved for drama, the right length but no one's
    assert check_phone("+447700900123") == "+447700900123"
    assert sms_refusal("+447700900123") == NOT_A_NUMBER


def test_a_shops_phone_is_read_in_its_billing_country_or_left_out() -> None:
    assert shop_phone("(201) 555-0123", "US") == "+12015550123"
    assert shop_phone("(201) 555-0123", None) is None
    assert shop_phone("n/a", "US") is None


def test_the_country_in_the_contact_reads_a_national_number() -> None:
    body = {
        "id": "e1",
        "type": "customer.identified",
        "customer_id": "c",
        "contact": {"phone": national("RU", PhoneNumberType.MOBILE), "country": "RU"},
    }
    (parsed,) = parse_events(body)
    assert parsed.contact is not None
    assert parsed.contact.phone == example("RU", PhoneNumberType.MOBILE)
    del body["contact"]["country"]  # type: ignore[attr-defined]
    (parsed,) = parse_events(body, phone_region="RU")
    assert parsed.contact is not None and parsed.contact.phone == parsed.contact.phone
    with pytest.raises(EventError) as refused:
        parse_events(body)
    assert [e["loc"] for e in refused.value.errors] == ["contact.phone"]


def test_a_fixed_line_is_stored_invalid_for_sms(sim: Simulation, db: Database) -> None:
    # Given a shopper who gives a fixed-line number and an email
    fixed = example("RU", PhoneNumberType.FIXED_LINE)
    sim.feed([event("customer.identified", T0, contact={"phone": fixed, "email": "a@example.com"})])
    sim.run_until(T0 + timedelta(minutes=1))
    # Then the number is kept, marked not_mobile, and the email is valid
    with db.sessions() as session:
        rows = {
            c.channel: (c.address, c.valid, c.invalid_reason)
            for c in session.scalars(select(Contact))
        }
    assert rows == {"sms": (fixed, False, NOT_MOBILE), "email": ("a@example.com", True, None)}
