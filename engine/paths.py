"""Every dotted path in a condition or a template, checked against the context schema
(:mod:`cartflow.engine.context_schema`) before anything runs.

``cart.valeu`` → "unknown attribute 'valeu' of 'cart' — did you mean 'value'?", at the
line and column of ``valeu``. The walk follows Jinja's tree: ``Getattr`` (``cart.value``),
``Getitem`` with a constant (``cart["items"]``, ``cart.items[0]``) and ``Name``, through
``{% for item in cart.items %}`` (``item`` is one of the cart's items) and
``{% set total = cart.value %}`` (``total`` is a number). What a filter, a call or an
open record returns is not guessed at: the walk stops checking there.

:func:`unguarded_reads` finds attribute reads of a name that may be empty (``discount``
on a step without one) outside ``{% if discount %}``, ``… if discount`` or
``discount and …``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from jinja2 import nodes

from cartflow.engine.context_schema import Kind, Type
from cartflow.engine.errors import did_you_mean

#: Filters the sandbox's guard wraps what is written in (engine.sandbox._Guard).
INTERNAL = "_cf_"
#: What a name in scope holds: a declared type, or None (not known: not checked).
Scope = dict[str, Type | None]


@dataclass(frozen=True)
class PathError:
    """An unknown attribute: ``column`` (1-based) is where it is on line ``lineno``."""

    message: str
    lineno: int
    column: int


def check_paths(tree: nodes.Node, names: Mapping[str, Type], source: str) -> list[PathError]:
    """Every unknown attribute in ``tree`` (parsed from ``source``), in the order written."""
    walker = _Walker(names, source.splitlines())
    walker.walk(tree, {})
    return sorted(walker.errors, key=lambda e: (e.lineno, e.column))


class _Walker:
    def __init__(self, names: Mapping[str, Type], lines: list[str]) -> None:
        self.names = names
        self.lines = lines
        self.errors: list[PathError] = []
        self._seen: set[tuple[int, int]] = set()

    # -- statements and expressions
    def walk(self, node: nodes.Node, scope: Scope) -> None:
        if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
            self.resolve(node, scope)
        elif isinstance(node, nodes.For):
            self.walk(node.iter, scope)
            inner = dict(scope)
            iterated = self.resolve(node.iter, scope)
            element = iterated.element if iterated and iterated.kind is Kind.LIST else None
            self._bind(node.target, element, inner)
            inner["loop"] = None
            for child in (*node.body, *([node.test] if node.test else [])):
                self.walk(child, inner)
            for child in node.else_:
                self.walk(child, scope)
        elif isinstance(node, nodes.Assign):
            self.walk(node.node, scope)
            self._bind(node.target, self.resolve(node.node, scope), scope)
        elif isinstance(node, nodes.AssignBlock):
            for child in node.body:
                self.walk(child, scope)
            self._bind(node.target, None, scope)
        elif isinstance(node, nodes.Macro | nodes.CallBlock):
            inner = dict(scope)
            for arg in node.args:
                self._bind(arg, None, inner)
            inner.update(caller=None, varargs=None, kwargs=None)
            for child in node.iter_child_nodes():
                self.walk(child, inner)
        else:
            for child in node.iter_child_nodes():
                self.walk(child, scope)

    def _bind(self, target: nodes.Node, declared: Type | None, scope: Scope) -> None:
        if isinstance(target, nodes.Name):
            scope[target.name] = declared
        else:  # a tuple: for key, value in ...
            for name in target.find_all(nodes.Name):
                scope[name.name] = None

    def resolve(self, node: nodes.Node, scope: Scope) -> Type | None:
        """The declared type of ``node`` (None: not known); reports unknown attributes."""
        found = self._path(node, scope)
        return found[0] if found else None

    def _path(self, node: nodes.Node, scope: Scope) -> tuple[Type, str, str] | None:
        """(type, path as written for people, the text just before what follows)."""
        if isinstance(node, nodes.Name):
            declared = scope[node.name] if node.name in scope else self.names.get(node.name)
            return (declared, node.name, re.escape(node.name)) if declared else None
        if isinstance(node, nodes.Getattr):
            return self._attribute(node, node.node, node.attr, scope, r"\s*\.\s*")
        if isinstance(node, nodes.Getitem):
            self.walk(node.arg, scope)
            key = node.arg.value if isinstance(node.arg, nodes.Const) else None
            if isinstance(key, str):
                return self._attribute(node, node.node, key, scope, r"\s*\[\s*['\"]")
            parent = self._path(node.node, scope)
            if parent is None or parent[0].kind is not Kind.LIST or parent[0].element is None:
                return None
            shown = f"{parent[1]}[{key}]" if isinstance(key, int) else f"{parent[1]}[…]"
            return parent[0].element, shown, r"\]"
        if isinstance(node, nodes.Filter) and node.name.startswith(INTERNAL) and node.node:
            return self._path(node.node, scope)  # the sandbox's guard, not a marketer's filter
        self.walk(node, scope)
        return None

    def _attribute(
        self, node: nodes.Node, of: nodes.Node, name: str, scope: Scope, joint: str
    ) -> tuple[Type, str, str] | None:
        parent = self._path(of, scope)
        if parent is None:
            return None
        declared, path, before = parent
        try:
            inner = declared.attribute(name)
        except KeyError:
            self._unknown(node, declared, path, before, joint, name)
            return None
        if inner is None:
            return None
        return inner, f"{path}.{name}", re.escape(name) + (r"['\"]\s*\]" if "[" in joint else "")

    def _unknown(
        self, node: nodes.Node, declared: Type, path: str, before: str, joint: str, name: str
    ) -> None:
        lineno = node.lineno or 1
        line = self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""
        column = 1
        for pattern in (rf"{before}{joint}({re.escape(name)})\b", rf"({re.escape(name)})\b"):
            match = re.search(pattern, line)
            if match:
                column = match.start(1) + 1
                break
        if (lineno, column) in self._seen:
            return
        self._seen.add((lineno, column))
        hint = did_you_mean(name, declared.known()) or (
            f" (it has: {', '.join(declared.known())})"
            if declared.kind is Kind.RECORD
            else f" ('{path}' is a {declared.kind})"
        )
        self.errors.append(
            PathError(f"unknown attribute '{name}' of '{path}'{hint}", lineno, column)
        )


def unguarded_reads(tree: nodes.Node, name: str) -> Iterator[nodes.Getattr | nodes.Getitem]:
    """Attribute reads of the variable ``name`` (``discount.code``) not guarded by a test
    of it: ``{% if discount %}``, ``discount.code if discount``, ``discount and …``
    (``{% if not discount %}`` guards its ``else``)."""
    if isinstance(tree, nodes.If | nodes.CondExpr) and _tests(tree.test, name):
        negated = isinstance(tree.test, nodes.Not)
        if isinstance(tree, nodes.If):
            guarded, open_ = tree.body, [*tree.elif_, *tree.else_]
        else:
            guarded, open_ = [tree.expr1], [tree.expr2] if tree.expr2 is not None else []
        for child in guarded if negated else open_:
            yield from unguarded_reads(child, name)
        return
    if isinstance(tree, nodes.And) and _tests(tree.left, name):
        return
    if isinstance(tree, nodes.Getattr | nodes.Getitem) and _is(tree.node, name):
        yield tree
        return
    for child in tree.iter_child_nodes():
        yield from unguarded_reads(child, name)


def _tests(test: nodes.Node, name: str) -> bool:
    """Whether ``test`` checks ``name`` itself (``discount``, ``discount is defined``)."""
    if _is(test, name):
        return True
    if isinstance(test, nodes.Test | nodes.Not):
        return _tests(test.node, name)
    if isinstance(test, nodes.And):
        return _tests(test.left, name)
    if isinstance(test, nodes.Compare):
        return _is(test.expr, name)
    return False


def _is(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == name
