"""The service registry on SQLite and, when ACTORS_TEST_POSTGRES_URL is set, PostgreSQL.

Each PostgreSQL test gets a fresh database (`actors_test_<random>`, created
through the server's `postgres` maintenance database and dropped afterwards),
so runs are isolated and repeatable. Time is an injected clock: no sleeps.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, text

from actors.registry import (
    DatabaseUnavailable,
    Registry,
    RegistryError,
    ServiceNotRegistered,
    ServiceRecord,
    ServiceRow,
    sqlite_url_for,
)
from actors.registry.api import MIGRATIONS_DIR
from actors.registry.models import Base
from tests.registry.conftest import T0, Clock


@pytest.fixture
def registry(make_registry: Callable[..., Registry]) -> Registry:
    return make_registry()


def row(
    host: str = "h1",
    binary: str = "volume",
    topic: str = "volume",
    backend: str = "b1",
    endpoint: str | None = "tcp://h1:5000",
    rpc_version: str = "1.0",
) -> ServiceRow:
    return ServiceRow(host, binary, topic, backend, endpoint, rpc_version)


def by_id(registry: Registry, service_id: int) -> ServiceRecord:
    (record,) = [r for r in registry.services() if r.id == service_id]
    return record


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- migrations ---------------------------------------------------------------


def test_upgrade_from_empty_then_again(make_registry: Callable[..., Registry]) -> None:
    registry = make_registry(upgrade=False)
    assert "services" not in inspect(registry.engine).get_table_names()

    registry.upgrade()
    registry.upgrade()  # up to date: a no-op

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head == "0004_key_scope"  # the newest shipped migration: the framework's tables only
    with registry.engine.connect() as conn:
        assert {"services", "alembic_version"} <= set(inspect(conn).get_table_names())
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            head
        ]
        indexes = {ix["name"]: ix for ix in inspect(conn).get_indexes("services")}
    assert indexes["uq_services_host_binary_topic_backend"]["unique"]
    assert registry.services() == []


def test_models_match_migrations(registry: Registry) -> None:
    with registry.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_concurrent_upgrades_are_serialised(make_registry: Callable[..., Registry]) -> None:
    registries = [make_registry(upgrade=False) for _ in range(4)]
    barrier = threading.Barrier(len(registries))
    errors: list[BaseException] = []

    def upgrade(registry: Registry) -> None:
        barrier.wait()
        try:
            registry.upgrade()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upgrade, args=(r,)) for r in registries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert registries[0].services() == []


# -- register -----------------------------------------------------------------


def test_register_is_get_or_create(registry: Registry, clock: Clock) -> None:
    rows = [row(backend="b1"), row(backend="b2"), row(binary="backup", topic="backup")]
    ids = registry.register(rows)
    assert len(set(ids)) == 3
    records = {r.id: r for r in registry.services()}
    for service_id, given in zip(ids, rows, strict=True):
        record = records[service_id]
        assert (record.host, record.binary, record.topic, record.backend) == (
            given.host,
            given.binary,
            given.topic,
            given.backend,
        )
        assert record.state == "starting"
        assert record.report_count == 0
        assert record.last_heartbeat is None
        assert record.created_at == T0 == record.updated_at
        assert not record.disabled

    registry.heartbeat(ids)
    registry.set_disabled("h1", "b2", True, "maintenance")
    clock.advance(30)
    again = registry.register(
        [row(backend="b2", endpoint="tcp://h1:6000", rpc_version="1.3"), row(backend="b1")]
    )
    assert again == [ids[1], ids[0]]  # same rows, in input order

    refreshed = by_id(registry, ids[1])
    assert refreshed.endpoint == "tcp://h1:6000"
    assert refreshed.rpc_version == "1.3"
    assert refreshed.state == "starting"
    assert refreshed.report_count == 1  # history is kept
    assert refreshed.disabled and refreshed.disabled_reason == "maintenance"
    assert refreshed.created_at == T0
    assert refreshed.updated_at == T0 + timedelta(seconds=30)
    assert len(registry.services()) == 3


def test_register_edge_cases(registry: Registry) -> None:
    assert registry.register([]) == []
    first, second = registry.register([row(), row(endpoint=None)])
    assert first == second
    assert by_id(registry, first).endpoint is None  # the last one wins


def test_concurrent_register_creates_one_row(make_registry: Callable[..., Registry]) -> None:
    registries = [make_registry(upgrade=False) for _ in range(6)]
    registries[0].upgrade()
    barrier = threading.Barrier(len(registries))
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def register(registry: Registry) -> None:
        barrier.wait()
        try:
            results.append(registry.register([row(), row(backend="b2")]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(r,)) for r in registries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({tuple(ids) for ids in results}) == 1
    assert len(registries[0].services()) == 2


def test_overlapping_rows_registered_in_opposite_orders_never_deadlock(
    make_registry: Callable[..., Registry],
) -> None:
    """Two daemons registering the same rows, each in its own order (a restart
    overlapping the old process, a shared misconfiguration): upserted in key
    order, they cannot lock each other's rows crosswise."""
    first, second = make_registry(), make_registry(upgrade=False)
    errors: list[BaseException] = []

    def register(
        barrier: threading.Barrier, registry: Registry, given: list[ServiceRow], out: list[int]
    ) -> None:
        barrier.wait()
        try:
            out.extend(registry.register(given))
        except BaseException as exc:
            errors.append(exc)

    for round_ in range(10):
        rows = [row(backend=f"r{round_}-b{i}") for i in range(8)]
        barrier = threading.Barrier(2)
        ours: list[int] = []
        theirs: list[int] = []
        threads = [
            threading.Thread(target=register, args=(barrier, first, rows, ours)),
            threading.Thread(target=register, args=(barrier, second, rows[::-1], theirs)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert ours == theirs[::-1]  # each in the order it gave its rows


# -- heartbeat ----------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 100])
def test_heartbeat_is_one_update_statement(registry: Registry, clock: Clock, count: int) -> None:
    ids = registry.register([row(host=f"h{i}") for i in range(count)])
    clock.advance(5)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(registry.engine, "before_cursor_execute", record)
    try:
        assert registry.heartbeat(ids) == count
    finally:
        event.remove(registry.engine, "before_cursor_execute", record)

    assert len(statements) == 1, statements
    assert statements[0].lstrip().upper().startswith("UPDATE SERVICES")
    records = registry.services()
    assert {r.report_count for r in records} == {1}
    assert {r.state for r in records} == {"up"}
    assert {r.last_heartbeat for r in records} == {T0 + timedelta(seconds=5)}
    assert {r.updated_at for r in records} == {T0 + timedelta(seconds=5)}


def test_heartbeat_counts_and_skips_unknown_ids(registry: Registry) -> None:
    ids = registry.register([row(), row(backend="b2")])
    assert registry.heartbeat([]) == 0
    assert registry.heartbeat([*ids, 999_999]) == 2
    assert registry.heartbeat(ids[:1]) == 1
    assert [r.report_count for r in registry.services()] == [2, 1]


def test_heartbeat_keeps_the_disabled_flag(registry: Registry) -> None:
    (service_id,) = registry.register([row()])
    registry.set_disabled("h1", "b1", True, "broken disk")
    registry.heartbeat([service_id])
    record = by_id(registry, service_id)
    assert record.state == "up"
    assert record.disabled and record.disabled_reason == "broken disk"
    assert not record.is_up


# -- liveness -----------------------------------------------------------------


def test_is_up_edges(make_registry: Callable[..., Registry], clock: Clock) -> None:
    registry = make_registry(service_down_time=60)
    (service_id,) = registry.register([row()])

    never = by_id(registry, service_id)
    assert not never.is_up and never.heartbeat_age is None

    registry.heartbeat([service_id])
    assert by_id(registry, service_id).is_up
    assert by_id(registry, service_id).heartbeat_age == 0

    clock.advance(59.999)
    inside = by_id(registry, service_id)
    assert inside.is_up and inside.heartbeat_age == pytest.approx(59.999)

    clock.advance(0.001)  # exactly service_down_time: still up
    assert by_id(registry, service_id).is_up

    clock.advance(0.001)
    outside = by_id(registry, service_id)
    assert not outside.is_up and outside.heartbeat_age == pytest.approx(60.001)

    registry.heartbeat([service_id])
    assert by_id(registry, service_id).is_up


def test_disabled_and_stopped_rows_are_not_up(registry: Registry) -> None:
    ids = registry.register([row(backend="b1"), row(backend="b2"), row(backend="b3")])
    registry.heartbeat(ids)
    registry.set_disabled("h1", "b2", True)
    registry.mark([ids[2]], "stopped")
    up = {r.id: r.is_up for r in registry.services()}
    assert up == {ids[0]: True, ids[1]: False, ids[2]: False}

    registry.mark([ids[2]], "down")  # 'down' alone does not override a fresh heartbeat
    assert by_id(registry, ids[2]).state == "down"
    registry.heartbeat([ids[2]])  # a heartbeat brings a stopped service back up
    assert by_id(registry, ids[2]).is_up


def test_a_restarted_service_is_up_only_once_its_new_process_heartbeats(
    registry: Registry,
) -> None:
    """Registered again, a row keeps its last heartbeat (the previous process's):
    alive (nobody takes its work over) but not routed to until it heartbeats."""
    (sid,) = registry.register([row(endpoint="tcp://h1:5000")])
    registry.heartbeat([sid])
    registry.mark([sid], "stopped")  # a graceful stop
    registry.register([row(endpoint="tcp://h1:5001")])  # the next process starts
    again = by_id(registry, sid)
    assert (again.state, again.is_alive, again.is_up) == ("starting", True, False)
    assert registry.up_endpoints("volume") == []
    registry.heartbeat([sid])
    assert by_id(registry, sid).is_up and registry.up_endpoints("volume") == ["tcp://h1:5001"]


def test_mark(registry: Registry, clock: Clock) -> None:
    ids = registry.register([row(), row(backend="b2")])
    clock.advance(1)
    registry.mark(ids, "stopped")
    assert {(r.state, r.updated_at) for r in registry.services()} == {
        ("stopped", T0 + timedelta(seconds=1))
    }
    registry.mark([], "up")
    with pytest.raises(ValueError, match="state"):
        registry.mark(ids, "starting")
    with pytest.raises(ValueError, match="state"):
        registry.mark(ids, "bogus")


def test_services_filters(registry: Registry) -> None:
    registry.register(
        [
            row(host="h1", topic="volume"),
            row(host="h2", topic="volume"),
            row(host="h1", binary="backup", topic="backup"),
        ]
    )
    assert [r.host for r in registry.services(topic="volume")] == ["h1", "h2"]
    assert sorted(r.topic for r in registry.services(host="h1")) == ["backup", "volume"]
    assert [(r.host, r.topic) for r in registry.services(topic="backup", host="h1")] == [
        ("h1", "backup")
    ]
    assert registry.services(topic="nothing") == []


def test_up_endpoints(make_registry: Callable[..., Registry], clock: Clock) -> None:
    registry = make_registry(service_down_time=60)
    stale = registry.register([row(host="old", endpoint="tcp://old:1")])
    clock.advance(61)
    ids = registry.register(
        [
            row(host="a", backend="b1", endpoint="tcp://a:1"),
            row(host="a", backend="b2", endpoint="tcp://a:1"),  # same process endpoint
            row(host="b", endpoint="tcp://b:1"),
            row(host="c", endpoint="tcp://c:1"),  # disabled below
            row(host="d", endpoint="tcp://d:1"),  # stopped below
            row(host="e", endpoint=None),
            row(host="f", endpoint="tcp://f:1", topic="backup"),
            row(host="g", endpoint="tcp://g:1"),  # never heartbeats
        ]
    )
    registry.heartbeat(stale)
    clock.advance(61)
    registry.heartbeat(ids[:-1])
    registry.set_disabled("c", "b1", True)
    registry.mark([ids[4]], "stopped")

    assert registry.up_endpoints("volume") == ["tcp://a:1", "tcp://b:1"]
    assert registry.up_endpoints("backup") == ["tcp://f:1"]
    assert registry.up_endpoints("nothing") == []


# -- disabling ----------------------------------------------------------------


def test_set_disabled(registry: Registry) -> None:
    ids = registry.register(
        [row(backend="b1"), row(backend="b1", binary="backup", topic="backup"), row(backend="b2")]
    )
    registry.heartbeat(ids)

    records = registry.set_disabled("h1", "b1", True, "replacing disks")
    assert sorted(r.id for r in records) == sorted(ids[:2])
    assert all(r.disabled and r.disabled_reason == "replacing disks" for r in records)
    assert not any(r.is_up for r in records)
    assert by_id(registry, ids[2]).is_up

    records = registry.set_disabled("h1", "b1", False)
    assert all(not r.disabled and r.disabled_reason is None and r.is_up for r in records)
    # Longer than its column: refused before the database (which would read as an outage).
    with pytest.raises(ValueError, match="longer than 255"):
        registry.set_disabled("h1", "b1", True, "r" * 256)
    assert not by_id(registry, ids[0]).disabled


def test_set_disabled_unknown_service(registry: Registry) -> None:
    registry.register([row()])
    with pytest.raises(ServiceNotRegistered) as info:
        registry.set_disabled("h1", "nope", True)
    error = info.value
    assert isinstance(error, RegistryError)
    assert (error.details, error.retryable) == ({"host": "h1", "backend": "nope"}, False)
    assert "nope" in str(error)


# -- the database going away ----------------------------------------------------


def test_sqlite_directory_renamed_away_and_back(tmp_path: Path, clock: Clock) -> None:
    state = tmp_path / "state"
    url = sqlite_url_for(state)
    assert url == f"sqlite:///{state.resolve() / 'registry.sqlite'}" and state.is_dir()
    registry = Registry(url, now=clock)
    try:
        registry.upgrade()
        ids = registry.register([row()])
        with registry.engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        assert mode == "wal"

        state.rename(tmp_path / "moved")
        for call in (
            registry.services,
            lambda: registry.heartbeat(ids),
            lambda: registry.register([row()]),
        ):
            with pytest.raises(DatabaseUnavailable) as info:
                call()
            assert info.value.retryable
            assert info.value.details["url"] == url
            assert info.value.details["reason"]  # the driver's message

        (tmp_path / "moved").rename(state)
        assert registry.heartbeat(ids) == 1
        assert [r.id for r in registry.services()] == ids
    finally:
        registry.close()


def test_postgresql_unreachable_is_prompt_and_redacted() -> None:
    port = closed_port()
    registry = Registry(f"postgresql://postgres:s3cret@127.0.0.1:{port}/test")
    try:
        for call in (registry.upgrade, registry.services, lambda: registry.heartbeat([1])):
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable) as info:
                call()
            assert time.monotonic() - started < 5
            error = info.value
            assert error.retryable and error.to_dict()["retryable"]
            assert "s3cret" not in str(error) and "s3cret" not in repr(error.details)
            assert (
                error.details["url"] == f"postgresql+psycopg://postgres:***@127.0.0.1:{port}/test"
            )
    finally:
        registry.close()


def test_postgresql_connect_timeout_applies() -> None:
    """A server that accepts TCP but never answers: the connect timeout ends the wait."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        registry = Registry(f"postgresql://postgres@127.0.0.1:{port}/test?connect_timeout=2")
        try:
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable):
                registry.services()
            assert 1 < time.monotonic() - started < 4.5
        finally:
            registry.close()


def test_postgresql_connections_detect_a_dead_peer(db_url: str) -> None:
    """TCP keepalives and a user timeout on every connection; the URL's own win."""
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    from actors.registry.api import PG_TCP_SETTINGS

    def conninfo(url: str) -> dict[str, str]:
        registry = Registry(url)
        try:
            with registry.engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                assert raw is not None
                return {o.keyword.decode(): (o.val or b"").decode() for o in raw.pgconn.info}
        finally:
            registry.close()

    used = conninfo(db_url)
    assert {k: used[k] for k in PG_TCP_SETTINGS} == {k: str(v) for k, v in PG_TCP_SETTINGS.items()}
    sep = "&" if "?" in db_url else "?"
    assert conninfo(f"{db_url}{sep}keepalives_idle=30")["keepalives_idle"] == "30"


def test_bad_urls() -> None:
    with pytest.raises(RegistryError, match="unsupported"):
        Registry("mysql://root:pw@localhost/db")
    with pytest.raises(RegistryError, match="invalid") as info:
        Registry("postgresql://u:s3cret@host:notaport/db")
    assert "s3cret" not in str(info.value)
    with pytest.raises(ValueError):
        Registry("sqlite://", service_down_time=0)


def test_in_memory_sqlite(clock: Clock) -> None:
    with Registry("sqlite://", now=clock) as registry:
        registry.upgrade()
        ids = registry.register([row()])
        assert registry.heartbeat(ids) == 1
        assert registry.up_endpoints("volume") == ["tcp://h1:5000"]


def test_the_postgresql_pool_is_bounded_by_max_connections() -> None:
    from actors import ServiceConfig
    from actors.service import database_connections

    registry = Registry("postgresql://u@127.0.0.1:1/db", max_connections=9)  # never connects
    try:
        pool: Any = registry.engine.pool
        assert (pool.size(), pool._max_overflow) == (2, 7)
    finally:
        registry.close()
    with pytest.raises(ValueError, match="max_connections"):
        Registry("postgresql://u@127.0.0.1:1/db", max_connections=1)
    # A service asks for one per offload worker of every lane, plus the journal's writer.
    config = ServiceConfig(offload_workers=4, offload_system_workers=3, offload_changes_workers=5)
    assert database_connections(config) == 4 + 3 + 5 + 2
