"""Shared fixtures: every actor test runs on both runtimes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors import FakeController, Service, ServiceConfig, VirtualClock
from actors.runtime import RUNTIME_NAMES, Runtime, get_runtime
from tests.support import backend


@pytest.fixture(params=RUNTIME_NAMES)
def runtime_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


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
def make_service(runtime_name: str) -> Iterator[Callable[..., Service]]:
    """Start services on the test's runtime; every one is stopped afterwards."""
    started: list[Service] = []

    def make(
        backends: dict[str, dict[str, Any]] | None = None,
        *,
        clock: VirtualClock | None = None,
        start: bool = True,
        **overrides: Any,
    ) -> Service:
        backends = backends if backends is not None else {"b1": backend()}
        config = ServiceConfig(
            host="h",
            runtime=runtime_name,
            enabled_backends=list(backends),
            backends=backends,
            **overrides,
        )
        service = Service(config, clock=clock)
        started.append(service)
        return service.start(timeout=10) if start else service

    yield make
    for service in started:
        assert service.stop(timeout=10), f"{service.name} did not stop cleanly"
        leftovers = [s for s in service.status() if s.get("state") in ("running", "stopping")]
        assert not leftovers, f"actors left running: {leftovers}"


@pytest.fixture
def make_harness(actors_service: Callable[..., Any], actors_runtime: str) -> Callable[..., Any]:
    """Our own tests through the user-facing harness: same backends as make_service."""

    def make(backends: dict[str, dict[str, Any]] | None = None, **overrides: Any) -> Any:
        return actors_service(backends or {"b1": backend()}, host="h", **overrides)

    return make


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def caplog_errors(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.ERROR)
    return caplog
