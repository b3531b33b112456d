"""Production logs: JSON lines, step lines carry journey/cart/step ids, and no email
address or phone number ever reaches a line — even when a provider puts one in its error —
while ids, UUIDs and timestamps pass unchanged."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import phonenumbers
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from cartflow.engine.sending import SendResult
from cartflow.engine.simulation import Simulation
from cartflow.providers.recording import replies
from cartflow.workers.logs import configure, scrub

from ..factories import T0, cart_updated


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure("json", stream=stream)
    yield stream
    structlog.reset_defaults()


def test_step_lines_are_json_with_ids_and_without_contact_data(
    sim: Simulation, recorder: object, json_logs: io.StringIO
) -> None:
    # Given a provider whose error message repeats the recipient's number and address
    recorder.handler = replies(  # type: ignore[attr-defined]
        SendResult.permanent("recording", "push refused for anna@example.com / +79991234567")
    )
    # When a journey runs
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + timedelta(days=2))
    # Then every line is JSON, step lines name journey, cart and step, and no contact leaks
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    steps = [line for line in lines if line["event"] in ("step_sent", "step_failed")]
    assert {line["step"] for line in steps} == {"push", "sms", "email"}
    assert all(line["journey_id"] and line["cart_id"] == "cart_1" for line in steps)
    text = json_logs.getvalue()
    assert "anna@example.com" not in text and "+79991234567" not in text
    assert "[email]" in text and "[phone]" in text


# -- the scrubber: ids pass, phones and emails in any format do not (issue 14) ---------------
#: Every example number phonenumbers knows, one per region and number type: all valid.
EXAMPLE_NUMBERS = [
    (region, number)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS)
    for number_type in range(11)  # PhoneNumberType.FIXED_LINE .. VOICEMAIL
    if (number := phonenumbers.example_number_for_type(region, number_type)) is not None
]
#: What people put between digit groups.
SEPARATORS = [" ", "-", ".", "", "  ", " - "]
#: ... and, in an international number, also these.
INTERNATIONAL_SEPARATORS = [*SEPARATORS, "/", "\t", "(", ")"]
#: Text around a number in a log line (no digits, so any digit left is a leak).
BEFORE = ["", "sms to ", "tel:", "phone=", "(", "«", "\n", "номер "]
AFTER = ["", " failed", ".", ")", ",", "»", "\n", ";"]


@st.composite
def written_phones(draw: st.DrawFn) -> tuple[str, str]:
    """(region to read it in, a valid number written as people do, inside some text)."""
    region, number = draw(st.sampled_from(EXAMPLE_NUMBERS))
    style = draw(st.sampled_from(["national", "international", "e164"]))
    if style == "national":
        written = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        separators = SEPARATORS
    else:
        written = phonenumbers.format_number(
            number,
            phonenumbers.PhoneNumberFormat.INTERNATIONAL
            if style == "international"
            else phonenumbers.PhoneNumberFormat.E164,
        )
        separators = INTERNATIONAL_SEPARATORS
        # an international number is caught whatever the shop's region
        region = draw(st.sampled_from(["RU", "US", "DE", region]))
    if style != "e164":
        written = re.sub(r"[ -]", lambda _: draw(st.sampled_from(separators)), written)
    return region, f"{draw(st.sampled_from(BEFORE))}{written}{draw(st.sampled_from(AFTER))}"


@given(written_phones())
@settings(max_examples=500, deadline=None)
def test_valid_phone_numbers_in_any_format_are_scrubbed(case: tuple[str, str]) -> None:
    region, text = case
    scrubbed = scrub(text, region)
    assert "[phone]" in scrubbed
    assert not re.search(r"\d", scrubbed), (text, scrubbed)


#: Times a log line mentions (``0594-10-12 34`` is a phone in French Guiana, not a date).
LOG_YEARS = (datetime(1900, 1, 1), datetime(2099, 12, 31, 23, 59, 59))
HEX_IDS = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
NOT_PHONES = st.one_of(
    HEX_IDS,
    st.uuids().map(str),
    st.uuids().map(lambda value: value.hex),
    st.datetimes(LOG_YEARS[0], LOG_YEARS[1], timezones=st.timezones()).map(
        lambda moment: moment.isoformat()
    ),
    st.datetimes(LOG_YEARS[0], LOG_YEARS[1]).map(lambda moment: moment.isoformat(sep=" ")),
    st.dates(LOG_YEARS[0].date(), LOG_YEARS[1].date()).map(lambda day: day.isoformat()),
)


@given(NOT_PHONES, st.sampled_from(["RU", "US", "GB", "DE", "IN", "BR"]), st.sampled_from(BEFORE))
@settings(max_examples=500, deadline=None)
def test_ids_uuids_timestamps_and_dates_pass_unchanged(
    value: str, region: str, before: str
) -> None:
    assert scrub(value, region) == value
    assert scrub(f"{before}{value} sent", region) == f"{before}{value} sent"


@pytest.mark.parametrize(
    "value",
    [
        "25465668af7b1234567890f584b0a096",  # the journey id from the issue
        "00000000000000000000000000000000",
        "79991234567000000000000000000000",
        "6f1c2a9e-8999-4123-8456-899912345670",
        "2026-11-23T09:00:00.123456+03:00",
        "2026-11-23 09:00:00",
        "2026-11-23",
        "journey 25465668af7b1234567890f584b0a096 step sms at 2026-11-23T09:00:00Z",
    ],
)
def test_known_ids_pass_unchanged(value: str) -> None:
    assert scrub(value) == value


@pytest.mark.parametrize(
    ("text", "region"),
    [
        ("8 (999) 123-45-67", "RU"),
        ("+7 999 123 45 67", "RU"),
        ("+79991234567", "RU"),
        ("89991234567", "RU"),
        ("(415) 555-2671", "US"),
        ("+1 415-555-2671", "RU"),
        ("+44/20/7946/0958", "RU"),
    ],
)
def test_phones_in_the_issue_are_scrubbed(text: str, region: str) -> None:
    assert scrub(f"call {text} now", region) == "call [phone] now"


@pytest.mark.parametrize(
    "address",
    ["anna@example.com", "Anna.B+promo@Example.COM", "ANNA@EXAMPLE.RU", "анна@пример.рф"],
)
def test_emails_in_any_case_and_with_tags_are_scrubbed(address: str) -> None:
    assert scrub({"error": [f"bounced: <{address}>"]}) == {"error": ["bounced: <[email]>"]}


def test_the_phone_region_comes_from_configure(
    monkeypatch: pytest.MonkeyPatch, json_logs: io.StringIO
) -> None:
    # Given a US number in national format: not a number in the default region (RU)
    assert scrub("(201) 555-0123") == "(201) 555-0123"
    # When the process is configured for a US shop
    monkeypatch.setenv("CARTFLOW_PHONE_REGION", "us")
    configure("json", stream=json_logs)
    try:
        structlog.get_logger("test").warning(
            "send_failed",
            error="no such number (201) 555-0123",
            journey_id="25465668af7b1234567890f584b0a096",
        )
    finally:
        configure("json", stream=json_logs, phone_region="RU")
    # Then it is scrubbed, and an id beside it is not touched
    (line,) = [json.loads(text) for text in json_logs.getvalue().splitlines()]
    assert line["error"] == "no such number [phone]"
    assert line["journey_id"] == "25465668af7b1234567890f584b0a096"


def test_an_unknown_phone_region_is_refused() -> None:
    with pytest.raises(ValueError, match="phone region 'XX' is unknown"):
        configure("json", phone_region="XX")
