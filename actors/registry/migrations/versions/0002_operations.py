"""Create the operations table: the durable operation journal.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

An operation is written here before it is acknowledged. The idempotency key is
unique per target only when it is set (a partial unique index, as for the live
services rows in 0001). `state` and `finished_at` are indexed for crash
recovery (unfinished operations) and pruning (finished ones).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

KEYED_ROWS = "idempotency_key IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "operations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("method", sa.String(255), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('accepted', 'running', 'succeeded', 'failed', 'interrupted')",
            name="ck_operations_state",
        ),
    )
    op.create_index(
        "uq_operations_target_idempotency_key",
        "operations",
        ["target", "idempotency_key"],
        unique=True,
        sqlite_where=sa.text(KEYED_ROWS),
        postgresql_where=sa.text(KEYED_ROWS),
    )
    op.create_index("ix_operations_state", "operations", ["state"])
    op.create_index("ix_operations_finished_at", "operations", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_operations_finished_at", table_name="operations")
    op.drop_index("ix_operations_state", table_name="operations")
    op.drop_index("uq_operations_target_idempotency_key", table_name="operations")
    op.drop_table("operations")
