"""event_stops, events.digest, the index of deliveries left ``sending``

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cartflow.engine.store.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
    op.create_table(
        "event_stops",
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("received_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("set_aside_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("event_id", "kind", "value", "channel"),
    )
    op.create_index("ix_event_stops_who", "event_stops", ["kind", "value"], unique=False)
    op.create_index(
        "ix_deliveries_sending",
        "deliveries",
        ["updated_at"],
        unique=False,
        sqlite_where=sa.text("status = 'sending'"),
        postgresql_where=sa.text("status = 'sending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_sending", table_name="deliveries")
    op.drop_index("ix_event_stops_who", table_name="event_stops")
    op.drop_table("event_stops")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("digest")
