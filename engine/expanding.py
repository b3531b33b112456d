"""Methods of ``str`` and Jinja filters that can build text or lists much longer than
their input (``center``, ``replace``, ``join``, ``format``...), and the check each gets
before it runs: :data:`METHOD_CHECKS` and :data:`FILTER_CHECKS`.

A check works on what is known: at run time everything, before compiling
(:mod:`cartflow.engine.prechecks`) only the constant parts, the rest being :data:`UNKNOWN`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import filters as jinja_filters
from jinja2.runtime import Undefined

from cartflow.engine.limits import LimitError, Limits, check_printf, size_of, too_long

#: A check gets the limits, the value, the positional and keyword arguments; it raises
#: :class:`LimitError` or returns the value to use (an iterable may come back as a list).
Check = Callable[[Limits, Any, tuple[Any, ...], Mapping[str, Any]], Any]
#: What :func:`~cartflow.engine.prechecks.check_limits` cannot know before run time.
UNKNOWN: Any = object()


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, UNKNOWN)


def _width(index: int, name: str) -> Check:
    def check(limits: Limits, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        width = _arg(args, kwargs, index, name)
        if isinstance(width, str):
            width = len(width)
        if isinstance(width, int) and width > limits.max_length:
            raise too_long(f"a width of {width:,}", width, limits)
        lines = value.count("\n") + 1 if isinstance(value, str) else 1
        if isinstance(width, int) and width * lines > limits.max_length:
            raise too_long(f"a width of {width:,} on {lines:,} lines", width * lines, limits)
        return value

    return check


def _replace(old_index: int) -> Check:
    def check(limits: Limits, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        old, new = _arg(args, kwargs, old_index, "old"), _arg(args, kwargs, old_index + 1, "new")
        count = _arg(args, kwargs, old_index + 2, "count")
        if isinstance(old, str) and isinstance(new, str) and isinstance(value, str):
            found = value.count(old) if old else len(value) + 1
            if isinstance(count, int) and count >= 0:
                found = min(found, count)
            size = len(value) + found * (len(new) - len(old))
            if size > limits.max_length:
                raise too_long("replace()", size, limits)
        return value

    return check


def _join(sep_index: int | None) -> Check:
    def check(limits: Limits, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        items = value
        sep: Any = ""
        if sep_index is None:  # str.join: the text is the separator, the argument the items
            sep, items = value, _arg(args, kwargs, 0, "iterable")
        else:
            sep = _arg(args, kwargs, sep_index, "d")
        if items is UNKNOWN or isinstance(items, Undefined):
            return value
        items = list(items)
        size = sum(size_of(i) if isinstance(i, str) else len(str(i)) for i in items)
        size += max(len(items) - 1, 0) * (len(sep) if isinstance(sep, str) else 0)
        if size > limits.max_length:
            raise too_long("join()", size, limits)
        return items if sep_index is not None else value

    return check


def _count(index: int, name: str) -> Check:
    def check(limits: Limits, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        count = _arg(args, kwargs, index, name)
        if isinstance(count, int) and count > limits.max_length:
            raise too_long(f"{name} {count:,}", count, limits)
        return value

    return check


def _wordwrap(limits: Limits, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    width, wrap = _arg(args, kwargs, 0, "width"), _arg(args, kwargs, 2, "wrapstring")
    if isinstance(wrap, str) and isinstance(value, str):
        lines = len(value) // max(width if isinstance(width, int) else 79, 1) + 1
        if len(value) + lines * len(wrap) > limits.max_length:
            raise too_long("wordwrap()", len(value) + lines * len(wrap), limits)
    return value


def _printf(limits: Limits, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        check_printf(value, limits)
    return value


def _translate(limits: Limits, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    table = _arg(args, kwargs, 0, "table")
    if isinstance(table, Mapping) and isinstance(value, str):
        longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
        if longest * len(value) > limits.max_length:
            raise too_long("translate()", longest * len(value), limits)
    return value


def _expandtabs(
    limits: Limits, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> Any:
    size = _arg(args, kwargs, 0, "tabsize")
    size = 8 if size is UNKNOWN else size
    if isinstance(size, int) and isinstance(value, str | bytes):
        tabs = value.count("\t") if isinstance(value, str) else value.count(b"\t")
        total = len(value) + tabs * size
        if total > limits.max_length:
            raise too_long("expandtabs()", total, limits)
    return value


def _numbers_only(
    limits: Limits, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> Any:
    start = _arg(args, kwargs, 1, "start")
    if start is not UNKNOWN and not isinstance(start, int | float):
        raise LimitError("sum() adds numbers only (adding lists or text takes quadratic time)")
    return value


def _json_indent(
    limits: Limits, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> Any:
    indent = _arg(args, kwargs, 0, "indent")
    if isinstance(indent, str):
        indent = len(indent)
    if isinstance(indent, int) and indent > 16:
        raise LimitError(f"tojson(indent={indent}): indent by at most 16")
    return value


#: Methods of ``str`` (and ``bytes``) that can build text much longer than their input.
METHOD_CHECKS: Mapping[str, Check] = {
    "center": _width(0, "width"),
    "ljust": _width(0, "width"),
    "rjust": _width(0, "width"),
    "zfill": _width(0, "width"),
    "expandtabs": _expandtabs,
    "replace": _replace(0),
    "join": _join(None),
    "translate": _translate,
}
#: Filters that can build text or lists much longer than their input, and the originals.
FILTER_CHECKS: Mapping[str, tuple[Check, Callable[..., Any]]] = {
    "center": (_width(0, "width"), jinja_filters.do_center),
    "indent": (_width(0, "width"), jinja_filters.do_indent),
    "wordwrap": (_wordwrap, jinja_filters.do_wordwrap),
    "format": (_printf, jinja_filters.do_format),
    "replace": (_replace(0), jinja_filters.do_replace),
    "join": (_join(0), jinja_filters.sync_do_join),
    "batch": (_count(0, "linecount"), jinja_filters.do_batch),
    "slice": (_count(0, "slices"), jinja_filters.sync_do_slice),
    "sum": (_numbers_only, jinja_filters.sync_do_sum),
    "tojson": (_json_indent, jinja_filters.do_tojson),
}
