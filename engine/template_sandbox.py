"""The sandbox templates are compiled in: the bounded Jinja sandbox
(:mod:`cartflow.engine.sandbox`) with a limit on the parts of one template and of all of
them together, and autoescape on for the HTML blocks.

What an ``html`` block prints is HTML-escaped, as if it were written inside
``{% autoescape true %}``, and so are the ``*.html.j2`` templates it may include: a
shopper's name or an item's title never becomes markup. It cannot print another block
(``self.text``), which would not be escaped.
"""

from __future__ import annotations

from typing import Any

from jinja2 import nodes

from cartflow.engine.sandbox import Sandbox, TemplateLimitError

#: Most parts (texts, names, filters, tags...) of one template once parsed: the shipped
#: email has about 150; compiling costs 0.05 to 0.25 ms a part.
MAX_TEMPLATE_NODES = 5_000
#: Most parts of all the templates of one configuration together (the shipped ones have
#: about 750).
MAX_TEMPLATE_SET_NODES = 10_000
#: Blocks that are HTML: rendered with autoescape on.
HTML_BLOCKS = frozenset({"html"})


class TemplateSandbox(Sandbox):
    """The template sandbox: blocks in :data:`HTML_BLOCKS` (and blocks inside them) are
    autoescaped, as if they were written inside ``{% autoescape true %}``, and so are
    templates named ``*.html.j2``, the only ones an HTML block may include. A template
    has at most :data:`MAX_TEMPLATE_NODES` parts, all of them together
    :data:`MAX_TEMPLATE_SET_NODES`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Parts of each template parsed so far, by name (for MAX_TEMPLATE_SET_NODES).
        self.parts: dict[str, int] = {}
        self._parsed: dict[tuple[str, str], nodes.Template] = {}

    def parse(
        self, source: str, name: str | None = None, filename: str | None = None
    ) -> nodes.Template:
        """The checked, guarded tree; one parsed by name is compiled next without parsing
        again (validation reads the tree, then compiles the template)."""
        tree = super().parse(source, name, filename)
        if name is not None:
            self._parsed[(name, source)] = tree
        return tree

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        if name is None:
            return super()._parse(source, name, filename)
        parsed = self._parsed.pop((name, source), None)
        if parsed is not None:
            return parsed
        if name not in self.parts and sum(self.parts.values()) >= MAX_TEMPLATE_SET_NODES:
            raise _too_many_parts(name, filename)
        return super()._parse(source, name, filename)

    def check(self, tree: nodes.Template, name: str | None = None) -> None:
        stack: list[nodes.Node] = [tree]
        count = 0
        while stack:
            node = stack.pop()
            count += 1
            if count > MAX_TEMPLATE_NODES:
                raise TemplateLimitError(
                    f"template of more than {MAX_TEMPLATE_NODES:,} parts (MAX_TEMPLATE_NODES); "
                    "split it, or move repeated parts into a macro",
                    node.lineno,
                )
            stack.extend(node.iter_child_nodes())
        if name is not None:
            self.parts[name] = count
            if sum(self.parts.values()) > MAX_TEMPLATE_SET_NODES:
                del self.parts[name]
                raise _too_many_parts(name, None)
        super().check(tree, name)
        for block in _html_blocks(tree):
            for node in block.find_all((nodes.Include, nodes.Getattr)):
                if isinstance(node, nodes.Include) and not _html_name(node.template):
                    raise TemplateLimitError(
                        "an html block can include only HTML templates, named *.html.j2 "
                        "(escaped as well); rename the file or write the HTML here",
                        node.lineno,
                        "include",
                    )
                if isinstance(node, nodes.Getattr) and _is_name(node.node, "self"):
                    raise TemplateLimitError(
                        f"an html block cannot print the block '{node.attr}' (it would not "
                        "be escaped); write the HTML here",
                        node.lineno,
                        "self.",
                    )

    def guard(self, tree: nodes.Template) -> nodes.Template:
        for block in _html_blocks(tree):
            on = nodes.Keyword("autoescape", nodes.Const(True), lineno=block.lineno)
            block.body = [nodes.ScopedEvalContextModifier([on], block.body, lineno=block.lineno)]
        return super().guard(tree)


def _too_many_parts(name: str, filename: str | None) -> TemplateLimitError:
    return TemplateLimitError(
        f"the templates hold more than {MAX_TEMPLATE_SET_NODES:,} parts in all "
        "(MAX_TEMPLATE_SET_NODES); remove unused ones, or share parts through macros",
        1,
        name=name,
        filename=filename,
    )


def _html_blocks(tree: nodes.Template) -> list[nodes.Block]:
    """The blocks of :data:`HTML_BLOCKS` and every block nested in them."""
    found: dict[int, nodes.Block] = {}
    for block in tree.find_all(nodes.Block):
        if block.name in HTML_BLOCKS:
            found[id(block)] = block
            found.update((id(inner), inner) for inner in block.find_all(nodes.Block))
    return list(found.values())


def _html_name(node: nodes.Expr) -> bool:
    return isinstance(node, nodes.Const) and str(node.value).endswith(".html.j2")


def _is_name(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == name
