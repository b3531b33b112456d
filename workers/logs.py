"""structlog set-up: JSON lines in production, readable lines on a console.

A last processor scrubs anything shaped like an email address or a phone number from
every value, so personal contact data never reaches a log even by mistake. Phone numbers
are found by ``phonenumbers.PhoneNumberMatcher`` (so national formats such as
``8 (999) 123-45-67`` are caught for the shop's region, see :func:`configure`), plus any
``+``-prefixed international number in whatever punctuation. Ids and times never look like
phones: a 16+ character hex id, a UUID or an ISO date/timestamp passes unchanged.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import phonenumbers
import structlog

from cartflow.workers.settings import DEFAULT_PHONE_REGION, env_phone_region

#: An email address in any case, with ``+tags`` or non-Latin names: ``Anna.B+promo@Example.COM``.
_EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.\w{2,}")
#: ``+`` and 6-17 digits in any punctuation: international, even if no region thinks it valid.
_INTERNATIONAL = re.compile(r"(?:\+|(?<!\d)00)\d(?:[\s()./-]{0,3}\d){5,16}")
#: An ISO date of 1900-2099 (``0594-10-12 34`` is a phone number in French Guiana).
_DATE = r"(?<![\d+])(?:19|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
#: The time and offset an ISO timestamp may add to a date.
_TIME = r"[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2}(?::\d{2}(?:\.\d+)?)?)?)?"
#: Tokens that are never a phone number, whatever digits they hold: UUIDs, hex ids of 16+
#: characters (journey and delivery ids are 32), ISO dates and timestamps of 1900-2099.
_NOT_A_PHONE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?<![0-9A-Za-z+])[0-9a-fA-F]{16,}(?![0-9A-Za-z])"
    rf"|{_DATE}(?:{_TIME})?(?!\d)"
)
#: The fewest digits an international number has (``+98 9601``, an Iranian UAN).
_FEWEST_INTERNATIONAL_DIGITS = 6

# where national formats are recognised (``8 999 …`` in RU, ``(415) …`` in US); configure()
_phone_region = DEFAULT_PHONE_REGION


def scrub(value: Any, region: str | None = None) -> Any:
    """``value`` with every email address and phone number replaced by ``[email]`` /
    ``[phone]``; dicts, lists and tuples are scrubbed item by item. ``region`` is the
    region for national phone formats (default: the one :func:`configure` set)."""
    if isinstance(value, str):
        return _scrub_text(value, region or _phone_region)
    if isinstance(value, dict):
        return {scrub(k, region): scrub(v, region) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v, region) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # anything else (an exception, an object) is logged as its text: scrub that
    return _scrub_text(str(value), region or _phone_region)


def _scrub_text(text: str, region: str) -> str:
    text = _EMAIL.sub("[email]", text)
    if sum(c.isdigit() for c in text) < _fewest_digits(region) or _NOT_A_PHONE.fullmatch(text):
        return text
    kept = [match.span() for match in _NOT_A_PHONE.finditer(text)]

    def is_kept(start: int, end: int) -> bool:
        return any(start < kept_end and kept_start < end for kept_start, kept_end in kept)

    spans = [
        (match.start, match.end)
        for match in phonenumbers.PhoneNumberMatcher(text, region)
        if not is_kept(match.start, match.end)
    ]
    spans += [m.span() for m in _INTERNATIONAL.finditer(text) if not is_kept(*m.span())]
    merged: list[tuple[int, int]] = []  # overlapping finds become one [phone]
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    for start, end in reversed(merged):
        text = f"{text[:start]}[phone]{text[end:]}"
    return text


@functools.cache
def _fewest_digits(region: str) -> int:
    """Text with fewer digits than this holds no phone number, national to ``region``
    (RU: 10) or international: it skips the matcher."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    general = metadata.general_desc if metadata is not None else None
    lengths: tuple[int, ...] = tuple(general.possible_length) if general is not None else ()
    return min((*lengths, _FEWEST_INTERNATIONAL_DIGITS))


def scrub_contacts(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if key not in ("timestamp", "level", "logger"):
            event_dict[key] = scrub(value)
    return event_dict


def _factory(stream: Any) -> Any:
    """Write to ``stream``, or to whatever ``sys.stderr`` is at the time of each call
    (so a redirected or replaced stderr never leaves a logger writing to a closed file)."""

    def make(*_: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(stream or sys.stderr)

    return make


def configure(
    fmt: str = "json",
    level: int = logging.INFO,
    stream: Any = None,
    phone_region: str | None = None,
) -> None:
    """Set up structlog. ``phone_region`` (an ISO 3166 code; default
    ``CARTFLOW_PHONE_REGION``, else ``RU``) is where national phone
    formats are recognised for scrubbing; raises ``ValueError`` for a region unknown to
    ``phonenumbers``."""
    global _phone_region
    region = (phone_region or env_phone_region()).upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"phone region {region!r} is unknown; use a two-letter country code such as 'RU'"
        )
    _phone_region = region
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            scrub_contacts,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_factory(stream),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING, stream=stream or sys.stderr)
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
