"""pydantic's validation errors as :class:`Problem` findings a marketer reads: at the key's
``file:line:column``, in plain words, with a hint (``did you mean 'after'?``); and
:func:`salvage`, the valid part of a document, so one typo does not hide the rest.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cartflow.engine.channels import CHANNELS
from cartflow.engine.errors import Problem, did_you_mean
from cartflow.engine.scenario.yaml_source import Path_, Source

_M = TypeVar("_M", bound=BaseModel)


def pydantic_problems(
    exc: ValidationError, model: type[BaseModel], source: Source, prefix: Path_ = ()
) -> Iterator[Problem]:
    errors = exc.errors()
    located = [_data_loc(e["loc"]) for e in errors]
    for err, data_loc in zip(errors, located, strict=True):
        full = (*prefix, *data_loc)
        if err["type"] == "too_short" and any(
            other[: len(data_loc)] == data_loc and len(other) > len(data_loc) for other in located
        ):
            continue  # "steps: should have at least 1 item" only echoes a broken step
        msg = _in_marketer_words(err) or str(err["msg"]).removeprefix("Value error, ").removeprefix(
            "Assertion failed, "
        )
        if err["type"] == "extra_forbidden":
            key = str(data_loc[-1])
            known = _fields_at(model, data_loc[:-1])
            hint = did_you_mean(key, known) or f" (known keys: {', '.join(known)})"
            line, col = source.where(full, key=True)
            yield Problem(source.path, line, col, f"unknown key '{key}'{hint}")
            continue
        if err["type"] == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            options = re.findall(r"'([^']*)'", expected)
            name = next((str(p) for p in reversed(data_loc) if isinstance(p, str)), "value")
            hint = did_you_mean(str(err.get("input")), options) or f" (expected {expected})"
            if name == "on" and "expected" not in hint:  # few: always list every one
                hint += f" (expected {expected})"
            channels = bool(options) and set(options) <= set(CHANNELS)
            noun = "channel" if channels else _NOUNS.get(name, name)
            line, col = source.where(full)
            yield Problem(source.path, line, col, f"unknown {noun} {err.get('input')!r}{hint}")
            continue
        if err["type"] == "missing":
            line, col = source.where(full[:-1])
            yield Problem(source.path, line, col, f"missing required key '{data_loc[-1]}'")
            continue
        line, col = source.where(full)
        where = ".".join(str(p) for p in data_loc)
        yield Problem(source.path, line, col, f"{where}: {msg}" if where else msg)


def _in_marketer_words(err: Any) -> str | None:
    """pydantic's wording ("Input should be less than or equal to 100") in words a
    marketer reads, with an example; None to keep pydantic's own."""
    kind, ctx = err["type"], err.get("ctx") or {}
    bounds = {
        "greater_than": "more than {gt}",
        "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        return f"must be {bounds[kind].format(**ctx)}; got {err.get('input')!r}"
    words = {
        "int_parsing": "must be a whole number, e.g. 3",
        "int_type": "must be a whole number, e.g. 3",
        "int_from_float": "must be a whole number, e.g. 3",
        "float_parsing": "must be a number, e.g. 2.5",
        "float_type": "must be a number, e.g. 2.5",
        "decimal_parsing": "must be a number, e.g. 2.5",
        "decimal_type": "must be a number, e.g. 2.5",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "string_type": "must be text; put it in quotes",
        "list_type": "must be a list, e.g. [a, b]",
        "tuple_type": "must be a list, e.g. [a, b]",
        "dict_type": "must be a mapping of keys to values",
        "model_type": "must be a mapping of keys to values",
        "model_attributes_type": "must be a mapping of keys to values",
    }
    if kind in words:
        return f"{words[kind]}; got {err.get('input')!r}"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return f"needs at least {least} item{'s' if least != 1 else ''}"
    if kind == "string_pattern_mismatch":
        return (
            f"{err.get('input')!r} does not fit: use lowercase letters, digits and '_' "
            f"(pattern {ctx.get('pattern')})"
            if "a-z0-9_" in str(ctx.get("pattern")) and "A-Z" not in str(ctx.get("pattern"))
            else f"{err.get('input')!r} does not match the expected form {ctx.get('pattern')}"
        )
    return None


#: How a literal error names the value it rejects, by field.
_NOUNS = {"exit_on": "exit event", "on": "trigger event", "unless": "engagement"}


def _data_loc(loc: tuple[str | int, ...]) -> Path_:
    """The data path of a pydantic error, without the segments unions and validators add
    (``function-after[...]``, ``[key]``, ``literal[...]``)."""
    return tuple(
        part
        for part in loc
        if isinstance(part, int) or not ("[" in part or part.startswith("function"))
    )


def salvage(
    model: type[_M], document: dict[str, Any], track: str | None = None
) -> tuple[_M, tuple[int, ...]] | None:
    """The valid part of a ``document`` whose errors are already reported, so the checks
    that follow still see the rest: a typo in one step must not hide a broken template in
    another, nor a bad time zone turn every segment "undefined". Drops the node of each
    error (the containing mapping or list item for a missing key) until the rest validates;
    returns it with the original indexes of the items kept in the list ``track``, or None
    when nothing useful is left."""
    document = copy.deepcopy(document)
    tracked = document.get(track) if track else None
    kept = list(range(len(tracked))) if isinstance(tracked, list) else []
    for _ in range(100):
        try:
            return model.model_validate(document), tuple(kept)
        except ValidationError as exc:
            error = exc.errors()[0]
        loc = _data_loc(error["loc"])
        if error["type"] == "missing":
            loc = loc[:-1]
        if len(loc) < 1 + (loc[:1] == (track,)):
            return None  # the document (or the tracked list itself) is what failed
        try:
            parent: Any = document
            for part in loc[:-1]:
                parent = parent[part]
            del parent[loc[-1]]
        except (KeyError, IndexError, TypeError):
            return None
        if loc[:1] == (track,) and len(loc) == 2 and isinstance(loc[1], int):
            del kept[loc[1]]
    return None


def _fields_at(model: type[BaseModel], loc: Path_) -> list[str]:
    """Field names of the model found at ``loc`` (walking nested models and lists)."""
    import typing

    current: Any = model
    keyed = False  # the part after a mapping field is one of its keys (doors.<name>)
    for part in loc:
        if isinstance(part, int):
            continue
        if keyed:
            keyed = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(str(part))
        if info is None:
            return []
        current = _inner_model(info.annotation, typing)
        keyed = typing.get_origin(info.annotation) is dict
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any, typing: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg, typing)
        if found is not None:
            return found
    return None
