"""The service keeps its registry rows alive: one transaction per interval."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from sqlalchemy import event

from actors.testing import FakeController, ServiceHarness

RESOURCE = "tests.support:ResourceManager"
FAKE = "actors.drivers.fake:FakeDriver"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    return {"database_url": request.getfixturevalue("postgres_url")}


def _start(actors_service: Any, clock: Any, backends: int = 3, **extra: Any) -> ServiceHarness:
    host = f"h{uuid.uuid4().hex[:8]}"  # rows of other tests may share a PostgreSQL database
    return actors_service(
        {f"b{i}": {"manager": RESOURCE, "driver": FAKE} for i in range(backends)},
        host=host,
        clock=clock,
        report_interval=10,
        service_down_time=30,
        **extra,
    )


def _report(h: ServiceHarness) -> None:
    """Run a registry round that starts now, and wait until it was handled."""
    h.run_in(h.service.name, lambda actor: actor.report())


def _statements(h: ServiceHarness) -> list[str]:
    """Statements on the services table from now on.

    Other tables are left out: the service's other background work (the
    orphaned-operations check after recovery, pruning) reads the operations
    table on its own schedule and may fall inside the window.
    """
    assert h.service.registry is not None
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if "services" in statement:
            seen.append(statement)

    event.listen(h.service.registry.engine, "before_cursor_execute", record)
    return seen


def test_one_transaction_per_interval_however_many_managers(actors_service, actors_clock, database):
    h = _start(actors_service, actors_clock, backends=6, **database)
    registry = h.service.registry
    assert registry is not None
    _report(h)
    _report(h)  # the first round may have been the one started at start
    before = {r.backend: r.report_count for r in registry.services(host=h.config.host)}
    seen = _statements(h)
    _report(h)
    updates = [s for s in seen if s.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1, seen
    # Besides the round's one UPDATE, only the look for orphaned topic operations
    # that a successful round starts (its own work, on its own schedule: it may
    # or may not fall into the window) reads the services table: the topic's rows.
    others = [s for s in seen if s not in updates]
    assert all(
        s.lstrip().upper().startswith("SELECT") and "services.topic = " in s for s in others
    ), seen
    records = registry.services(host=h.config.host)
    assert len(records) == 6 and all(r.is_up for r in records)
    assert {r.backend: r.report_count - before[r.backend] for r in records} == {
        f"b{i}": 1 for i in range(6)
    }


def test_the_interval_timer_drives_reports(actors_service, actors_clock):
    h = _start(actors_service, actors_clock, backends=1)
    _report(h)
    before = h.service.registry.services(host=h.config.host)[0].report_count  # type: ignore[union-attr]
    with h.waiting_for(h.service.name, "_reported", kind="continuation"):
        actors_clock.advance(10)
    after = h.service.registry.services(host=h.config.host)[0].report_count  # type: ignore[union-attr]
    assert after == before + 1


def test_a_backend_whose_driver_is_not_ready_does_not_heartbeat(
    actors_service, actors_clock, database
):
    # the controller of b1 exists before the service starts, so its first setup fails
    host = f"h{uuid.uuid4().hex[:8]}"
    FakeController.for_backend(f"{host}@b1").fail_setup(OSError("no disk"), times=100)
    h = actors_service(
        {"b0": {"manager": RESOURCE, "driver": FAKE}, "b1": {"manager": RESOURCE, "driver": FAKE}},
        host=host,
        clock=actors_clock,
        report_interval=10,
        service_down_time=30,
        **database,
    )
    _report(h)
    _report(h)
    up = {r.backend: r.is_up for r in h.service.registry.services(host=host)}  # type: ignore[union-attr]
    assert up == {"b0": True, "b1": False}


def test_a_driver_that_becomes_ready_heartbeats_at_once_not_an_interval_later(
    actors_service, actors_clock
):
    host = f"h{uuid.uuid4().hex[:8]}"
    FakeController.for_backend(f"{host}@b1").fail_setup(OSError("no disk"), times=1)
    h = actors_service(
        {"b1": {"manager": RESOURCE, "driver": FAKE, "setup_backoff": {"jitter": 0.0}}},
        host=host,
        clock=actors_clock,
        report_interval=3600,
        service_down_time=10800,
    )
    _report(h)  # the rounds so far: b1's driver was not ready for any of them
    registry = h.service.registry
    assert registry is not None
    assert not registry.services(host=host)[0].is_up
    with h.waiting_for(h.service.name, "_reported", kind="continuation"):
        h.advance(0.5)  # the setup retry succeeds: far from the next interval
    assert registry.services(host=host)[0].is_up


def test_an_outage_is_logged_once_and_its_end_once(actors_service, actors_clock, tmp_path, caplog):
    h = _start(actors_service, actors_clock, backends=2, state_dir=tmp_path / "reg")
    _report(h)
    caplog.clear()
    caplog.set_level(logging.WARNING, logger="actors.service_actor")
    (tmp_path / "reg").rename(tmp_path / "away")  # the SQLite file is gone
    for _ in range(3):
        _report(h)
    # RPC goes on during the outage
    assert h.call("b0", "ping")["backend"] == "b0"
    (tmp_path / "away").rename(tmp_path / "reg")
    _report(h)
    _report(h)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("registry unavailable" in m for m in messages) == 1, messages
    assert sum("registry available again" in m for m in messages) == 1, messages
    assert all(r.is_up for r in h.service.registry.services(host=h.config.host))  # type: ignore[union-attr]


def test_a_clean_stop_marks_the_rows_stopped(actors_service, actors_clock, database):
    h = _start(actors_service, actors_clock, backends=2, **database)
    _report(h)
    _report(h)
    registry = h.service.registry
    assert registry is not None
    host = h.config.host
    h.stop()
    from actors.registry import Registry

    reader = Registry(registry.url, service_down_time=30)
    try:
        records = reader.services(host=host)
        assert {r.state for r in records} == {"stopped"} and not any(r.is_up for r in records)
    finally:
        reader.close()


def test_service_down_time_must_exceed_report_interval():
    from actors import ConfigError, load_config

    with pytest.raises(ConfigError, match="must be under half of service_down_time"):
        load_config(None, report_interval=30, service_down_time=30)
    # Half or more: every host would fence itself at the end of every round.
    with pytest.raises(ConfigError, match="must be under half of service_down_time"):
        load_config(None, report_interval=35, service_down_time=60)
    assert load_config(None, report_interval=29, service_down_time=60).report_interval == 29


def test_rows_come_back_when_the_database_lost_them(actors_service, actors_clock):
    from sqlalchemy import text

    h = _start(actors_service, actors_clock, backends=2)
    _report(h)
    _report(h)
    registry = h.service.registry
    assert registry is not None
    with registry.engine.begin() as conn:  # a restored backup, a wiped database...
        conn.execute(text("DELETE FROM services"))
    _report(h)  # the heartbeat misses its rows ...
    _report(h)  # ... so this round registers them again
    assert sorted(r.backend for r in registry.services(host=h.config.host) if r.is_up) == [
        "b0",
        "b1",
    ]


def test_stopping_during_a_round_still_leaves_the_rows_stopped(actors_service, actors_clock):
    h = _start(actors_service, actors_clock, backends=2)
    _report(h)
    registry = h.service.registry
    assert registry is not None
    url, host = registry.url, h.config.host
    h.service.system.handle(h.service.name).tell("report")  # in flight while we stop
    h.stop()
    from actors.registry import Registry

    reader = Registry(url, service_down_time=30)
    try:
        assert {r.state for r in reader.services(host=host)} == {"stopped"}
    finally:
        reader.close()
