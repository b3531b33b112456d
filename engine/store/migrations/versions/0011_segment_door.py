"""segment_carts: the Segment door's running carts (differences → snapshots)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cartflow.engine.store.models import JSONType, UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment_carts",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("items", JSONType, nullable=False),
        sa.Column("currency", sa.String(3)),
        sa.Column("shopper", sa.String(200)),
        sa.Column("checkout_id", sa.String(200)),
        sa.Column("order_id", sa.String(200)),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_segment_carts_shopper", "segment_carts", ["shopper"])
    op.create_index("ix_segment_carts_checkout_id", "segment_carts", ["checkout_id"])
    op.create_index("ix_segment_carts_order_id", "segment_carts", ["order_id"])
    op.create_index("ix_segment_carts_updated_at", "segment_carts", ["updated_at"])


def downgrade() -> None:
    op.drop_table("segment_carts")
