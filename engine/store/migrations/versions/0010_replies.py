"""replies: shoppers' answers that are no keyword, until support has them

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cartflow.engine.store.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replies",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("sender", sa.String(4096), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("profile_id", sa.String(64)),
        sa.Column("delivery_id", sa.String(64)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("received_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("paused_until", UTCDateTime(timezone=True)),
        sa.Column("forwarded_at", UTCDateTime(timezone=True)),
        sa.Column("handled_at", UTCDateTime(timezone=True)),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(500)),
        sa.UniqueConstraint("provider", "message_id", name="uq_replies_message"),
    )
    op.create_index("ix_replies_profile", "replies", ["profile_id", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_replies_profile", table_name="replies")
    op.drop_table("replies")
