"""Template rendering (sandboxed Jinja) and how each channel carries a message.

A template is one file per reference and locale, ``templates/<ref>.<locale>.j2``, with one
Jinja block per part of the message:

========= ===============================================
channel   blocks
========= ===============================================
push      ``title``, ``body``, optional ``url``
sms       ``text``
email     ``subject``, ``text``, optional ``html``
messenger ``text``
========= ===============================================

Filters for people's eyes, formatted per locale with Babel: ``money`` ("1 990 ₽"),
``plural`` ("3 товара"), ``number``, ``date``.

The ``html`` block is rendered with autoescape on (what it prints is HTML-escaped: a
shopper's name or an item's title never becomes markup); every other block is plain
text and left as it is. A :class:`TemplateSet` reads its files once, when the
configuration loads, so a template edited on disk changes nothing until that new
configuration has been validated and loaded; rendering a message runs within
:data:`~cartflow.engine.sandbox.TEMPLATE_LIMITS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal
from jinja2 import (
    BaseLoader,
    ChainableUndefined,
    Environment,
    TemplateError,
    TemplateNotFound,
    nodes,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context

from cartflow.engine.context_schema import TEMPLATE_NAMES
from cartflow.engine.errors import RenderError as RenderError  # re-exported (defined here before)
from cartflow.engine.sandbox import TEMPLATE_LIMITS, Sandbox, TemplateLimitError, evaluation

#: Largest template file, in bytes (an email with inline styles is a few dozen KB).
MAX_TEMPLATE_BYTES = 256 * 1024
#: Most parts (texts, names, filters, tags...) of one template once parsed: the shipped
#: email has about 150; compiling costs 0.05 to 0.25 ms a part.
MAX_TEMPLATE_NODES = 5_000
#: Most parts of all the templates of one configuration together (the shipped ones have
#: about 750).
MAX_TEMPLATE_SET_NODES = 10_000
#: Blocks that are HTML: rendered with autoescape on.
HTML_BLOCKS = frozenset({"html"})

#: The blocks each channel needs, and the ones it may have.
REQUIRED_BLOCKS: Mapping[str, tuple[str, ...]] = {
    "push": ("title", "body"),
    "sms": ("text",),
    "email": ("subject", "text"),
    "messenger": ("text",),
}
OPTIONAL_BLOCKS: Mapping[str, tuple[str, ...]] = {"push": ("url",), "email": ("html",)}
#: Names a template may use (the render context, as engine.context_schema declares it).
CONTEXT_NAMES = tuple(TEMPLATE_NAMES)

# GSM 03.38 basic set plus the extension table (extension chars cost two septets).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


def _pack(text: str, per_part: int, wide: Callable[[str], bool]) -> int:
    """Parts of a concatenated SMS: an escape pair (GSM-7) or a surrogate pair (UCS-2)
    is never split across two parts, so a part may carry one unit less."""
    parts, used = 1, 0
    for ch in text:
        size = 2 if wide(ch) else 1
        if used + size > per_part:
            parts, used = parts + 1, 0
        used += size
    return parts


@dataclass(frozen=True)
class SmsShape:
    """How an SMS text travels: encoding, length in units, and the number of parts."""

    encoding: str  # GSM-7 | UCS-2
    length: int
    parts: int
    per_part: int

    @classmethod
    def of(cls, text: str) -> SmsShape:
        wide: Callable[[str], bool]
        if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text):
            # an extended character is an escape pair: two septets
            wide, single, multi, encoding = _GSM_EXTENDED.__contains__, 160, 153, "GSM-7"
        else:
            # UTF-16 code units: characters outside the BMP (emoji) are a surrogate pair
            wide, single, multi, encoding = (lambda ch: ord(ch) > 0xFFFF), 70, 67, "UCS-2"
        length = sum(2 if wide(ch) else 1 for ch in text)
        if length <= single:
            return cls(encoding, length, 1 if length else 0, single)
        return cls(encoding, length, _pack(text, multi, wide), multi)


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


class _ReadOnce(BaseLoader):
    """Template sources read when the configuration loaded (see :class:`TemplateSet`)."""

    def __init__(self, directory: Path) -> None:
        self.sources: dict[str, tuple[str, str]] = {}
        #: File name → why it was not read (too big, not UTF-8).
        self.refused: dict[str, str] = {}
        if not directory.is_dir():
            return
        for path in sorted(directory.rglob("*.j2")):
            name = path.relative_to(directory).as_posix()
            try:
                size = path.stat().st_size
                if size > MAX_TEMPLATE_BYTES:
                    self.refused[name] = (
                        f"template file of {size:,} bytes; the limit is "
                        f"{MAX_TEMPLATE_BYTES:,} (MAX_TEMPLATE_BYTES): move shared parts into "
                        "included templates"
                    )
                    continue
                self.sources[name] = (path.read_text(encoding="utf-8"), str(path))
            except OSError as exc:
                self.refused[name] = f"cannot read template: {exc.strerror}"
            except UnicodeDecodeError:
                self.refused[name] = "template is not UTF-8 text; save it as UTF-8"

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Any]:
        if template in self.refused:
            raise TemplateLimitError(self.refused[template], 1, name=template)
        if template not in self.sources:
            raise TemplateNotFound(template)
        source, filename = self.sources[template]
        return source, filename, lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self.sources)


class TemplateSet:
    """The ``templates/`` directory: lookup by reference and locale, rendering by block.

    The files are read once, here; ``files()`` lists what is on disk now."""

    def __init__(self, directory: Path, default_locale: str = "en") -> None:
        self.directory = Path(directory)
        self.default_locale = default_locale
        self.loader = _ReadOnce(self.directory)
        self.env = TemplateSandbox(
            loader=self.loader,
            undefined=ChainableUndefined,
            autoescape=select_autoescape(["html.j2"], default_for_string=False, default=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            limits=TEMPLATE_LIMITS,
        )
        self.env.filters.update(money=_money, plural=_plural, number=_number, date=_date)

    def files(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(str(p) for p in self.directory.rglob("*.j2"))

    def has(self, name: str) -> bool:
        """Whether the file ``name`` was there when the configuration loaded."""
        return name in self.loader.sources or name in self.loader.refused

    def name_for(
        self, ref: str, locale: str | None, default_locale: str | None = None
    ) -> str | None:
        """The file that serves ``ref`` in ``locale``: exact, then language, then default."""
        tried: list[str] = []
        for candidate in (
            locale,
            (locale or "").split("-")[0].split("_")[0],
            default_locale or self.default_locale,
        ):
            if candidate and candidate not in tried:
                tried.append(candidate)
                name = f"{ref}.{candidate}.j2"
                if self.has(name):
                    return name
        name = f"{ref}.j2"
        return name if self.has(name) else None

    def source(self, name: str) -> str:
        """The text of template ``name``, as read when the configuration loaded."""
        return str(self.loader.get_source(self.env, name)[0])

    def blocks(self, name: str) -> set[str]:
        return {node.name for node in self.env.parse(self.source(name)).find_all(nodes.Block)}

    def render(
        self,
        ref: str,
        channel: str,
        locale: str,
        context: Mapping[str, Any],
        default_locale: str | None = None,
    ) -> dict[str, str]:
        """Render every block of the channel; raises :class:`RenderError` with the reason."""
        name = self.name_for(ref, locale, default_locale)
        if name is None:
            raise RenderError(f"no template {ref!r} for locale {locale!r}")
        try:
            template = self.env.get_template(name)
        except TemplateNotFound:
            raise RenderError(f"no template file {name}") from None
        except (TemplateError, RecursionError, SyntaxError, ValueError, MemoryError) as exc:
            raise RenderError(f"{name} does not compile: {exc}") from None  # not validated
        # Format numbers and plurals in the language the words are in: a German shopper
        # served the Russian fallback reads "2 товара", not "2 товаров".
        suffix = name[len(ref) + 1 : -len(".j2")] if name != f"{ref}.j2" else ""
        full = {**context, "locale": suffix or locale}
        ctx = template.new_context(full)
        parts: dict[str, str] = {}
        with evaluation(self.env.limits):  # one budget for the whole message
            for block in (*REQUIRED_BLOCKS.get(channel, ()), *OPTIONAL_BLOCKS.get(channel, ())):
                if block not in template.blocks:
                    if block in REQUIRED_BLOCKS.get(channel, ()):
                        raise RenderError(
                            f"{name} has no {{% block {block} %}} needed for {channel}"
                        )
                    continue
                try:
                    text = "".join(template.blocks[block](ctx))
                except Exception as exc:  # a template bug must not take the worker down
                    raise RenderError(f"{name} block {block}: {exc}") from None
                parts[block] = text.strip() if block not in HTML_BLOCKS else str(text)
        parts["template"] = name
        return parts


def _locale(ctx: Context) -> Locale:
    code = str(ctx.get("locale") or "en")
    try:
        return Locale.parse(code.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


@pass_context
def _money(ctx: Context, amount: Any, currency: str | None = None) -> str:
    cart = ctx.get("cart")
    code = currency or (cart.get("currency") if isinstance(cart, Mapping) else None) or "USD"
    value = Decimal(str(amount))
    pattern_digits = 0 if value == value.to_integral_value() else 2
    return format_currency(
        value,
        code,
        locale=_locale(ctx),
        currency_digits=False,
        format=None if pattern_digits else _integer_currency_pattern(_locale(ctx)),
    )


def _integer_currency_pattern(locale: Locale) -> str:
    pattern = str(locale.currency_formats["standard"].pattern)
    return pattern.split(";")[0].replace(".00", "").replace(",00", "")


@pass_context
def _plural(
    ctx: Context,
    count: Any,
    one: str = "",
    few: str = "",
    many: str = "",
    other: str = "",
    with_number: bool = True,
) -> str:
    locale = _locale(ctx)
    form = locale.plural_form(abs(int(count)))
    word = {"one": one, "few": few, "many": many}.get(form) or other or many or few or one
    if not with_number:
        return word
    return f"{format_decimal(int(count), locale=locale)}\u00a0{word}"


@pass_context
def _number(ctx: Context, value: Any) -> str:
    return format_decimal(Decimal(str(value)), locale=_locale(ctx))


@pass_context
def _date(ctx: Context, value: Any, fmt: str = "medium") -> str:
    return format_datetime(value, format=fmt, locale=_locale(ctx))
