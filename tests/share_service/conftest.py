"""The registry tests' databases (SQLite, and PostgreSQL when configured), here too."""

from tests.registry.conftest import clock, db_url, make_registry

__all__ = ["clock", "db_url", "make_registry"]
