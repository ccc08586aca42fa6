"""Databases for the registry tests: a SQLite file, or a fresh PostgreSQL database."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from actors.registry import Registry, sqlite_url_for

POSTGRES_URL = os.environ.get("ACTORS_TEST_POSTGRES_URL")
T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    """A settable clock for Registry(now=...)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _psycopg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_url_for(tmp_path / "state")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_registry(db_url: str, clock: Clock) -> Iterator[Callable[..., Registry]]:
    """Registries on the test database, migrated, on the test clock; closed afterwards."""
    made: list[Registry] = []

    def make(*, upgrade: bool = True, **kwargs: Any) -> Registry:
        kwargs.setdefault("now", clock)
        registry = Registry(db_url, **kwargs)
        made.append(registry)
        if upgrade:
            registry.upgrade()
        return registry

    yield make
    for registry in made:
        registry.close()
