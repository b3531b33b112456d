"""Contact points checked at ingest (docs/events.md, Contact).

What is refused (the event gets a 422 naming ``contact.email`` / ``contact.phone``) and
what is stored but marked unusable:

* an email that is not an address (email-validator: syntax and normalisation, no DNS —
  nothing leaves the machine at ingest) → refused;
* a phone that does not parse, has the wrong length for its country, or has no country
  code while the settings name no ``defaults.phone_region`` → refused; otherwise it is
  stored in E.164;
* a number that cannot take an SMS → stored, marked invalid for SMS and never used:
  ``not_mobile`` (fixed line, toll-free, …), ``not_a_number`` (no such range in its
  country's plan). ``FIXED_LINE_OR_MOBILE`` (the
  US, Canada, …: the plan does not say) counts as mobile.
"""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneNumberType

#: Reason an SMS contact is stored but never used.
NOT_MOBILE = "not_mobile"
#: Reason an SMS contact is stored but never used: the right length, but no such number
#: in its country's numbering plan (a reserved or unassigned range).
NOT_A_NUMBER = "not_a_number"
#: Number types that can take an SMS.
SMS_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


def check_email(value: str) -> str:
    """The address normalised (domain lower-cased, Unicode NFC); ValueError saying why
    it is not one."""
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not an email address: {exc}") from None
    return checked.normalized


def check_phone(value: str, region: str | None = None) -> str:
    """The number in E.164; ValueError saying why it is not one. ``region``: the
    country (ISO 3166 alpha-2) a number without ``+`` belongs to; without one, such a
    number is refused."""
    raw = value.strip()
    if raw.startswith("00"):  # the international prefix most of the world dials
        raw = "+" + raw[2:]
    if not raw.startswith("+") and region is None:
        raise ValueError(
            "no country code: give the number in E.164 (+79991234567), or set defaults.phone_region"
        )
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError("not a phone number: wrong length for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def sms_refusal(e164: str) -> str | None:
    """Why the number cannot take an SMS — :data:`NOT_A_NUMBER` (no such number in its
    country's plan), :data:`NOT_MOBILE` — or None when it can."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return NOT_A_NUMBER
    if not phonenumbers.is_valid_number(number):
        return NOT_A_NUMBER
    return None if phonenumbers.number_type(number) in SMS_TYPES else NOT_MOBILE


def shop_phone(raw: str | None, region: object = None) -> str | None:
    """A phone from a shop's webhook in E.164, read in ``region`` (the order's billing
    country) when it has no country code; None when it is no usable number. A door never
    refuses a shop's order or cart over a phone: it leaves the phone out."""
    if not raw:
        return None
    country = region.strip().upper() if isinstance(region, str) and region.strip() else None
    try:
        return check_phone(raw, country if country and len(country) == 2 else None)
    except ValueError:
        return None
