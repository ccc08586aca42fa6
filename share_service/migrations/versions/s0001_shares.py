"""Create the shares and share_snapshots tables, or adopt them.

Revision ID: s0001
Revises:
Create Date: 2026-12-10

A share belongs to one backend (`host@backend`); its id is unique across the
deployment. Access rules are kept with the share (a JSON list), snapshots in
their own table.

Registries made while the share service was part of the framework have these
tables already (the framework's retired migration 0003 made them, with this
very shape): they are adopted as they are, shares and all.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "s0001"
down_revision: str | None = None
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    existing = sa.inspect(op.get_bind())
    if existing.has_table("shares") and existing.has_table("share_snapshots"):
        return  # made by the framework's former 0003: adopted
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
