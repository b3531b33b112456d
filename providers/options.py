"""Typed provider settings: each provider declares a :class:`ProviderOptions` model.

A model names every setting a provider takes, its type, its default and whether it is
secret (:class:`~pydantic.SecretStr`: masked in ``repr`` and logs). :func:`problems` turns
what pydantic finds into sentences that name the setting in quotes (the loader points the
``file:line:column`` at it) and never the value, which may come from the environment.

The value types the shipped providers use are here, each with the sentence a marketer
reads when a value does not fit.
"""

from __future__ import annotations

import re
from email.utils import getaddresses
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr, ValidationError
from pydantic_core import PydanticCustomError

from cartflow.engine.errors import did_you_mean


class ProviderOptions(BaseModel):
    """A provider's settings as ``scenarios.yaml`` gives them (unknown keys refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _text(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        return value
    raise PydanticCustomError("cartflow_text", "must be text")


def _url(value: Any) -> Any:
    if isinstance(value, str):
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = None
        if parts is not None and parts.scheme in ("http", "https") and parts.netloc:
            return value
    raise PydanticCustomError("cartflow_url", "must be an http:// or https:// URL")


def _seconds(value: Any) -> Any:
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = -1.0
        if 0 < number <= 600:
            return number
    raise PydanticCustomError(
        "cartflow_seconds", "must be a number of seconds between 0 and 600, e.g. 10"
    )


def _flag(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    raise PydanticCustomError("cartflow_flag", "must be true or false")


def _port(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    else:
        number = 0
    if 0 < number < 65536:
        return number
    raise PydanticCustomError("cartflow_port", "must be a port number between 1 and 65535")


#: An addr-spec as cartflow accepts it: no spaces, no quoting, one ``@``, a dotted or
#: single-label domain (checked with :func:`email.utils.getaddresses` and this pattern —
#: a simple check, not a full RFC 5322 parser).
_ADDR_SPEC = re.compile(r'[^\s@<>()\[\],;:"]+@[^\s@<>()\[\],;:".]+(?:\.[^\s@<>()\[\],;:".]+)*')


def addr_spec(value: str) -> str | None:
    """The one address in ``value`` (``a@b.example`` or ``Name <a@b.example>``), or None
    when ``value`` is not exactly one address."""
    if "\r" in value or "\n" in value:
        return None
    pairs = getaddresses([value])
    if len(pairs) != 1 or not _ADDR_SPEC.fullmatch(pairs[0][1]):
        return None
    address = pairs[0][1]
    text = value.strip()
    if text != address and not text.endswith(f"<{address}>"):
        return None
    return address


def _email(value: Any) -> Any:
    if isinstance(value, str) and addr_spec(value):
        return value.strip()
    raise PydanticCustomError(
        "cartflow_email",
        "must be an email address, e.g. shop@example.com or Shop <shop@example.com>",
    )


def _mailbox(value: Any) -> Any:
    if isinstance(value, str) and addr_spec(value) == value.strip():
        return value.strip()
    raise PydanticCustomError(
        "cartflow_mailbox", "must be a bare email address, e.g. unsubscribe@example.com"
    )


def _in_code(value: Any) -> Any:
    if value is None:
        return None
    raise PydanticCustomError(
        "cartflow_in_code", "can only be given in code, not in scenarios.yaml"
    )


#: Non-blank text.
Text = Annotated[str, BeforeValidator(_text)]
#: Non-blank text never printed (``repr`` and logs show ``**********``).
Secret = Annotated[SecretStr, BeforeValidator(_text)]
#: An ``http://`` or ``https://`` URL with a host.
Url = Annotated[str, BeforeValidator(_url)]
#: A number of seconds, more than 0 and at most 600.
Seconds = Annotated[float, BeforeValidator(_seconds)]
#: A TCP port, 1 to 65535 (a number, or digits from ``${ENV_VAR}``).
Port = Annotated[int, BeforeValidator(_port)]
#: One email address, with or without a display name: ``Shop <shop@example.com>``.
Email = Annotated[str, BeforeValidator(_email)]
#: One bare email address: ``unsubscribe@example.com``.
Mailbox = Annotated[str, BeforeValidator(_mailbox)]
#: ``true`` or ``false`` (not ``yes``, not 1).
Flag = Annotated[bool, BeforeValidator(_flag)]
#: A setting only code can give (a stream, a client); never from YAML.
InCode = Annotated[None, BeforeValidator(_in_code)]


def problems(provider: str, model: type[ProviderOptions], options: dict[str, Any]) -> list[str]:
    """What is wrong with ``options`` for ``model``: unknown settings (with a hint), missing
    ones, values of the wrong type and the model's own checks across settings (one of two
    required, say: its message names them) — each naming the setting, never its value. A
    value still holding ``${...}`` is skipped (the loader reports the unset variable)."""
    try:
        model.model_validate(options)
    except ValidationError as exc:
        errors = exc.errors()
    else:
        return []
    known = list(model.model_fields)
    found: list[str] = []
    for error in errors:
        key = str(error["loc"][0]) if error["loc"] else ""
        value = error.get("input")
        if not key:  # the model's own check across settings: its message names them
            found.append(f"provider '{provider}' {_sentence(error['msg'])}")
        elif error["type"] == "extra_forbidden":
            hint = did_you_mean(key, known) or f" (known: {', '.join(known) or 'none'})"
            found.append(f"unknown setting '{key}' for provider '{provider}'{hint}")
        elif error["type"] == "missing":
            found.append(f"provider '{provider}' needs setting '{key}'")
        elif isinstance(value, str) and "${" in value:
            continue
        else:
            found.append(f"setting '{key}' of provider '{provider}' {_sentence(error['msg'])}")
    return list(dict.fromkeys(found))


def _sentence(message: str) -> str:
    """pydantic's message, read after "setting 'x' of provider 'y'"."""
    if message.startswith("Input should be"):
        return "should be" + message.removeprefix("Input should be")
    return message.removeprefix("Value error, ")
