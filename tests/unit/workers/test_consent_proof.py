"""The consent log (append-only proof) and ``GET /v1/profiles/{id}/consent``: every answer
is kept in order, a late older one is logged as superseded without overriding, a merge
moves the log, and ops see it with addresses masked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.store.models import Consent, ConsentLog, Identity, Profile

from ..factories import T0, event
from .conftest import Api

MINUTE = timedelta(minutes=1)
KEY = {"Authorization": "Bearer key"}


def _consent(minute: int, granted: bool, **fields: object) -> object:
    return event(
        "consent.updated",
        T0 + minute * MINUTE,
        consent={"email": granted},
        contact={"email": "anna@example.com", "phone": "+79991234567"},
        **fields,
    )


def test_a_late_older_answer_is_logged_superseded_not_applied(
    sim: Simulation, db: Database
) -> None:
    # Given consent given at 10:10, then a withdrawal dated 10:05 that arrives later
    sim.feed([_consent(10, True)])  # type: ignore[list-item]
    sim.clock.set(T0 + 20 * MINUTE)
    sim.feed([_consent(5, False)])  # type: ignore[list-item]
    # Then consent stands as given, and both answers are in the log, the late one marked
    with db.sessions() as session:
        (current,) = session.scalars(select(Consent)).all()
        log = session.scalars(select(ConsentLog).order_by(ConsentLog.id)).all()
    assert current.granted is True
    assert [(r.granted, r.at, r.superseded) for r in log] == [
        (True, T0 + 10 * MINUTE, False),
        (False, T0 + 5 * MINUTE, True),
    ]
    assert log[1].recorded_at == T0 + 20 * MINUTE  # recorded when it came, not when dated
    assert all(r.source.startswith("event:") and r.evidence == "consent.updated" for r in log)


def test_a_merge_moves_the_log(sim: Simulation, db: Database) -> None:
    # Given an anonymous device that agreed to email, and a known customer who refused
    sim.feed(
        [
            event(
                "consent.updated", T0, customer_id=None, anonymous_id="a1", consent={"email": True}
            ),
            event("consent.updated", T0 + MINUTE, anonymous_id="k1", consent={"email": False}),
        ]
    )
    # When the device identifies as that customer
    sim.feed([event("customer.identified", T0 + 2 * MINUTE, anonymous_id="a1")])
    # Then the live profile holds both answers, and the later one stands
    with db.sessions() as session:
        known = session.get(Identity, ("customer_id", "cust_1"))
        assert known is not None
        owners = set(session.scalars(select(ConsentLog.profile_id)))
        (current,) = session.scalars(select(Consent)).all()
    assert owners == {known.profile_id}
    assert (current.profile_id, current.granted) == (known.profile_id, False)


def test_ops_see_the_proof_masked(
    serve: Callable[..., Api], engine: Engine, sim: Simulation, db: Database
) -> None:
    # Given a shopper who agreed, then withdrew through an unsubscribe-like event
    sim.feed([_consent(0, True), _consent(5, False, source="unsubscribe link")])  # type: ignore[list-item]
    with db.sessions() as session:
        (profile,) = session.scalars(select(Profile)).all()
    api = serve(engine)

    # When ops ask for her consent
    answer = api.client.get(f"/v1/profiles/{profile.id}/consent", headers=KEY)

    # Then they see the current answer, the log in order and masked addresses only
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["consent"]["email"]["granted"] is False
    assert [(r["granted"], r["superseded"]) for r in body["log"]] == [(True, False), (False, False)]
    assert body["log"][1]["evidence"] == "consent.updated; unsubscribe link"
    assert {c["address"] for c in body["contacts"]} == {"a***@example.com", "+7999***67"}
    assert "anna@example.com" not in answer.text and "+79991234567" not in answer.text
    # ... and nobody else does; an unknown profile is a 404
    assert api.client.get(f"/v1/profiles/{profile.id}/consent").status_code == 401
    assert api.client.get("/v1/profiles/nobody/consent", headers=KEY).status_code == 404
