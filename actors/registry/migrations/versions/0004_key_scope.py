"""Idempotency keys are unique per scope: a manager, or a whole topic of the cluster.

Revision ID: 0004_key_scope
Revises: 0003_server_keys
Create Date: 2026-12-07

`key_scope` names the set of managers across which a key means one operation:
the target (`host@backend`, what every key meant before this revision) or,
for a request sent to "any one" service of a topic, `topic:<topic>`, so that a
request retried on another host with the same key finds the first host's
row instead of running a second time. Existing rows get their target.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_key_scope"
down_revision: str | None = "0003_server_keys"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

KEYED_ROWS = "idempotency_key IS NOT NULL"


def upgrade() -> None:
    op.add_column("operations", sa.Column("key_scope", sa.String(255), nullable=True))
    op.execute("UPDATE operations SET key_scope = target")
    op.drop_index("uq_operations_target_idempotency_key", table_name="operations")
    with op.batch_alter_table("operations") as batch:
        batch.alter_column("key_scope", existing_type=sa.String(255), nullable=False)
    op.create_index(
        "uq_operations_key_scope_idempotency_key",
        "operations",
        ["key_scope", "idempotency_key"],
        unique=True,
        sqlite_where=sa.text(KEYED_ROWS),
        postgresql_where=sa.text(KEYED_ROWS),
    )


def downgrade() -> None:
    op.drop_index("uq_operations_key_scope_idempotency_key", table_name="operations")
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("key_scope")
    op.create_index(
        "uq_operations_target_idempotency_key",
        "operations",
        ["target", "idempotency_key"],
        unique=True,
        sqlite_where=sa.text(KEYED_ROWS),
        postgresql_where=sa.text(KEYED_ROWS),
    )
