"""Create the shares and share_snapshots tables: the reference share service's state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

A share belongs to one backend (`host@backend`); its id is unique across the
deployment. Access rules are kept with the share (a JSON list), snapshots in
their own table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "shares",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("backend", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("size_gb", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("export_path", sa.Text(), nullable=True),
        sa.Column("access_rules", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_shares_backend", "shares", ["backend"])
    op.create_table(
        "share_snapshots",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "share_id",
            sa.String(64),
            sa.ForeignKey("shares.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_share_snapshots_share_id", "share_snapshots", ["share_id"])


def downgrade() -> None:
    op.drop_index("ix_share_snapshots_share_id", table_name="share_snapshots")
    op.drop_table("share_snapshots")
    op.drop_index("ix_shares_backend", table_name="shares")
    op.drop_table("shares")
