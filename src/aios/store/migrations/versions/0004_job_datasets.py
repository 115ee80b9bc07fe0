"""dataset inputs and outputs of jobs, and their lineage edges

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("inputs", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("outputs", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("cache", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_table(
        "job_datasets",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("snapshot", sa.String(length=64), nullable=False),
        sa.Column("cached_from", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "role", "dataset"),
    )
    op.create_index("ix_job_datasets_version", "job_datasets", ["dataset", "version"])


def downgrade() -> None:
    op.drop_index("ix_job_datasets_version", table_name="job_datasets")
    op.drop_table("job_datasets")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cache")
        batch.drop_column("outputs")
        batch.drop_column("inputs")
