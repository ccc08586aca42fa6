"""The operation journal on SQLite and, when ACTORS_TEST_POSTGRES_URL is set, PostgreSQL.

Same fixtures as test_registry.py: a SQLite file in tmp_path, or a fresh
PostgreSQL database per test; an injected clock for timestamps and pruning.
Every wait on a future has a deadline.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.pool import NullPool

from actors.registry import (
    DatabaseUnavailable,
    InvalidTransition,
    Journal,
    JournalClosed,
    OperationClaimed,
    OperationNotFound,
    OperationRecord,
    Registry,
    ServiceRow,
    sqlite_url_for,
)
from actors.registry import journal as journal_module
from actors.registry.api import MIGRATIONS_DIR, RegistryError
from actors.registry.models import Base
from actors.testing import wait_until
from tests.registry.conftest import T0, Clock

WAIT = 15.0  # seconds: the deadline of every wait on a future


@pytest.fixture
def make_journal(make_registry: Callable[..., Registry]) -> Iterator[Callable[..., Journal]]:
    """Journals, each on its own migrated registry by default; closed afterwards."""
    made: list[Journal] = []

    def make(registry: Registry | None = None, **kwargs: Any) -> Journal:
        journal = Journal(registry or make_registry(), **kwargs)
        made.append(journal)
        return journal

    yield make
    for journal in made:
        journal.close(timeout=WAIT)


@pytest.fixture
def journal(make_journal: Callable[..., Journal]) -> Journal:
    return make_journal()


@pytest.fixture
def record_sql(monkeypatch: pytest.MonkeyPatch) -> Callable[[Registry], list[str]]:
    """record_sql(registry): the SQL the database driver is handed from then on.

    An executemany counts once. On SQLite SQLAlchemy's cursor events see every
    statement; on PostgreSQL the journal's writer also talks to psycopg
    directly (its pipeline), so psycopg's own cursor is watched instead.
    """

    def record(registry: Registry) -> list[str]:
        seen: list[str] = []
        if registry.engine.dialect.name != "postgresql":
            event.listen(
                registry.engine,
                "before_cursor_execute",
                lambda conn, cursor, sql, *rest: seen.append(sql),
            )
            return seen
        import psycopg

        def recording(run: Callable[..., Any]) -> Callable[..., Any]:
            def call(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
                seen.append(query.decode() if isinstance(query, bytes) else str(query))
                return run(cursor, query, *args, **kwargs)

            return call

        for name in ("execute", "executemany"):
            monkeypatch.setattr(psycopg.Cursor, name, recording(getattr(psycopg.Cursor, name)))
        return seen

    return record


def starting(statements: list[str], word: str) -> list[str]:
    return [sql for sql in statements if sql.lstrip().upper().startswith(word)]


def count_rows(registry: Registry) -> int:
    with registry.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM operations")).scalar_one())


def fresh_engine(registry: Registry) -> Any:
    """An engine of its own on the same database: a connection the journal never used."""
    url = registry.engine.url
    return create_engine(url, poolclass=NullPool)


def alembic_config(conn: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = conn
    return config


# -- migrations -----------------------------------------------------------------


def test_migrations_from_empty(make_registry: Callable[..., Registry]) -> None:
    registry = make_registry(upgrade=False)
    registry.upgrade()
    registry.upgrade()  # a no-op
    assert ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head() == "0004_key_scope"
    with registry.engine.connect() as conn:
        # The framework's tables only: an application's come from its own migrations.
        assert set(inspect(conn).get_table_names()) == {"services", "operations", "alembic_version"}
        assert (
            conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            == "0004_key_scope"
        )
        indexes = {ix["name"]: ix for ix in inspect(conn).get_indexes("operations")}
        assert indexes["uq_operations_key_scope_idempotency_key"]["unique"]
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migration_0002_from_0001_and_back(make_registry: Callable[..., Registry]) -> None:
    registry = make_registry(upgrade=False)
    with registry.engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
    assert "operations" not in inspect(registry.engine).get_table_names()
    with registry.engine.begin() as conn:  # a row as 0001 knows it (newer columns: none yet)
        conn.execute(
            text(
                'INSERT INTO services (host, "binary", topic, backend, rpc_version, state,'
                " created_at, updated_at) VALUES ('h1', 'volume', 'volume', 'b1', '1.0',"
                " 'up', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    ids = "SELECT id FROM services"
    with registry.engine.connect() as conn:
        service_ids = list(conn.execute(text(ids)).scalars())

    registry.upgrade()  # 0001 -> head
    assert "operations" in inspect(registry.engine).get_table_names()
    assert [r.id for r in registry.services()] == service_ids  # data kept
    with Journal(registry) as journal:
        record = journal.accept("t", "m", {}).result(WAIT)
        assert journal.get(record.id) == record

    with registry.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0001")
    assert "operations" not in inspect(registry.engine).get_table_names()
    with registry.engine.connect() as conn:
        assert list(conn.execute(text(ids)).scalars()) == service_ids


def test_migration_0004_gives_existing_keys_their_target_as_scope(
    make_registry: Callable[..., Registry],
) -> None:
    registry = make_registry(upgrade=False)
    with registry.engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0003_server_keys")
        conn.execute(
            text(
                "INSERT INTO operations (id, idempotency_key, target, method, args, state,"
                " created_at, updated_at) VALUES ('op-1', 'k1', 'h1@b1', 'm', '{}', 'succeeded',"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    registry.upgrade()  # 0003 -> 0004
    with Journal(registry) as journal:
        kept = journal.get_by_key("h1@b1", "k1")
        assert kept is not None and (kept.id, kept.key_scope) == ("op-1", "h1@b1")
        assert journal.accept("h1@b1", "m", {}, key="k1").result(WAIT).id == "op-1"
    with registry.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0003_server_keys")
        indexes = {ix["name"] for ix in inspect(conn).get_indexes("operations")}
        assert "uq_operations_target_idempotency_key" in indexes
        assert "key_scope" not in {c["name"] for c in inspect(conn).get_columns("operations")}


# -- accept, get, set_state ---------------------------------------------------------


def test_accept_get_set_state_round_trip(journal: Journal, clock: Clock) -> None:
    args = {"size": 10, "name": "vol-1", "tags": ["a", "b"], "nested": {"x": None}}
    record = journal.accept("volume@b1", "create_volume", args).result(WAIT)
    assert isinstance(record, OperationRecord)
    assert (record.target, record.method, record.args) == ("volume@b1", "create_volume", args)
    assert (record.state, record.result, record.error, record.reason) == (
        "accepted",
        None,
        None,
        None,
    )
    assert record.idempotency_key is None
    assert record.created_at == T0 == record.updated_at and record.finished_at is None
    assert not record.finished
    assert journal.get(record.id) == record
    assert journal.get("no-such-id") is None

    clock.advance(1)
    running = journal.set_state(record.id, "running").result(WAIT)
    assert running.state == "running" and running.updated_at == T0 + timedelta(seconds=1)
    assert running.finished_at is None

    clock.advance(2)
    done = journal.set_state(record.id, "succeeded", result={"id": 7}).result(WAIT)
    assert done.state == "succeeded" and done.result == {"id": 7} and done.finished
    assert done.finished_at == T0 + timedelta(seconds=3) == done.updated_at
    assert done.created_at == T0
    assert journal.get(record.id) == done

    failed = journal.accept("volume@b1", "delete_volume", ["vol-1"]).result(WAIT)
    failed = journal.set_state(
        failed.id, "failed", error={"type": "Boom", "message": "no"}, reason="driver error"
    ).result(WAIT)
    assert journal.get(failed.id) == failed
    assert failed.error == {"type": "Boom", "message": "no"}
    assert failed.reason == "driver error"


def test_set_state_errors(journal: Journal) -> None:
    record = journal.accept("t", "m", None).result(WAIT)
    with pytest.raises(OperationNotFound):
        journal.set_state("no-such-id", "running").result(WAIT)
    journal.set_state(record.id, "interrupted", reason="crashed").result(WAIT)
    with pytest.raises(InvalidTransition) as info:
        journal.set_state(record.id, "running").result(WAIT)
    assert info.value.details["state"] == "interrupted"
    assert journal.get(record.id).state == "interrupted"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="state"):
        journal.set_state(record.id, "accepted")
    with pytest.raises(ValueError, match="state"):
        journal.set_state(record.id, "bogus")
    with pytest.raises(TypeError, match="JSON"):
        journal.accept("t", "m", {"x": object()})
    with pytest.raises(TypeError, match="JSON"):
        journal.set_state(record.id, "failed", error=object())
    with pytest.raises(TypeError, match="JSON"):  # NaN is not JSON: PostgreSQL refuses it
        journal.accept("t", "m", {"x": float("nan")})
    # The writer is unharmed by all that.
    assert journal.accept("t", "m", 1).result(WAIT).args == 1


def test_set_state_without_returning_commits_and_reads_nothing_back(journal: Journal) -> None:
    # For writers that only need the commit (the service's own): no row is read back.
    records = [journal.accept("t", "m", i).result(WAIT) for i in range(3)]
    alone = journal.set_state(records[0].id, "running", returning=False)
    assert alone.result(WAIT) is None
    batch = [  # submitted together: the batch path (one statement for all)
        journal.set_state(r.id, "succeeded", result=i, returning=False)
        for i, r in enumerate(records)
    ]
    assert [f.result(WAIT) for f in batch] == [None, None, None]
    assert [journal.get(r.id).result for r in records] == [0, 1, 2]  # type: ignore[union-attr]
    with pytest.raises(InvalidTransition):
        journal.set_state(records[0].id, "failed", returning=False).result(WAIT)
    with pytest.raises(OperationNotFound):
        journal.set_state("no-such-id", "running", returning=False).result(WAIT)


def test_list_and_unfinished(journal: Journal, clock: Clock) -> None:
    ids = []
    for i in range(5):
        ids.append(journal.accept(f"t{i % 2}", "m", i).result(WAIT).id)
        clock.advance(1)
    journal.set_state(ids[1], "running").result(WAIT)
    journal.set_state(ids[2], "succeeded").result(WAIT)
    assert [r.id for r in journal.list()] == ids
    assert [r.id for r in journal.list(limit=2)] == ids[:2]
    assert [r.id for r in journal.list(limit=2, newest=True)] == ids[3:]
    assert [r.id for r in journal.list(target="t0")] == [ids[0], ids[2], ids[4]]
    assert [r.id for r in journal.list(state="accepted")] == [ids[0], ids[3], ids[4]]
    assert [r.id for r in journal.list(state="accepted", target="t1")] == [ids[3]]
    assert [r.id for r in journal.unfinished()] == [ids[0], ids[1], ids[3], ids[4]]


def test_unfinished_pages_by_target_in_order(journal: Journal, clock: Clock) -> None:
    """Recovery reads its own managers' operations a page at a time, none twice."""
    ids: dict[str, list[str]] = {"h@a": [], "h@b": [], "other@a": []}
    for i in range(7):
        for target in ids:
            ids[target].append(journal.accept(target, "m", i).result(WAIT).id)
        if i % 3 == 0:
            clock.advance(1)  # some rows share a created_at: the id breaks the tie
    mine = {"h@a", "h@b"}
    expected = [r.id for r in journal.unfinished() if r.target in mine]
    assert len(expected) == 14
    pages: list[list[str]] = []
    after = None
    while True:
        page = journal.unfinished(targets=mine, after=after, limit=4)
        pages.append([r.id for r in page])
        if len(page) < 4:
            break
        after = (page[-1].created_at, page[-1].id)
    assert [len(p) for p in pages] == [4, 4, 4, 2]
    assert [op_id for page in pages for op_id in page] == expected
    assert journal.unfinished(targets=["nobody@x"]) == []


