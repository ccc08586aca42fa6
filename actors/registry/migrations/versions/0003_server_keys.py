"""Services publish their CURVE server key and their service_down_time.

Revision ID: 0003_server_keys
Revises: 0002
Create Date: 2026-12-07

`server_key`: the z85 public key of the server at `endpoint` (NULL: no
CURVE), so a client that finds an endpoint in the registry finds the key to
reach it with. `down_after`: the service's own service_down_time in seconds
(NULL: rows written before this revision; readers use their own default), so
every reader judges "up" the way the cluster is configured.

The revision id is not "0003": that id is retired (it once created the share
service's tables, see schema.FRAMEWORK_MIGRATIONS) and is rewritten to 0002
wherever it is found.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_server_keys"
down_revision: str | None = "0002"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("server_key", sa.String(40), nullable=True))
        batch.add_column(sa.Column("down_after", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.drop_column("down_after")
        batch.drop_column("server_key")
