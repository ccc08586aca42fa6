"""pytest plugin: fixtures for testing managers and drivers at actor level.

Registered through the `pytest11` entry point `actors`. Fixtures:

- `actors_runtime`: "gevent" and "threading" (each test runs on both; narrow it
  with `--actors-runtime=gevent|threading`);
- `actors_clock`: a fresh VirtualClock;
- `actors_service`: a factory `actors_service(backends, **options)` returning a
  started `ServiceHarness` (`start=False`: not started yet); every one is
  stopped after the test, and the test fails if an actor is still running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors.drivers.fake import FakeController
from actors.runtime import VirtualClock
from actors.testing._harness import ServiceHarness


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("actors")
    group.addoption(
        "--actors-runtime",
        choices=("both", "gevent", "threading"),
        default="both",
        help="runtime(s) the actors_runtime fixture runs tests on (default: both)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "actors_runtime" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--actors-runtime")
        names = ["gevent", "threading"] if choice == "both" else [choice]
        metafunc.parametrize("actors_runtime", names)


@pytest.fixture
def actors_clock() -> VirtualClock:
    """A clock that moves only when the test calls `advance()`."""
    return VirtualClock()


@pytest.fixture
def actors_service(
    request: pytest.FixtureRequest, tmp_path: Any
) -> Iterator[Callable[..., ServiceHarness]]:
    """Start services for this test; all are stopped (and leak-checked) after it."""
    runtime = (
        request.getfixturevalue("actors_runtime")
        if "actors_runtime" in request.fixturenames
        else "threading"
    )
    started: list[ServiceHarness] = []

    def make(
        backends: dict[str, dict[str, Any]], *, start: bool = True, **options: Any
    ) -> ServiceHarness:
        options.setdefault("runtime", runtime)
        options.setdefault("state_dir", tmp_path / f"state{len(started)}")
        harness = ServiceHarness(backends, **options)
        started.append(harness)
        return harness.start() if start else harness

    yield make
    errors = []
    for harness in reversed(started):
        try:
            harness.stop()
        except Exception as exc:  # keep stopping the others
            errors.append(f"{type(exc).__name__}: {exc}")
    FakeController.forget()
    if errors:
        pytest.fail("; ".join(errors), pytrace=False)
