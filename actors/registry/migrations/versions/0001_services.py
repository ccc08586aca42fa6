"""Create the services table: one row per service of a backend on a host.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

The unique index on (host, binary, topic, backend) is partial (live rows only,
`deleted_at IS NULL`): both SQLite and PostgreSQL support partial indexes, and
a plain unique constraint including deleted_at would not work because NULLs
never collide.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

LIVE_ROWS = "deleted_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("binary", sa.String(255), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("backend", sa.String(255), nullable=False),
        sa.Column("endpoint", sa.String(1024), nullable=True),
        sa.Column("rpc_version", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("report_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("disabled_reason", sa.String(255), nullable=True),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('starting', 'up', 'down', 'stopped')", name="ck_services_state"
        ),
    )
    op.create_index(
        "uq_services_host_binary_topic_backend",
        "services",
        ["host", "binary", "topic", "backend"],
        unique=True,
        sqlite_where=sa.text(LIVE_ROWS),
        postgresql_where=sa.text(LIVE_ROWS),
    )
    op.create_index("ix_services_topic", "services", ["topic"])
    op.create_index("ix_services_host_backend", "services", ["host", "backend"])


def downgrade() -> None:
    op.drop_index("ix_services_host_backend", table_name="services")
    op.drop_index("ix_services_topic", table_name="services")
    op.drop_index("uq_services_host_binary_topic_backend", table_name="services")
    op.drop_table("services")
