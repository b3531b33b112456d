"""consent_log: every consent change as it came, append-only, kept for proof

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cartflow.engine.store.models import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("profile_id", sa.String(64), sa.ForeignKey("profiles.id"), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("evidence", sa.Text()),
        sa.Column("superseded", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_consent_log_profile", "consent_log", ["profile_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_consent_log_profile", table_name="consent_log")
    op.drop_table("consent_log")
