"""profile_features: behaviour kept incrementally as events arrive

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cartflow.engine.store.models import JSONType, UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "profile_features",
        sa.Column("profile_id", sa.String(64), sa.ForeignKey("profiles.id"), primary_key=True),
        sa.Column("doc", JSONType, nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("profile_features")
