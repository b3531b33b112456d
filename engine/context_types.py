"""The building blocks of the context's declaration (:mod:`cartflow.engine.context_schema`):
what kind a value is, a declared :class:`Type`, and the helpers that declare one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from cartflow.engine.sandbox import CLOCK_READERS


class Kind(StrEnum):
    """What a value is, as a marketer reads it."""

    NUMBER = "number"
    TEXT = "text"
    FLAG = "true/false"
    TIME = "date and time"
    NAMES = "set of names"
    LIST = "list"
    RECORD = "record"


def _public(*types: type) -> frozenset[str]:
    return frozenset(n for t in types for n in dir(t) if not n.startswith("_"))


#: Attributes a value of each simple kind has (its Python type's own; no clock readers).
KIND_ATTRIBUTES: Mapping[Kind, frozenset[str]] = {
    Kind.NUMBER: _public(int, float),
    Kind.TEXT: _public(str),
    Kind.FLAG: _public(int),
    Kind.TIME: _public(datetime) - CLOCK_READERS,
    Kind.NAMES: _public(frozenset),
    Kind.LIST: frozenset({"count", "index"}),
}


@dataclass(frozen=True)
class Type:
    """One value of the context: its kind, what it means, and for a record its attributes
    (``open``: others may exist), for a list the type of its elements. ``nullable``: it
    may be empty (``None``) — e.g. ``customer.first_name`` of an anonymous shopper."""

    kind: Kind
    description: str
    fields: Mapping[str, Type] = field(default_factory=dict)
    open: bool = False
    element: Type | None = None
    nullable: bool = False

    def attribute(self, name: str) -> Type | None:
        """The declared type of attribute ``name``; None when it is allowed but not
        declared (an open record, a method). Raises KeyError when there is no such one."""
        if self.kind is Kind.RECORD:
            if name in self.fields:
                return self.fields[name]
            if self.open:
                return None
            raise KeyError(name)
        if name in KIND_ATTRIBUTES.get(self.kind, frozenset()):
            return None
        raise KeyError(name)

    def known(self) -> list[str]:
        """Names to suggest for a misspelt attribute."""
        if self.kind is Kind.RECORD:
            return list(self.fields)
        return sorted(KIND_ATTRIBUTES.get(self.kind, frozenset()))


def _value(kind: Kind, description: str, *, nullable: bool = False) -> Type:
    return Type(kind, description, nullable=nullable)


def number(description: str, *, nullable: bool = False) -> Type:
    return _value(Kind.NUMBER, description, nullable=nullable)


def text(description: str, *, nullable: bool = False) -> Type:
    return _value(Kind.TEXT, description, nullable=nullable)


def flag(description: str) -> Type:
    return _value(Kind.FLAG, description)


def time(description: str, *, nullable: bool = False) -> Type:
    return _value(Kind.TIME, description, nullable=nullable)


def record(description: str, *, open: bool = False, nullable: bool = False, **fields: Type) -> Type:
    return Type(Kind.RECORD, description, fields=fields, open=open, nullable=nullable)
