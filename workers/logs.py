"""structlog set-up: JSON lines in production, readable lines on a console.

A last processor scrubs anything shaped like an email address or a phone number from
every value, so personal contact data never reaches a log even by mistake.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
#: ``+7 999 123-45-67`` and bare runs of 10-15 digits; not dates like 2026-11-23T09:00.
_PHONE = re.compile(r"\+\d[\d\s().-]{7,}\d|(?<![\d.:-])\d{10,15}(?![\d.:-])")


def scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _PHONE.sub("[phone]", _EMAIL.sub("[email]", value))
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


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


def configure(fmt: str = "json", level: int = logging.INFO, stream: Any = None) -> None:
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
