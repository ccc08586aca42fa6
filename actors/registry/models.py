"""The registry's tables as SQLAlchemy 2.x typed declarative models.

The migrations in `migrations/versions` create exactly this schema (a test
compares the two); the models are what the queries in `api.py` are written
against. Datetimes are stored as UTC: `timestamptz` on PostgreSQL, naive UTC
text on SQLite, and always come back timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "FINISHED_STATES",
    "OPERATION_STATES",
    "STATES",
    "UNFINISHED_STATES",
    "Base",
    "OperationModel",
    "ServiceModel",
    "UTCDateTime",
]

# Every state a service row can be in: 'starting' after register(), 'up' after
# a heartbeat, 'down' / 'stopped' when the service says so through mark().
STATES: tuple[str, ...] = ("starting", "up", "down", "stopped")

# Rows whose deleted_at is NULL are live; the unique index covers only those, so
# a soft-deleted row never blocks registering the same service again.
LIVE_ROWS = "deleted_at IS NULL"

# Every state an operation (a row of the journal) can be in. 'accepted' and
# 'running' are unfinished: crash recovery hands them to the driver.
OPERATION_STATES: tuple[str, ...] = ("accepted", "running", "succeeded", "failed", "interrupted")
UNFINISHED_STATES: tuple[str, ...] = ("accepted", "running")
FINISHED_STATES: tuple[str, ...] = ("succeeded", "failed", "interrupted")

# The idempotency key is unique per key scope only when it is set.
KEYED_ROWS = "idempotency_key IS NOT NULL"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so values are
    stored as naive UTC and get their UTC tzinfo back when read. A naive value
    given to the database is taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the registry's tables."""


class ServiceModel(Base):
    """One service (binary + topic) of one backend on one host."""

    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint(
            "state IN ({})".format(", ".join(f"'{s}'" for s in STATES)),
            name="ck_services_state",
        ),
        Index(
            "uq_services_host_binary_topic_backend",
            "host",
            "binary",
            "topic",
            "backend",
            unique=True,
            sqlite_where=text(LIVE_ROWS),
            postgresql_where=text(LIVE_ROWS),
        ),
        Index("ix_services_topic", "topic"),
        Index("ix_services_host_backend", "host", "backend"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255))
    binary: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(255))
    backend: Mapped[str] = mapped_column(String(255))
    endpoint: Mapped[str | None] = mapped_column(String(1024))
    server_key: Mapped[str | None] = mapped_column(String(40))
    down_after: Mapped[float | None] = mapped_column(Float)
    rpc_version: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    report_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=false())
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    last_heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OperationModel(Base):
    """One operation of the durable journal: accepted before it is acknowledged."""

    __tablename__ = "operations"
    __table_args__ = (
        CheckConstraint(
            "state IN ({})".format(", ".join(f"'{s}'" for s in OPERATION_STATES)),
            name="ck_operations_state",
        ),
        Index(
            "uq_operations_key_scope_idempotency_key",
            "key_scope",
            "idempotency_key",
            unique=True,
            sqlite_where=text(KEYED_ROWS),
            postgresql_where=text(KEYED_ROWS),
        ),
        Index("ix_operations_state", "state"),
        Index("ix_operations_finished_at", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # Across which managers the key means one operation: the target, or `topic:<topic>`.
    key_scope: Mapped[str] = mapped_column(String(255))
    target: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(255))
    args: Mapped[Any] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    result: Mapped[Any | None] = mapped_column(JSON)
    error: Mapped[Any | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
