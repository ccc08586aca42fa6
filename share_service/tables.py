"""The share service's tables, on its own SQLAlchemy MetaData, and their migrations.

They live in the registry's database (the framework's tables are its own
business: services, operations) and are created and upgraded by the share
service's own Alembic scripts (`migrations/`, version table
`share_service_alembic_version`), which `ShareManager.MIGRATIONS` hands to
the service at start. A test compares these tables with what the migrations
create. Datetimes are the framework's `UTCDateTime`: timezone-aware UTC.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from actors.registry import Migrations
from actors.registry.models import UTCDateTime

__all__ = ["MIGRATIONS", "metadata", "share_snapshots", "shares"]

metadata = MetaData()

MIGRATIONS = Migrations(
    script_location=Path(__file__).resolve().parent / "migrations",
    version_table="share_service_alembic_version",
)

# A share belongs to one backend (`host@backend`); its id is unique across the
# deployment. Access rules are kept with the share (a JSON list).
shares = Table(
    "shares",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("backend", String(255), nullable=False),
    Column("name", String(255)),
    Column("size_gb", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", Text),
    Column("export_path", Text),
    Column("access_rules", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_shares_backend", "backend"),
)

share_snapshots = Table(
    "share_snapshots",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("share_id", String(64), ForeignKey("shares.id", ondelete="CASCADE"), nullable=False),
    Column("state", String(16), nullable=False),
    Column("size_bytes", BigInteger),
    Column("reason", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_share_snapshots_share_id", "share_id"),
)