# -- idempotency --------------------------------------------------------------------


def test_a_key_scoped_to_a_topic_is_one_operation_across_its_managers(journal: Journal) -> None:
    topic = "topic:shares"
    first = journal.accept("h1@b1", "create", {"n": 1}, key="k", scope=topic).result(WAIT)
    elsewhere = journal.accept("h2@b1", "create", {"n": 1}, key="k", scope=topic).result(WAIT)
    assert elsewhere == first and first.key_scope == topic and first.target == "h1@b1"
    # Both in one batch: the first accept is the one written, the second resolves to it.
    a = journal.accept("h1@b1", "create", {}, key="same-batch", scope=topic)
    b = journal.accept("h2@b1", "create", {}, key="same-batch", scope=topic)
    assert a.result(WAIT) == b.result(WAIT)
    # The same key scoped to one manager (the default) is another operation.
    own = journal.accept("h2@b1", "create", {"n": 1}, key="k").result(WAIT)
    assert own.id != first.id and own.key_scope == "h2@b1"
    assert journal.get_by_key(topic, "k") == first
    assert journal.get_by_key("h2@b1", "k") == own


def test_idempotent_accept_sequential(journal: Journal) -> None:
    registry = journal._registry
    first = journal.accept("t", "create", {"n": 1}, key="req-1").result(WAIT)
    again = journal.accept("t", "create", {"n": 2}, key="req-1").result(WAIT)
    assert again == first  # the first arguments are kept
    assert journal.get_by_key("t", "req-1") == first
    assert journal.get_by_key("t", "other") is None
    other_target = journal.accept("u", "create", {}, key="req-1").result(WAIT)
    assert other_target.id != first.id
    assert count_rows(registry) == 2

    journal.set_state(first.id, "succeeded", result="done").result(WAIT)
    replay = journal.accept("t", "create", {"n": 1}, key="req-1").result(WAIT)
    assert (replay.id, replay.state, replay.result) == (first.id, "succeeded", "done")
    assert count_rows(registry) == 2


