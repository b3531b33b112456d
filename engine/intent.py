"""One person, one journey per intent: the *same intent* rule (docs/scenarios.md).

Two carts of the same person are the **same intent** when both hold items and the set of
SKUs of one is contained in the other's (equal sets included): the shopper who put X and
Y in a cart on her phone and X, Y (or only X) on her laptop wants the same thing once.
Carts with SKUs the other lacks on both sides (X,Y and Y,Z) are two intents. The rule is
scenario-independent: a journey in any scenario counts.

* A cart that would start a journey while the same person has one running for a cart of
  the same intent does not start one (:func:`running_same_intent`; the decision says
  ``same_intent`` and names the running journey).
* When two profiles merge and both had a running journey of the same intent, the later
  one (by start, then id) ends with reason ``same_intent`` and joins the earlier
  (:func:`join_same_intent`; the decision names the journey it joined).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartflow.engine.journeys import finish
from cartflow.engine.outcomes import Reason
from cartflow.engine.store.models import Cart, Journey

#: The reason a journey ends (or a cart does not start one) under this rule.
SAME_INTENT = Reason.SAME_INTENT


def skus(items: Iterable[dict[str, Any]] | None) -> frozenset[str]:
    """The SKUs of a cart's items (an item without one counts by its name)."""
    return frozenset(
        str(item.get("sku") or item.get("name") or "") for item in items or () if item
    ) - {""}


def same_intent(one: frozenset[str], other: frozenset[str]) -> bool:
    """Both non-empty and one contained in the other."""
    return bool(one) and bool(other) and (one <= other or other <= one)


def running_same_intent(session: Session, cart: Cart) -> Journey | None:
    """The earliest running journey of the cart's person for another cart of the same
    intent, if any."""
    mine = skus(cart.items)
    rows = session.execute(
        select(Journey, Cart.items)
        .join(Cart, Cart.id == Journey.cart_id)
        .where(
            Journey.profile_id == cart.profile_id,
            Journey.status == "active",
            Journey.cart_id != cart.id,
        )
        .order_by(Journey.started_at, Journey.id)
    ).all()
    for journey, items in rows:
        if same_intent(mine, skus(items)):
            found: Journey = journey
            return found
    return None


def join_same_intent(session: Session, profile_id: str, now: datetime) -> list[Journey]:
    """End every running journey of ``profile_id`` that a running, earlier journey of the
    same intent already covers (after a merge). Returns the journeys ended."""
    rows = session.execute(
        select(Journey, Cart.items)
        .join(Cart, Cart.id == Journey.cart_id)
        .where(Journey.profile_id == profile_id, Journey.status == "active")
        .order_by(Journey.started_at, Journey.id)
    ).all()
    kept: list[tuple[Journey, frozenset[str]]] = []
    ended: list[Journey] = []
    for journey, items in rows:
        mine = skus(items)
        earlier = next((j for j, theirs in kept if same_intent(mine, theirs)), None)
        if earlier is None:
            kept.append((journey, mine))
            continue
        detail = f"{SAME_INTENT}: joins journey {earlier.id} (cart {earlier.cart_id})"
        finish(session, journey, "exited", SAME_INTENT, now, detail=detail)
        ended.append(journey)
    return ended
