"""The service registry: a database of services, their heartbeats and liveness,
and the durable operation journal (`Journal`).

SQLAlchemy 2.x models and Alembic migrations shipped in the package; SQLite
(WAL) for one host, PostgreSQL for several. See `Registry`. Applications keep
tables of their own in the same database through `Registry.transaction()`,
`Registry.now()` and their own migrations (`Migrations`).
"""

from actors.registry.api import (
    DATABASE_ERRORS,
    DatabaseUnavailable,
    Registry,
    RegistryError,
    ServiceNotRegistered,
    ServiceRecord,
    ServiceRow,
    is_database_error,
    sqlite_url_for,
)
from actors.registry.journal import (
    InvalidTransition,
    Journal,
    JournalBusy,
    JournalClosed,
    OperationClaimed,
    OperationNotFound,
    OperationRecord,
)
from actors.registry.schema import Migrations

__all__ = [
    "DATABASE_ERRORS",
    "DatabaseUnavailable",
    "InvalidTransition",
    "Journal",
    "JournalBusy",
    "JournalClosed",
    "Migrations",
    "OperationClaimed",
    "OperationNotFound",
    "OperationRecord",
    "Registry",
    "RegistryError",
    "ServiceNotRegistered",
    "ServiceRecord",
    "ServiceRow",
    "is_database_error",
    "sqlite_url_for",
]
