"""browsing: the products each shopper recently viewed and carted, a cart's checkout step,
browse pseudo-carts (carts.kind)

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cartflow.engine.store.models import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recent_products",
        sa.Column("profile_id", sa.String(64), sa.ForeignKey("profiles.id"), primary_key=True),
        sa.Column("kind", sa.String(10), primary_key=True),
        sa.Column("sku", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("price", sa.Numeric(18, 4)),
        sa.Column("currency", sa.String(3)),
        sa.Column("url", sa.String(2000)),
        sa.Column("image", sa.String(2000)),
        sa.Column("category", sa.String(200)),
        sa.Column("stock", sa.Integer()),
        sa.Column("seen_at", UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_recent_products_newest", "recent_products", ["profile_id", "kind", "seen_at"]
    )

    op.add_column("carts", sa.Column("checkout_step", sa.String(200)))
    op.add_column("carts", sa.Column("checkout_step_at", UTCDateTime(timezone=True)))
    op.add_column("carts", sa.Column("kind", sa.String(10), nullable=False, server_default="cart"))


def downgrade() -> None:
    with op.batch_alter_table("carts") as batch:
        batch.drop_column("kind")
        batch.drop_column("checkout_step_at")
        batch.drop_column("checkout_step")
    op.drop_index("ix_recent_products_newest", table_name="recent_products")
    op.drop_table("recent_products")
