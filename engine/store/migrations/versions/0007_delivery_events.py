"""delivery_events; one live delivery per journey step; decisions by profile

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cartflow.engine.store.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

LIVE = "status NOT IN ('failed', 'cancelled')"


def upgrade() -> None:
    op.create_table(
        "delivery_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("raw_status", sa.String(length=200), nullable=True),
        sa.Column("received_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_delivery_events_delivery", "delivery_events", ["delivery_id", "at"], unique=False
    )
    op.create_index(
        "uq_deliveries_live_step",
        "deliveries",
        ["journey_id", "step_id"],
        unique=True,
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )
    op.create_index("ix_decisions_profile", "decisions", ["profile_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_decisions_profile", table_name="decisions")
    op.drop_index("uq_deliveries_live_step", table_name="deliveries")
    op.drop_index("ix_delivery_events_delivery", table_name="delivery_events")
    op.drop_table("delivery_events")
