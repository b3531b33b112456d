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
``plural`` ("3 товара"), ``number``, ``date`` (:mod:`cartflow.engine.template_filters`).

The ``html`` block is rendered with autoescape on (what it prints is HTML-escaped: a
shopper's name or an item's title never becomes markup); every other block is plain
text and left as it is (:mod:`cartflow.engine.template_sandbox`, which also bounds the
parts of the templates). A :class:`TemplateSet` reads its files once, when the
configuration loads, so a template edited on disk changes nothing until that new
configuration has been validated and loaded; rendering a message runs within
:data:`~cartflow.engine.sandbox.TEMPLATE_LIMITS`. How many parts an SMS text needs is
:mod:`cartflow.engine.sms`'s :class:`SmsShape`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChainableUndefined,
    Environment,
    TemplateError,
    TemplateNotFound,
    nodes,
    select_autoescape,
)

# An ``X as X`` import re-exports a name defined here before (still imported from here).
from cartflow.engine.context_schema import TEMPLATE_NAMES
from cartflow.engine.errors import RenderError as RenderError
from cartflow.engine.sandbox import TEMPLATE_LIMITS, TemplateLimitError, evaluation
from cartflow.engine.sms import SmsShape as SmsShape
from cartflow.engine.template_filters import FILTERS
from cartflow.engine.template_sandbox import HTML_BLOCKS as HTML_BLOCKS
from cartflow.engine.template_sandbox import MAX_TEMPLATE_NODES as MAX_TEMPLATE_NODES
from cartflow.engine.template_sandbox import MAX_TEMPLATE_SET_NODES as MAX_TEMPLATE_SET_NODES
from cartflow.engine.template_sandbox import TemplateSandbox as TemplateSandbox

#: Largest template file, in bytes (an email with inline styles is a few dozen KB).
MAX_TEMPLATE_BYTES = 256 * 1024

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
        self.env.filters.update(FILTERS)

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
