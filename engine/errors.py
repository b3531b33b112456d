"""Every error cartflow raises on purpose, under one root (httpx ``_exceptions.py``)::

    CartflowError
     ├── ConfigError             the configuration is refused; ``problems`` lists them all
     ├── EventError              bad event input; ``errors`` has ``{"loc", "msg"}`` each
     ├── EventConflict           an event id already stored with a different body
     ├── ConditionError          a condition does not compile; ``column`` is 1-based
     ├── RenderError             a message cannot be rendered (template, block or name)
     ├── TemplateLimitError      a template refused before compiling   (cartflow.engine.prechecks)
     ├── LimitError              an evaluation reached its limits      (cartflow.engine.limits)
     └── CliError                a mistake on the command line, exit ``code``
          │                      (cartflow.workers.errors)
          └── NoDatabase         a read-only command found nothing to read, exit 1

Each keeps the standard base it always had, so older ``except`` clauses still match:
``EventError`` and ``ConditionError`` are each a ``ValueError``, ``TemplateLimitError`` is
Jinja's ``TemplateSyntaxError`` and ``LimitError`` its ``SecurityError`` (those two live
next to the Jinja code they belong to). ``CliError`` lives in :mod:`cartflow.workers.errors`: the
engine has no command line. Classes stay importable where they were defined before
(``cartflow.engine.scenario.loader.ConfigError``, ``cartflow.engine.events.EventError``…).

Not in the tree, on purpose: bugs (``cartflow.engine.context_schema.ContextMismatch`` is an
``AssertionError``) and a provider's own ``ProviderSettingsError`` (``providers``).

:func:`did_you_mean` is the one hint every "unknown name" message uses.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


class CartflowError(Exception):
    """The root: every error cartflow raises on purpose."""


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``" — did you mean 'close'?"`` for the option closest to ``word``, else ``""``
    (callers add their own fallback, e.g. the list of known names)."""
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" — did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True, order=True)
class Problem:
    """One finding: an ``error`` refuses the configuration, a ``warning`` does not."""

    file: str
    line: int
    column: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        tag = "" if self.severity == "error" else "warning: "
        return f"{self.file}:{self.line}:{self.column}: {tag}{self.message}"


class ConfigError(CartflowError):
    """The configuration is invalid; ``problems`` has every error (and warning) found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        super().__init__(
            f"{len(errors)} problem(s) in the configuration:\n" + "\n".join(map(str, errors))
        )


class EventError(CartflowError, ValueError):
    """Bad input: ``errors`` is a list of ``{"loc", "msg"}`` with dotted field paths."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e['loc']}: {e['msg']}" for e in errors))


class EventConflict(CartflowError):
    """An event id already stored (or repeated in the batch) with a different body.

    ``errors`` has one ``{"loc", "msg"}`` per offending event; nothing was stored."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(e["msg"] for e in errors))
        self.errors = errors


class ConditionError(CartflowError, ValueError):
    """A condition that cannot be compiled; ``column`` is 1-based within the expression."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


class RenderError(CartflowError):
    """A message could not be rendered (missing template, block or name)."""


__all__ = [
    "CartflowError",
    "ConditionError",
    "ConfigError",
    "EventConflict",
    "EventError",
    "Problem",
    "RenderError",
    "did_you_mean",
]
