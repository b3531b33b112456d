"""Unique discount codes, one per send. The ledger (pools, redemption API) comes later;
the states are already ``reserved → issued | released → redeemed``."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from cartflow.engine.scenario.model import Discount
from cartflow.engine.store.models import DiscountToken

#: Code alphabet without look-alikes (0/O, 1/I/L).
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
#: Random characters per code: 31^8 ≈ 8.5e11 codes.
CODE_LENGTH = 8


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
) -> DiscountToken:
    token = DiscountToken(
        code=new_code(discount.prefix),
        journey_id=journey_id,
        step_id=step_id,
        kind="percent" if discount.percent is not None else "amount",
        value=Decimal(discount.percent if discount.percent is not None else discount.amount or 0),
        currency=None if discount.percent is not None else currency,
        status="reserved",
        created_at=now,
        expires_at=now + discount.ttl,
    )
    session.add(token)
    return token


def view(token: DiscountToken | None) -> dict[str, object] | None:
    if token is None:
        return None
    return {
        "code": token.code,
        "percent": float(token.value) if token.kind == "percent" else None,
        "amount": float(token.value) if token.kind == "amount" else None,
        "currency": token.currency,
        "expires_at": token.expires_at,
    }
