"""deliveries: an index on (provider, provider_message_id), for vendors' receipts

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_provider_message",
        "deliveries",
        ["provider", "provider_message_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_provider_message", table_name="deliveries")
