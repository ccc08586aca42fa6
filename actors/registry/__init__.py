"""The service registry: a database of services, their heartbeats and liveness.

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

__all__ = [
    "DatabaseUnavailable",
    "Registry",
    "RegistryError",
    "ServiceNotRegistered",
    "ServiceRecord",
    "ServiceRow",
    "sqlite_url_for",
]
