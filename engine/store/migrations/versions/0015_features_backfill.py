"""profile_features filled from what an upgraded install already holds

Revision ID: 0015
Revises: 0014

An install upgraded from before 0013 has profiles, visits, carts and its retained raw
events, but no kept features: on day one every shopper would read 0 visits and 0 orders,
and fall in the wrong segments (``returning``, ``vip``, ...) until history re-accrued.
This fills each live profile's document that is missing from the retained applied
events, the visits and the paid carts (:mod:`cartflow.engine.features_backfill`), through
the rules of the code being installed — the same rules the live path then keeps
applying. ``cartflow features rebuild`` redoes it later.

It reads and writes through the ORM session bound to the migration's connection, in the
migration's one transaction.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.orm import Session

from cartflow.engine.clock import SystemClock
from cartflow.engine.features_backfill import backfill

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    session = Session(bind=op.get_bind())
    backfill(session, SystemClock().now(), only_missing=True)
    session.flush()


def downgrade() -> None:
    """Nothing: the rows written are valid documents at 0014 too (the table is 0013's)."""
