"""The service registry: a database of services, their heartbeats and liveness,
and the durable operation journal (`Journal`).

SQLAlchemy 2.x models and Alembic migrations shipped in the package; SQLite
(WAL) for one host, PostgreSQL for several. See `Registry`.
"""

from actors.registry.api import (
    DatabaseUnavailable,
    Registry,
    RegistryError,
    ServiceNotRegistered,
    ServiceRecord,
    ServiceRow,
    sqlite_url_for,
)
from actors.registry.journal import (
    InvalidTransition,
    Journal,
    JournalBusy,
    JournalClosed,
    OperationNotFound,
    OperationRecord,
)

__all__ = [
    "DatabaseUnavailable",
    "InvalidTransition",
    "Journal",
    "JournalBusy",
    "JournalClosed",
    "OperationNotFound",
    "OperationRecord",
    "Registry",
    "RegistryError",
    "ServiceNotRegistered",
    "ServiceRecord",
    "ServiceRow",
    "sqlite_url_for",
]
