"""``POST /v1/events`` refuses a broken contact with a 422 naming the field, and stores
nothing of the event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from cartflow.engine.service import Engine
from cartflow.engine.store import Database
from cartflow.engine.store.models import RawEvent

from .conftest import Api


def _identified(contact: dict[str, Any]) -> dict[str, Any]:
    return {"id": "evt_c", "type": "customer.identified", "customer_id": "c1", "contact": contact}


@pytest.mark.parametrize(
    ("contact", "field", "why"),
    [
        ({"email": "anna@@example.com"}, "contact.email", "not an email address"),
        ({"email": "anna"}, "contact.email", "not an email address"),
        ({"phone": "89991234567"}, "contact.phone", "no country code"),
        ({"phone": "+7 999"}, "contact.phone", "not a phone number"),
        # a country that is no ISO code reads no number: both named
        ({"phone": "9991234567", "country": "ru"}, "contact.country,contact.phone", "pattern"),
    ],
)
def test_a_broken_contact_is_422_with_its_field(
    serve: Callable[..., Api],
    engine: Engine,
    db: Database,
    contact: dict[str, Any],
    field: str,
    why: str,
) -> None:
    api = serve(engine)
    answer = api.client.post(
        "/v1/events", json=_identified(contact), headers={"Authorization": "Bearer key"}
    )
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    assert [e["loc"] for e in errors] == field.split(",")
    assert why in errors[0]["msg"]
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(RawEvent)) == 0


def test_a_good_contact_is_accepted_in_e164(
    serve: Callable[..., Api], engine: Engine, db: Database
) -> None:
    api = serve(engine)
    answer = api.client.post(
        "/v1/events",
        json=_identified({"phone": "+7 (999) 123-45-67", "email": "Anna@Example.com"}),
        headers={"Authorization": "Bearer key"},
    )
    assert answer.status_code == 202, answer.text
    with db.sessions() as session:
        (row,) = session.scalars(select(RawEvent)).all()
    assert row.payload["contact"] == {"phone": "+79991234567", "email": "Anna@example.com"}
