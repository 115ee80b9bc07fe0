"""datasets per tenant: the queue each dataset belongs to, and its shares

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Datasets published before this revision get no owner: only admins use them until
    # an admin assigns or shares them (aios data own / share).
    op.create_table(
        "dataset_owners",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "dataset_shares",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", "queue"),
    )


def downgrade() -> None:
    op.drop_table("dataset_shares")
    op.drop_table("dataset_owners")
