"""The context is a schema (engine/context_schema.py): what the engine builds at run time,
what ``validate`` checks and what docs/scenarios.md lists are one declaration."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cartflow.engine.context import build_context
from cartflow.engine.context_schema import (
    CART,
    CONDITION_NAMES,
    TEMPLATE_NAMES,
    VISITOR,
    ContextMismatch,
    Kind,
    names_table,
    view,
)
from cartflow.engine.scenario.loader import Config
from cartflow.engine.store import Database
from cartflow.engine.store.models import Cart, Profile

from ..factories import T0, Run, page_viewed, shopper

DOCS = Path(__file__).resolve().parents[3] / "docs" / "scenarios.md"


def test_the_docs_table_of_names_is_the_generated_one() -> None:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("| name | what | attributes |")
    end = text.index("\n\n", start) + 1
    assert text[start:end] == names_table()


def _attributes(declared: Any, built: Any) -> None:
    """``built`` has every attribute ``declared`` names (and, closed, no other)."""
    if declared.kind is not Kind.RECORD:
        return
    assert isinstance(built, dict)
    if declared.open:
        assert set(declared.fields) <= set(built)
    else:
        assert set(built) == set(declared.fields)


def test_build_context_provides_exactly_what_the_schema_declares(
    shipped_config: Config, db: Database
) -> None:
    # Given a shopper with a cart, a visit, a cart-less order (the engine's bookkeeping)
    # and a feature the shop added itself
    run = Run.start(shipped_config, db)
    run.batch([shopper(T0), page_viewed(T0, session_id="s-1")], until=timedelta(0))
    with db.sessions() as session:
        profile = session.scalars(select(Profile)).one()
        cart = session.scalars(select(Cart)).one()
        profile.attributes = {
            "last_order_at": T0.isoformat(),
            "last_order_id": "o-1",
            "vip_level": 3,
            "sessions": 99,  # cannot shadow the declared one
            "_hidden": 1,
        }

        # When the engine builds the context
        context = build_context(session, shipped_config, profile, cart, T0)

    # Then every declared name and attribute is there, and nothing else
    assert set(context) - {"_failed"} == set(CONDITION_NAMES)
    for name, declared in CONDITION_NAMES.items():
        _attributes(declared, context[name])
    assert set(context["visitor"]) == set(VISITOR.fields) | {"vip_level"}
    assert context["visitor"]["sessions"] == 1
    assert context["session"]["id"] == "s-1" and context["session"]["started_at"] is not None
    assert {"sku", "name", "price", "quantity"} <= set(context["cart"]["items"][0])
    assert CART.fields["items"].element is not None and CART.fields["items"].element.open


def test_a_view_refuses_what_its_declaration_does_not_have() -> None:
    with pytest.raises(ContextMismatch, match=r"undeclared \['page_views'\]"):
        view(TEMPLATE_NAMES["step"], {"id": "push", "channel": "push", "page_views": 3})
    with pytest.raises(ContextMismatch, match=r"missing \['channel'\]"):
        view(TEMPLATE_NAMES["step"], {"id": "push"})