def test_idempotent_accept_within_one_batch(make_journal: Callable[..., Journal]) -> None:
    journal = make_journal(batch_wait=0.5, batch_max=4)
    futures = [journal.accept("t", "m", i, key="same") for i in range(3)]
    futures.append(journal.accept("t", "m", 3))  # fills the batch: written at once
    records = [f.result(WAIT) for f in futures]
    assert journal.batches == 1
    assert records[0] == records[1] == records[2]
    assert records[0].args == 0 and records[3].id != records[0].id
    assert count_rows(journal._registry) == 2


def test_idempotent_accept_concurrent(make_journal: Callable[..., Journal]) -> None:
    journal = make_journal()
    barrier = threading.Barrier(20)
    results: list[OperationRecord] = []
    errors: list[BaseException] = []

    def accept() -> None:
        barrier.wait()
        try:
            results.append(journal.accept("t", "m", {}, key="k").result(WAIT))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=accept) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert errors == [] and len(results) == 20
    assert len({r.id for r in results}) == 1
    assert count_rows(journal._registry) == 1


def test_idempotent_accept_across_journals(make_journal: Callable[..., Journal]) -> None:
    """Two journals (two daemons) on one database, racing with the same keys."""
    first = make_journal()
    second = make_journal()
    futures = [j.accept("t", "m", i, key=f"k{i % 10}") for i in range(40) for j in (first, second)]
    records = [f.result(WAIT) for f in futures]
    assert len({r.id for r in records}) == 10
    assert count_rows(first._registry) == 10


