"""Shared fixtures: every actor test runs on both runtimes."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors import Service
from actors.runtime import Runtime, VirtualClock, get_runtime
from actors.testing import FakeController, ServiceHarness
from tests.support import backend


@pytest.fixture
def runtime_name(actors_runtime: str) -> str:
    """The plugin's `actors_runtime`: each test on both (`--actors-runtime` narrows it)."""
    return actors_runtime


@pytest.fixture
def runtime(runtime_name: str) -> Runtime:
    return get_runtime(runtime_name)


@pytest.fixture(autouse=True)
def _state_in_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every service a test starts (and every actorsd it spawns) keeps its
    state, registry database included, in the test's own directory."""
    monkeypatch.setenv("ACTORS_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(autouse=True)
def _fresh_fakes() -> Iterator[None]:
    FakeController.forget()
    yield
    FakeController.forget()


@pytest.fixture
def make_service(
    actors_service: Callable[..., ServiceHarness], runtime_name: str
) -> Callable[..., Service]:
    """Services on the test's runtime, without a transport: the plugin's harness underneath.

    Started, stopped and leak-checked by `actors_service`. Unlike it, every
    service of a test shares the state directory (ACTORS_STATE_DIR above), so
    a second service finds the first one's journal.
    """

    def make(
        backends: dict[str, dict[str, Any]] | None = None,
        *,
        clock: VirtualClock | None = None,
        start: bool = True,
        **overrides: Any,
    ) -> Service:
        overrides.setdefault("host", "h")
        harness = actors_service(
            backends if backends is not None else {"b1": backend()},
            runtime=runtime_name,
            clock=clock,
            start=start,
            transport=False,
            state_dir=None,
            **overrides,
        )
        return harness.service

    return make


@pytest.fixture
def make_harness(actors_service: Callable[..., Any], actors_runtime: str) -> Callable[..., Any]:
    """Our own tests through the user-facing harness: same backends as make_service."""

    def make(backends: dict[str, dict[str, Any]] | None = None, **overrides: Any) -> Any:
        return actors_service(backends or {"b1": backend()}, host="h", **overrides)

    return make


@pytest.fixture
def clock(actors_clock: VirtualClock) -> VirtualClock:
    return actors_clock


@pytest.fixture
def caplog_errors(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.ERROR)
    return caplog


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database of this test alone, dropped afterwards.

    The server of ACTORS_TEST_POSTGRES_URL is shared (with other checkouts, with
    CI): a test never writes to the database that URL names, whose schema may
    be any revision, only to one it made itself.
    """
    base = os.environ.get("ACTORS_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("ACTORS_TEST_POSTGRES_URL is not set")
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    name = f"actors_test_{secrets.token_hex(6)}"
    url = make_url(base)
    admin = create_engine(
        url.set(drivername="postgresql+psycopg", database="postgres"),
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
