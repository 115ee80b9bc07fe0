"""tokens of their own (expiry, revocation), the control plane's keys, tenants' uids,
and what a job's sandbox holds (network, image, read-only mounts)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TENANT_UID_BASE = 200_000
"""As :data:`aios.control.tenants.TENANT_UID_BASE` when this migration was written."""


def upgrade() -> None:
    tokens = op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("note", sa.String(length=128), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    connection = op.get_bind()
    users = connection.execute(sa.text("SELECT id, token_hash, created_at FROM users")).all()
    if users:
        op.bulk_insert(
            tokens,
            [
                {"user_id": user_id, "token_hash": digest, "note": "", "created_at": created}
                for user_id, digest, created in users
            ],
        )
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_hash")

    op.create_table(
        "control_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )

    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("uid", sa.Integer(), nullable=True))
        batch.create_unique_constraint("uq_queues_uid", ["uid"])
    names = connection.execute(sa.text("SELECT name FROM queues ORDER BY name")).scalars().all()
    for offset, name in enumerate(names):
        connection.execute(
            sa.text("UPDATE queues SET uid = :uid WHERE name = :name"),
            {"uid": TENANT_UID_BASE + offset, "name": name},
        )

    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("network", sa.String(length=8), nullable=False, server_default="host")
        )
        batch.add_column(sa.Column("image", sa.String(length=512), nullable=True))
        batch.add_column(
            sa.Column("as_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("mounts", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("mounts")
        batch.drop_column("as_admin")
        batch.drop_column("image")
        batch.drop_column("network")
    with op.batch_alter_table("queues") as batch:
        batch.drop_constraint("uq_queues_uid", type_="unique")
        batch.drop_column("uid")
    op.drop_table("control_secrets")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("token_hash", sa.String(length=64), nullable=True))
    connection = op.get_bind()
    # A user's first token becomes its one token again; later ones are lost.
    connection.execute(
        sa.text(
            "UPDATE users SET token_hash = (SELECT token_hash FROM tokens "
            "WHERE tokens.user_id = users.id AND token_hash IS NOT NULL "
            "ORDER BY id LIMIT 1)"
        )
    )
    op.drop_table("tokens")