# -- group commit ---------------------------------------------------------------------


def test_group_commit_groups_and_acknowledges_after_commit(
    make_journal: Callable[..., Journal],
) -> None:
    journal = make_journal()
    registry = journal._registry
    reader = fresh_engine(registry)
    commits: list[int] = []
    visible: dict[str, bool] = {}
    lock = threading.Lock()

    def on_commit(conn: Any) -> None:
        commits.append(1)

    def check_visible(future: Future[OperationRecord]) -> None:
        # Runs as soon as the future resolves: the row must already be committed.
        record = future.result()
        with reader.connect() as conn:
            found = conn.execute(
                text("SELECT count(*) FROM operations WHERE id = :id"), {"id": record.id}
            ).scalar_one()
        with lock:
            visible[record.id] = found == 1
            if len(visible) == count:
                all_checked.set()

    count = 200
    all_checked = threading.Event()
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def accept(i: int) -> None:
        barrier.wait()
        try:
            future = journal.accept("t", "m", {"i": i})
            future.add_done_callback(check_visible)
            future.result(WAIT)
        except BaseException as exc:
            errors.append(exc)

    event.listen(registry.engine, "commit", on_commit)
    try:
        threads = [threading.Thread(target=accept, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        # Callbacks may still run after result() returned in the callers.
        all_checked.wait(WAIT)
    finally:
        event.remove(registry.engine, "commit", on_commit)
        reader.dispose()
    assert errors == []
    assert len(visible) == count and all(visible.values())
    assert count_rows(registry) == count
    # Far fewer transactions than operations (one per operation would be 200).
    assert len(commits) == journal.batches
    assert len(commits) <= count // 5, len(commits)


# -- crash recovery, pruning, closing -------------------------------------------------


def test_unfinished_after_a_crash(make_registry: Callable[..., Registry], clock: Clock) -> None:
    before = Journal(make_registry())
    accepted = before.accept("t", "create", {"n": 1}, key="a").result(WAIT)
    clock.advance(1)
    running = before.accept("t", "create", {"n": 2}).result(WAIT)
    before.set_state(running.id, "running").result(WAIT)
    done = before.accept("t", "create", {"n": 3}).result(WAIT)
    before.set_state(done.id, "succeeded").result(WAIT)
    # The "crash": no close(), no flush; a new process opens the database.
    after_registry = make_registry()
    after = Journal(after_registry)
    try:
        found = after.unfinished()
        assert [(r.id, r.state) for r in found] == [
            (accepted.id, "accepted"),
            (running.id, "running"),
        ]
        assert found[1].args == {"n": 2}
        interrupted = after.set_state(running.id, "interrupted", reason="crash").result(WAIT)
        assert interrupted.reason == "crash" and interrupted.finished_at is not None
        assert [r.id for r in after.unfinished()] == [accepted.id]
    finally:
        after.close(WAIT)
        before.close(WAIT)


def test_prune_removes_only_old_finished(journal: Journal, clock: Clock) -> None:
    old_done = journal.accept("t", "m", 1).result(WAIT)
    old_open = journal.accept("t", "m", 2).result(WAIT)
    journal.set_state(old_done.id, "failed", error="x").result(WAIT)
    running = journal.accept("t", "m", 3).result(WAIT)
    journal.set_state(running.id, "running").result(WAIT)
    clock.advance(3600)
    new_done = journal.accept("t", "m", 4).result(WAIT)
    journal.set_state(new_done.id, "succeeded").result(WAIT)
    clock.advance(60)

    assert journal.prune(timedelta(hours=1)) == 1
    assert {r.id for r in journal.list()} == {old_open.id, running.id, new_done.id}
    assert journal.prune(timedelta(hours=1)) == 0
    assert journal.prune(timedelta(0)) == 1
    assert {r.id for r in journal.list()} == {old_open.id, running.id}


def test_close_flushes_then_refuses(make_journal: Callable[..., Journal]) -> None:
    journal = make_journal(batch_wait=0.2, batch_max=1000)
    pending = [journal.accept("t", "m", i) for i in range(10)]
    journal.close(WAIT)
    assert all(f.done() for f in pending)
    assert [f.result(0).args for f in pending] == list(range(10))
    late = journal.accept("t", "m", 99)
    assert isinstance(late.exception(WAIT), JournalClosed)
    assert isinstance(
        journal.set_state(pending[0].result().id, "running").exception(WAIT), JournalClosed
    )
    assert count_rows(journal._registry) == 10
    journal.close(WAIT)  # twice is fine


# -- the database going away ----------------------------------------------------------


def test_sqlite_directory_renamed_away_and_back(tmp_path: Path, clock: Clock) -> None:
    state = tmp_path / "state"
    registry = Registry(sqlite_url_for(state), now=clock)
    journal: Journal | None = None
    try:
        registry.upgrade()
        journal = Journal(registry)
        before = journal.accept("t", "m", 0, key="k0").result(WAIT)

        state.rename(tmp_path / "moved")
        futures = [journal.accept("t", "m", i, key=f"k{i}") for i in range(1, 6)]
        futures.append(journal.set_state(before.id, "running"))
        for future in futures:
            error = future.exception(WAIT)  # a deadline: never a hang
            assert isinstance(error, DatabaseUnavailable), error
            assert error.retryable and error.details["reason"]
        with pytest.raises(DatabaseUnavailable):
            journal.get(before.id)
        with pytest.raises(DatabaseUnavailable):
            journal.unfinished()

        (tmp_path / "moved").rename(state)  # the writer survived: retries work
        retried = journal.accept("t", "m", 1, key="k1").result(WAIT)
        assert journal.set_state(before.id, "running").result(WAIT).state == "running"
        assert {r.id for r in journal.unfinished()} == {before.id, retried.id}
    finally:
        if journal is not None:
            journal.close(WAIT)
        registry.close()


def test_a_backup_taken_while_the_journal_is_busy_holds_every_acknowledged_row(
    tmp_path: Path, clock: Clock
) -> None:
    """Acknowledged batches may still sit in the WAL: backup() copies them too."""
    registry = Registry(sqlite_url_for(tmp_path / "state"), now=clock)
    try:
        registry.upgrade()
        journal = Journal(registry)
        try:
            ids = [journal.accept("t", "m", i).result(WAIT).id for i in range(20)]
            copy = registry.backup(tmp_path / "copy.sqlite")
            with pytest.raises(RegistryError, match="exists already"):
                registry.backup(copy)
        finally:
            journal.close(WAIT)
        backup = Registry(f"sqlite:///{copy}")
        try:
            assert {r.id for r in Journal(backup).list(limit=100)} >= set(ids)
        finally:
            backup.close()
    finally:
        registry.close()


def test_a_backup_that_fails_leaves_nothing_behind_and_says_why(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(sqlite_url_for(tmp_path / "state"), now=clock)
    try:
        registry.upgrade()
        with pytest.raises(RegistryError, match="is not a directory"):
            registry.backup(tmp_path / "missing" / "copy.sqlite")

        def no_link(source: Any, target: Any) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("actors.registry.api.os.link", no_link)
        with pytest.raises(RegistryError, match="No space left") as caught:
            registry.backup(tmp_path / "copy.sqlite")
        assert not isinstance(caught.value, DatabaseUnavailable)  # not the registry's fault
        assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]  # no partial file left
    finally:
        registry.close()


def test_backup_of_a_postgresql_registry_points_to_its_own_tools(make_registry) -> None:
    registry = make_registry()
    if registry.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    with pytest.raises(RegistryError, match="pg_dump"):
        registry.backup("/nonexistent/copy")


def test_an_idle_journal_folds_the_wal_into_the_database_file(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Busy, commits live in the WAL; idle, the database file holds them too.

    Another connection stays open, as the daemon's readers may: closing the
    writer's is then not the last close, which would fold the WAL in anyway.
    """
    monkeypatch.setattr(journal_module, "_IDLE_RELEASE", 0.05)
    state = tmp_path / "state"
    registry = Registry(sqlite_url_for(state), now=clock)
    journal: Journal | None = None
    try:
        registry.upgrade()
        (database,) = state.glob("*.sqlite")
        other = sqlite3.connect(database)
        other.execute("SELECT count(*) FROM operations").fetchall()  # opened, then idle
        journal = Journal(registry)
        ids = [journal.accept("t", "m", i).result(WAIT).id for i in range(5)]
        wait_until(
            lambda: journal._conn is None,
            timeout=WAIT,
            message="the idle writer to let go of its connection",
        )
        # The database file alone, copied without its WAL, has every row.
        alone = tmp_path / "alone.sqlite"
        alone.write_bytes(database.read_bytes())
        other.close()
        with sqlite3.connect(alone) as conn:
            found = {row[0] for row in conn.execute("SELECT id FROM operations")}
        assert set(ids) <= found
    finally:
        if journal is not None:
            journal.close(WAIT)
        registry.close()


def test_the_write_queue_is_bounded(tmp_path):
    """A journal that cannot keep up refuses new work at once instead of growing."""
    import threading

    from actors.registry import Registry
    from actors.registry.journal import Journal, JournalBusy

    registry = Registry(f"sqlite:///{tmp_path / 'j.sqlite'}")
    registry.upgrade()
    journal = Journal(registry, batch_max=1, max_pending=2)
    gate = threading.Event()
    original = journal._take

    def slow_take():  # hold the writer so that the queue fills
        gate.wait(10)
        return original()

    journal._take = slow_take  # type: ignore[method-assign]
    try:
        futures = [journal.accept("t", "m", {}) for _ in range(4)]
        refused = [f for f in futures if f.done() and isinstance(f.exception(), JournalBusy)]
        assert len(refused) >= 1 and refused[0].exception().retryable
    finally:
        gate.set()
        journal.close()
        registry.close()


def test_running_then_finished_in_one_batch_is_one_update(
    make_registry: Callable[..., Registry],
    make_journal: Callable[..., Journal],
    record_sql: Callable[[Registry], list[str]],
) -> None:
    registry = make_registry()
    journal = make_journal(registry)
    op = journal.accept("h@b", "m", {}).result(10)
    statements = record_sql(registry)
    with journal._cond:  # (re-entrant) the writer takes nothing until both are in
        running = journal.set_state(op.id, "running")
        done = journal.set_state(op.id, "succeeded", result={"ok": True})
    assert done.result(10).state == "succeeded"
    assert running.result(10).state == "succeeded"  # answered by the state that superseded it
    assert len(starting(statements, "UPDATE")) == 1
    assert journal.get(op.id).result == {"ok": True}  # type: ignore[union-attr]


def test_a_batch_of_state_changes_is_one_update_with_each_outcome_right(
    make_registry: Callable[..., Registry],
    make_journal: Callable[..., Journal],
    record_sql: Callable[[Registry], list[str]],
) -> None:
    from actors.registry.journal import InvalidTransition, OperationNotFound

    registry = make_registry()
    journal = make_journal(registry)
    done, failing, ok = (journal.accept("h@b", "m", {"n": n}).result(10) for n in range(3))
    journal.set_state(done.id, "succeeded", result=1).result(10)
    statements = record_sql(registry)
    with journal._cond:  # (re-entrant) one batch
        again = journal.set_state(done.id, "failed", error={"x": 1})
        failed = journal.set_state(failing.id, "failed", error={"type": "E"}, reason="boom")
        missing = journal.set_state("no-such-op", "running")
        succeeded = journal.set_state(ok.id, "succeeded", result={"r": 2}, release_key=True)
    with pytest.raises(InvalidTransition):
        again.result(10)
    with pytest.raises(OperationNotFound):
        missing.result(10)
    assert failed.result(10).state == "failed" and failed.result(10).reason == "boom"
    assert succeeded.result(10).result == {"r": 2}
    assert len(starting(statements, "UPDATE")) == 1  # one executemany for the batch
    assert journal.get(done.id).result == 1  # type: ignore[union-attr]  # untouched
    assert journal.get(failing.id).error == {"type": "E"}  # type: ignore[union-attr]


def test_two_final_states_of_one_operation_in_one_batch_the_first_wins(
    journal: Journal,
) -> None:
    from actors.registry.journal import InvalidTransition

    op = journal.accept("h@b", "m", {}).result(WAIT)
    other = journal.accept("h@b", "m", {"n": 2}).result(WAIT)
    with journal._cond:  # (re-entrant) one batch
        first = journal.set_state(op.id, "succeeded", result={"first": True})
        second = journal.set_state(op.id, "failed", error={"type": "E"})
        beside = journal.set_state(other.id, "succeeded", result=2)
    assert first.result(WAIT).result == {"first": True}
    with pytest.raises(InvalidTransition):
        second.result(WAIT)
    assert beside.result(WAIT).state == "succeeded"
    stored = journal.get(op.id)
    assert stored is not None and stored.state == "succeeded" and stored.error is None


def test_a_postgresql_batch_is_one_pipeline_then_the_commit(
    make_registry: Callable[..., Registry],
    make_journal: Callable[..., Journal],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Accepts, keyed accepts and state changes of one batch reach the server
    together (a pipeline): the batch waits for two round trips, not one per
    statement."""
    registry = make_registry()
    if registry.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    import psycopg

    journal = make_journal(registry)
    ops = [journal.accept("h@b", "m", {"n": n}).result(WAIT) for n in range(3)]
    pipelines: list[int] = []
    run = psycopg.Connection.pipeline

    def pipeline(conn: Any) -> Any:
        pipelines.append(1)
        return run(conn)

    monkeypatch.setattr(psycopg.Connection, "pipeline", pipeline)
    with journal._cond:  # (re-entrant) one batch
        accepted = journal.accept("h@b", "m", {"new": 1})
        keyed = journal.accept("h@b", "m", {"new": 2}, key="k1")
        changed = [journal.set_state(op.id, "succeeded", result=op.args) for op in ops]
    assert accepted.result(WAIT).state == "accepted"
    assert keyed.result(WAIT).idempotency_key == "k1"
    assert [future.result(WAIT).result for future in changed] == [{"n": n} for n in range(3)]
    assert pipelines == [1]
    assert journal.accept("h@b", "m", {"new": 2}, key="k1").result(WAIT).id == keyed.result(WAIT).id


def test_without_pipeline_mode_a_postgresql_batch_is_written_the_same(
    make_registry: Callable[..., Registry],
    make_journal: Callable[..., Journal],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """psycopg on a libpq older than 14 has no pipeline: statements one by one."""
    from actors.registry.journal import InvalidTransition

    registry = make_registry()
    if registry.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    monkeypatch.setattr(journal_module, "_pipeline_supported", lambda registry: False)
    journal = make_journal(registry)
    ops = [journal.accept("h@b", "m", {"n": n}).result(WAIT) for n in range(3)]
    journal.set_state(ops[0].id, "succeeded", result=0).result(WAIT)
    with journal._cond:  # (re-entrant) one batch
        accepted = journal.accept("h@b", "m", {"new": 1})
        keyed = [journal.accept("h@b", "m", {"new": 2}, key="k1") for _ in range(2)]
        again = journal.set_state(ops[0].id, "failed", error={"x": 1})
        changed = [journal.set_state(op.id, "succeeded", result=op.args) for op in ops[1:]]
    assert accepted.result(WAIT).state == "accepted"
    assert keyed[0].result(WAIT) == keyed[1].result(WAIT)
    with pytest.raises(InvalidTransition):
        again.result(WAIT)
    assert [future.result(WAIT).result for future in changed] == [{"n": 1}, {"n": 2}]


def test_hosts_racing_on_the_same_keys_never_deadlock(
    make_registry: Callable[..., Registry], make_journal: Callable[..., Journal]
) -> None:
    """Two hosts' journals on one database, retries of the same topic keys
    reaching both in opposite orders within their batches: every accept is
    answered, each key with one operation. (Keys inserted in the order they
    come would lock each other's on PostgreSQL: a deadlock that failed whole
    batches with DatabaseUnavailable.)"""
    registry = make_registry()
    journals = [make_journal(registry), make_journal(make_registry(upgrade=False))]
    for round_ in range(8):
        keys = [f"r{round_}-{i:02d}" for i in range(30)]
        with journals[0]._cond, journals[1]._cond:  # (re-entrant) one batch each
            first = [journals[0].accept("h1@b", "m", {}, key=k, scope="topic:t") for k in keys]
            second = [
                journals[1].accept("h2@b", "m", {}, key=k, scope="topic:t") for k in reversed(keys)
            ]
        ours = [f.result(WAIT) for f in first]
        theirs = [f.result(WAIT) for f in reversed(second)]
        assert [r.id for r in ours] == [r.id for r in theirs]
    assert count_rows(registry) == 8 * 30


def test_a_key_released_and_accepted_again_in_one_batch_is_a_new_operation(
    journal: Journal,
) -> None:
    """A failure that frees its key, and the retry's accept of that key, in one
    batch: state changes are written first, so the retry runs as a new operation.
    (Accepts first read the key back from a row that no longer held it: KeyError,
    failing the whole batch.)"""
    first = journal.accept("h@b", "m", {}, key="k", scope="topic:t").result(WAIT)
    with journal._cond:  # (re-entrant) one batch
        released = journal.set_state(first.id, "failed", release_key=True, returning=False)
        retried = journal.accept("h@b", "m", {}, key="k", scope="topic:t")
        beside = journal.accept("h@b", "m", {"n": 1})
    assert released.result(WAIT) is None
    again = retried.result(WAIT)
    assert again.id != first.id and again.state == "accepted"
    assert beside.result(WAIT).state == "accepted"
    assert journal.get_by_key("topic:t", "k") == again


def test_a_key_that_changes_hands_while_written_is_inserted_again_or_retryable(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held at the INSERT, gone at the read-back (another host released or pruned
    it in between): inserted again; if it keeps changing hands, a retryable error,
    never a KeyError that fails the whole batch."""
    held = journal.accept("h@b", "m", {}, key="k", scope="topic:t").result(WAIT)
    by_keys = journal_module.Journal._by_keys
    misses = [1]  # the first read-back finds nothing

    def read_back(self: Journal, conn: Any, keys: Any) -> Any:
        if misses:
            misses.pop()
            return {}
        return by_keys(self, conn, keys)

    monkeypatch.setattr(journal_module.Journal, "_by_keys", read_back)
    assert journal.accept("h@b", "m", {}, key="k", scope="topic:t").result(WAIT) == held
    misses.extend([1] * 10)  # never found again
    with pytest.raises(DatabaseUnavailable, match="changed hands") as failed:
        journal.accept("h@b", "m", {}, key="k", scope="topic:t").result(WAIT)
    assert failed.value.retryable


def test_a_batch_that_meets_a_deadlock_runs_again(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database rolled the transaction back whole: the batch runs again
    (at most three times in all) instead of failing its requests."""

    class Deadlock(Exception):
        sqlstate = "40P01"

    runs: list[int] = []
    write = journal_module.Journal._writing

    def writing(self: Journal) -> Any:
        runs.append(1)
        if len(runs) == 1:
            raise DatabaseUnavailable("db", "deadlock detected") from Deadlock()
        return write(self)

    monkeypatch.setattr(journal_module.Journal, "_writing", writing)
    record = journal.accept("h@b", "m", {"n": 1}).result(WAIT)
    assert len(runs) == 2 and journal.get(record.id) == record

    runs.clear()

    def always(self: Journal) -> Any:
        runs.append(1)
        raise DatabaseUnavailable("db", "deadlock detected") from Deadlock()

    monkeypatch.setattr(journal_module.Journal, "_writing", always)
    with pytest.raises(DatabaseUnavailable):
        journal.accept("h@b", "m", {"n": 2}).result(WAIT)
    assert len(runs) == 3


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipeline", "statements"])
def test_a_connection_closed_between_batches_fails_no_request(
    make_registry: Callable[..., Registry],
    make_journal: Callable[..., Journal],
    monkeypatch: pytest.MonkeyPatch,
    pipeline: bool,
) -> None:
    """The server closed the writer's kept connection (a restart, an idle
    timeout, an operator's pg_terminate_backend): the next batch, which had
    sent nothing yet, runs again on a new connection instead of failing."""
    registry = make_registry()
    if registry.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    if not pipeline:
        monkeypatch.setattr(journal_module, "_pipeline_supported", lambda registry: False)
    journal = make_journal(registry)
    first = journal.accept("h@b", "m", {"n": 1}).result(WAIT)
    assert journal._conn is not None  # kept for the next batch
    engine = fresh_engine(registry)
    try:
        with engine.connect() as conn:
            (killed,) = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).one()
        assert killed >= 1
    finally:
        engine.dispose()
    second = journal.accept("h@b", "m", {"n": 2}).result(WAIT)
    done = journal.set_state(first.id, "succeeded", result=1).result(WAIT)
    assert second.state == "accepted" and journal.get(second.id) == second
    assert done.state == "succeeded"


def test_a_batch_of_new_operations_is_stored_exactly_as_accepted(
    make_registry: Callable[..., Registry],
    make_journal: Callable[..., Journal],
    record_sql: Callable[[Registry], list[str]],
) -> None:
    """One batch of accepts (one executemany) round-trips awkward text: tab,
    newline, backslash, quotes, NUL-free unicode, nested JSON, JSON null next
    to SQL NULL."""
    registry = make_registry()
    journal = make_journal(registry)
    awkward = ["tab\there", "line\nbreak", "back\\slash", "\\N", "quote\"'", "é ☃ 𝄞", ""]
    statements = record_sql(registry)
    with journal._cond:  # (re-entrant) the writer takes nothing until all are in
        futures = [
            journal.accept(f"h@b{text}", f"m{text}", {"text": text, "n": [i, None, {"x": 1.5}]})
            for i, text in enumerate(awkward)
        ]
        futures.append(journal.accept("h@b", "m", None))
    records = [f.result(WAIT) for f in futures]
    assert journal.batches >= 1
    for record in records:
        stored = journal.get(record.id)
        assert stored == record, (stored, record)
    assert journal.get(records[-1].id).args is None  # type: ignore[union-attr]
    assert len(starting(statements, "INSERT")) == 1


def test_claims_come_back_in_the_order_given(journal: Journal) -> None:
    """(They are locked in the order of their ids, as the writer locks rows.)"""
    left = [journal.accept("gone@b1", "m", {"n": n}).result(WAIT) for n in range(5)]
    given = [left[3], left[0], left[4], left[1]]
    claimed = journal.claim_all([*given, given[0]], "h1@b1")  # once each
    assert [r.id for r in claimed] == [r.id for r in given]
    assert all(r.target == "h1@b1" and journal.get(r.id) == r for r in claimed)


def test_claims_are_compare_and_set(journal: Journal) -> None:
    """Of two claims made from the same read, one wins; a changed row is nobody's to claim."""
    left = journal.accept("gone@b1", "m", {}, key="c", scope="topic:t").result(WAIT)
    (mine,) = journal.claim_all([left], "h1@b1")
    assert journal.claim_all([left], "h2@b1") == []
    assert journal.get(left.id) == mine and mine.target == "h1@b1"
    with pytest.raises(OperationClaimed):  # the old owner's writes are fenced off
        journal.set_state(mine.id, "failed", release_key=True, owner="gone@b1").result(WAIT)
    journal.set_state(mine.id, "running", owner="h1@b1").result(WAIT)
    assert journal.claim_all([mine]) == []  # it moved on since `mine` was read
    # A down owner's row is taken over; an up owner's is left to it.
    registry = journal._registry
    other = journal.accept("h3@b1", "m", {}, key="d", scope="topic:t").result(WAIT)
    (row_id,) = registry.register([ServiceRow("h3", "svc", "t", "b1", None, "1.0")])
    registry.heartbeat([row_id])
    assert journal.take_over(other, "h1@b1") is None
    registry.mark([row_id], "stopped")
    taken = journal.take_over(other, "h1@b1")
    assert taken is not None and journal.get(other.id) == taken
