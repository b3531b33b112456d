"""The discount ledger: one unique code per send, and the only module that changes a
code's state (architecture §5)::

    reserve ──▶ reserved ──▶ issue ──▶ issued ──▶ redeem ──▶ redeemed
                   │
                   └──▶ release ──▶ released   (the message did not go: cancelled,
                                                refused, failed to render, too long)

A code is reserved when its delivery is written, issued when a provider accepted the
message that carries it, and redeemed when an order names it. A released code is never
handed out again. Each change happens only from the state before it, so calling one twice
(a retried event, a second worker) changes nothing.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import update
from sqlalchemy.orm import Session

from cartflow.engine.scenario.model import Discount
from cartflow.engine.store.models import DiscountToken

#: Code alphabet without look-alikes (0/O, 1/I/L).
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
#: Random characters per code: 31^8 ≈ 8.5e11 codes.
CODE_LENGTH = 8


class TokenStatus(StrEnum):
    """Where a code is; stored in ``discount_tokens.status``."""

    RESERVED = "reserved"
    ISSUED = "issued"
    RELEASED = "released"
    REDEEMED = "redeemed"


def new_code(prefix: str) -> str:
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def reserve(
    session: Session,
    discount: Discount,
    *,
    journey_id: str,
    step_id: str,
    currency: str,
    now: datetime,
    delivery_id: str | None = None,
) -> DiscountToken:
    """A new code for the message being written (``reserved``)."""
    token = DiscountToken(
        code=new_code(discount.prefix),
        journey_id=journey_id,
        step_id=step_id,
        delivery_id=delivery_id,
        kind="percent" if discount.percent is not None else "amount",
        value=Decimal(discount.percent if discount.percent is not None else discount.amount or 0),
        currency=None if discount.percent is not None else currency,
        status=TokenStatus.RESERVED.value,
        created_at=now,
        expires_at=now + discount.ttl,
    )
    session.add(token)
    return token


def issue(session: Session, code: str | None) -> bool:
    """The message carrying ``code`` was accepted: ``reserved → issued``."""
    return _move(session, code, TokenStatus.RESERVED, TokenStatus.ISSUED)


def release(session: Session, code: str | None) -> bool:
    """The message carrying ``code`` will not go: ``reserved → released``."""
    return _move(session, code, TokenStatus.RESERVED, TokenStatus.RELEASED)


def recall(session: Session, code: str | None) -> bool:
    """The message carrying ``code`` was accepted but never arrived (the provider said
    so): ``issued → released``."""
    return _move(session, code, TokenStatus.ISSUED, TokenStatus.RELEASED)


def redeem(session: Session, code: str | None, *, order_id: str, at: datetime) -> bool:
    """An order used ``code``: ``issued → redeemed``, with the order and when. A code
    that was never issued (or is someone else's invention) is not redeemed."""
    return _move(
        session, code, TokenStatus.ISSUED, TokenStatus.REDEEMED, order_id=order_id, redeemed_at=at
    )


def _move(
    session: Session,
    code: str | None,
    before: TokenStatus,
    after: TokenStatus,
    **values: object,
) -> bool:
    if not code:
        return False
    moved = session.execute(
        update(DiscountToken)
        .where(DiscountToken.code == code, DiscountToken.status == before.value)
        .values(status=after.value, **values)
        .execution_options(synchronize_session="fetch")
    ).rowcount  # type: ignore[attr-defined]
    return bool(moved)


def view(token: DiscountToken | None) -> dict[str, object] | None:
    """The code as templates see it (``discount.code``, ``discount.percent`` …)."""
    if token is None:
        return None
    return {
        "code": token.code,
        "percent": float(token.value) if token.kind == "percent" else None,
        "amount": float(token.value) if token.kind == "amount" else None,
        "currency": token.currency,
        "expires_at": token.expires_at,
    }
