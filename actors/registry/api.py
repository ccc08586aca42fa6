"""The service registry: which services run where, and which of them are up.

Every process registers its services (one row per host, binary, topic and
backend) and then sends one batched heartbeat per interval for all of them: a
single UPDATE, however many managers the process hosts. A service "is up" when
it is not disabled, not stopped, and its last heartbeat is at most
`service_down_time` seconds old.

The database is a SQLite file (WAL) on one host, or PostgreSQL shared by every
daemon. Whatever goes wrong with the database surfaces as one retryable error,
`DatabaseUnavailable`, so callers can keep serving RPC through an outage.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.util import CommandError
from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Engine,
    RowMapping,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, StaticPool
from sqlalchemy.sql.dml import Insert

from actors.errors import ActorsError
from actors.registry._watchdog import watch_statements
from actors.registry.models import ServiceModel
from actors.registry.schema import FRAMEWORK_MIGRATIONS, Migrations, apply_migrations
from transport.errors import register_error

try:  # psycopg is only needed for PostgreSQL URLs.
    import psycopg
except ImportError:  # pragma: no cover - depends on the installation
    psycopg = None  # type: ignore[assignment]

__all__ = [
    "CONNECT_TIMEOUT",
    "DATABASE_ERRORS",
    "MIGRATIONS_DIR",
    "STATEMENT_TIMEOUT",
    "DatabaseUnavailable",
    "Registry",
    "RegistryError",
    "ServiceNotRegistered",
    "ServiceRecord",
    "ServiceRow",
    "is_database_error",
    "sqlite_url_for",
]

# Where the framework's Alembic scripts live: shipped inside the package, no alembic.ini.
MIGRATIONS_DIR = FRAMEWORK_MIGRATIONS.script_location

# Seconds: PostgreSQL connect timeout (also the pool checkout timeout) and the
# per-statement limit on PostgreSQL / lock wait on SQLite, so no call hangs.
CONNECT_TIMEOUT = 5
STATEMENT_TIMEOUT = 10
# Seconds past the statement timeout after which the client gives up on a
# command the server has not answered (a stalled path: see _watchdog).
WATCHDOG_MARGIN = 5

# libpq's TCP settings for PostgreSQL: statement_timeout is enforced by the
# server, so it cannot end a wait on a server that lost power or a network
# that dropped; without these the OS gives up on such a connection after
# about two hours. Idle 10 s, then 3 probes 5 s apart: gone within 25 s.
# tcp_user_timeout (ms) bounds how long sent data may stay unacknowledged.
PG_TCP_SETTINGS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 25_000,
}

MAX_REASON = 255  # characters of a service's disabled_reason (its column's length)

# States that mark() may set; 'starting' is set by register() only.
MARKABLE_STATES = frozenset({"up", "down", "stopped"})

# Connection execution option asking for a write transaction (BEGIN IMMEDIATE on
# SQLite). Set it through `Registry.transaction(write=True)` or `Registry.connect(write=True)`.
_WRITE = "actors_registry_write"

# Arbitrary constant key of the PostgreSQL advisory lock held while migrating.
_MIGRATION_LOCK = 0x61637472  # "actr"

# What the database layer raises when the database cannot be reached or used.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (DBAPIError, PoolTimeout, sqlite3.Error)
if psycopg is not None:
    DATABASE_ERRORS += (psycopg.Error,)
_BACKUP_ERRORS: tuple[type[BaseException], ...] = (*DATABASE_ERRORS, OSError)


def is_database_error(exc: BaseException) -> bool:
    """Whether `exc` came from the database (connection, pool, driver), not from our code.

    Such an error means "the database is unavailable now": wrap it with
    `Registry.unavailable(exc)` to get the retryable `DatabaseUnavailable`.
    """
    return isinstance(exc, DATABASE_ERRORS)


_ALEMBIC_LOCK = threading.Lock()


class RegistryError(ActorsError):
    """Base of the registry's errors."""


class DatabaseUnavailable(RegistryError):
    """The registry database cannot be reached or used now; retry later.

    `url` has its password redacted; `reason` is the driver's message.
    """

    retryable = True

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"registry database {url} is unavailable: {reason}", url=url, reason=reason
        )


class ServiceNotRegistered(RegistryError):
    """No live service row exists for this host and backend."""

    def __init__(self, host: str, backend: str) -> None:
        super().__init__(
            f"no service registered for backend {backend!r} on host {host!r}",
            host=host,
            backend=backend,
        )


register_error(RegistryError, DatabaseUnavailable, ServiceNotRegistered)


@dataclass(frozen=True)
class ServiceRow:
    """What a process registers for one of its services."""

    host: str
    binary: str
    topic: str
    backend: str
    endpoint: str | None
    rpc_version: str
    server_key: str | None = None
    """The z85 CURVE public key of the server at `endpoint` (None: no CURVE)."""
    down_after: float | None = None
    """The service's service_down_time, published so readers judge 'up' alike."""


@dataclass(frozen=True)
class ServiceRecord:
    """A registered service as read back, with liveness computed at read time."""

    id: int
    host: str
    binary: str
    topic: str
    backend: str
    endpoint: str | None
    rpc_version: str
    state: str
    report_count: int
    disabled: bool
    disabled_reason: str | None
    last_heartbeat: datetime | None
    created_at: datetime
    updated_at: datetime
    is_up: bool
    """Alive, not disabled, and heartbeated by its current process: route to it."""
    heartbeat_age: float | None
    server_key: str | None = None
    down_after: float | None = None
    is_alive: bool = False
    """Heartbeating and not stopped, disabled or not: the process is there (a
    disabled service is out of routing, not dead; its work is still its own)."""


def sqlite_url_for(state_dir: str | Path) -> str:
    """The SQLite URL of the registry file in `state_dir`, creating the directory."""
    directory = Path(state_dir).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'registry.sqlite'}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Registry:
    """The registry database: register, heartbeat and query services.

    Thread-safe (each call uses its own connection and transaction). SQLite
    file databases use no connection pool, so a file that went away is noticed
    by the very next call; PostgreSQL uses a small pool. `now` is the clock
    used for heartbeats and liveness (injectable for tests).
    """

    def __init__(
        self,
        url: str,
        *,
        service_down_time: float = 60.0,
        now: Callable[[], datetime] | None = None,
        max_connections: int = 6,
    ) -> None:
        """`max_connections`: the PostgreSQL pool's bound; a service passes one
        per thread that may use the database at once (its offload workers,
        the journal's writer), so that none waits for a connection."""
        if service_down_time <= 0:
            raise ValueError(f"service_down_time must be positive, not {service_down_time!r}")
        if max_connections < 2:
            raise ValueError(f"max_connections must be at least 2, not {max_connections!r}")
        self.service_down_time = float(service_down_time)
        self._now = now or _utc_now
        self._migrations: list[Migrations] = []
        self._url = _parse_url(url)
        self.url = self._url.render_as_string(hide_password=True)
        self._dialect = self._url.get_backend_name()
        try:
            self._engine = (
                _sqlite_engine(self._url)
                if self._dialect == "sqlite"
                else _postgresql_engine(self._url, max_connections)
            )
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise RegistryError(
                f"cannot use registry database {self.url}: {exc}", url=self.url, reason=str(exc)
            ) from None

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for diagnostics and tests)."""
        return self._engine

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    # -- schema -------------------------------------------------------------

    def add_migrations(self, migrations: Migrations) -> None:
        """Have `upgrade()` also apply an application's migrations (after the framework's).

        For an application's own tables (see `ManagerActor.MIGRATIONS`); the
        same `Migrations` added twice is applied once.
        """
        if migrations not in self._migrations:
            self._migrations.append(migrations)

    @property
    def migrations(self) -> tuple[Migrations, ...]:
        """What `upgrade()` applies, in order: the framework's, then each added one."""
        return (FRAMEWORK_MIGRATIONS, *self._migrations)

    def upgrade(self) -> None:
        """Bring the schema to the newest shipped migrations; a no-op when it is.

        The framework's tables first, then those of every application added
        with `add_migrations`, each to its own head, all in one transaction on
        this engine. Concurrent upgrades from several daemons are serialised
        (PostgreSQL advisory lock, SQLite write lock).
        """
        # Alembic keeps its migration context in module globals: two upgrades
        # in one process at once (several services, or a test starting the
        # next service while the last one's upgrade runs) must take turns.
        with _ALEMBIC_LOCK:
            self._upgrade_locked()

    def _upgrade_locked(self) -> None:
        with self.transaction(write=True) as conn:
            if self._dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            try:
                apply_migrations(conn, self.migrations)
            except CommandError as exc:
                raise RegistryError(
                    f"cannot upgrade registry database {self.url}: {exc}",
                    url=self.url,
                    reason=str(exc),
                ) from exc

    # -- writes ---------------------------------------------------------------

    def register(self, rows: list[ServiceRow]) -> list[int]:
        """Get-or-create the live row of each service; return ids in input order.

        An existing row keeps its id, counters and disabled flag; its endpoint
        and rpc_version are refreshed and its state goes back to 'starting'.
        One transaction; each row is an atomic upsert, so daemons registering
        concurrently never create duplicates. Upserted in the order of their
        keys, whatever the order given: two daemons registering overlapping
        rows lock them in one order, and cannot deadlock each other.
        """
        if not rows:
            return []
        now = self.now()
        order = sorted(
            range(len(rows)),
            key=lambda i: (rows[i].host, rows[i].binary, rows[i].topic, rows[i].backend),
        )
        ids: list[int] = [0] * len(rows)
        with self.transaction(write=True) as conn:
            for i in order:
                ids[i] = conn.execute(self._upsert(rows[i], now)).scalar_one()
        return ids

    def heartbeat(self, ids: list[int]) -> int:
        """Record one heartbeat for all these services; return how many rows matched.

        One transaction with one UPDATE statement, whatever the number of ids:
        report_count + 1, last_heartbeat and updated_at = now, state 'up'. The
        disabled flag is left alone.
        """
        if not ids:
            return 0
        now = self.now()
        statement = (
            sql_update(ServiceModel)
            .where(
                ServiceModel.id.in_(ids),
                ServiceModel.deleted_at.is_(None),
                ServiceModel.state != "stopped",
            )
            .values(
                report_count=ServiceModel.report_count + 1,
                last_heartbeat=now,
                updated_at=now,
                state="up",
            )
        )
        with self.transaction(write=True) as conn:
            return conn.execute(statement).rowcount

    def mark(self, ids: list[int], state: str) -> None:
        """Set the state ('up', 'down' or 'stopped') of these services in one statement."""
        if state not in MARKABLE_STATES:
            raise ValueError(f"state must be one of {sorted(MARKABLE_STATES)}, not {state!r}")
        if not ids:
            return
        statement = (
            sql_update(ServiceModel)
            .where(ServiceModel.id.in_(ids), ServiceModel.deleted_at.is_(None))
            .values(state=state, updated_at=self.now())
        )
        with self.transaction(write=True) as conn:
            conn.execute(statement)

    def mark_process(self, host: str, binary: str, topic: str, state: str) -> None:
        """Set the state of every live row of one process (its ids may be unknown)."""
        if state not in MARKABLE_STATES:
            raise ValueError(f"state must be one of {sorted(MARKABLE_STATES)}, not {state!r}")
        statement = (
            sql_update(ServiceModel)
            .where(
                ServiceModel.host == host,
                ServiceModel.binary == binary,
                ServiceModel.topic == topic,
                ServiceModel.deleted_at.is_(None),
            )
            .values(state=state, updated_at=self.now())
        )
        with self.transaction(write=True) as conn:
            conn.execute(statement)

    def set_disabled(
        self, host: str, backend: str, disabled: bool, reason: str | None = None
    ) -> list[ServiceRecord]:
        """Disable or enable every service of host@backend; return them as they now are.

        `reason` is stored as given (enabling without a reason clears it), at
        most 255 characters (ValueError: the database would refuse it, which
        would read as an outage). Raises ServiceNotRegistered when
        host@backend has no live row.
        """
        if reason is not None and len(reason) > MAX_REASON:
            raise ValueError(f"reason is longer than {MAX_REASON} characters ({len(reason)})")
        where = (
            ServiceModel.host == host,
            ServiceModel.backend == backend,
            ServiceModel.deleted_at.is_(None),
        )
        statement = (
            sql_update(ServiceModel)
            .where(*where)
            .values(disabled=disabled, disabled_reason=reason, updated_at=self.now())
        )
        with self.transaction(write=True) as conn:
            if conn.execute(statement).rowcount == 0:
                raise ServiceNotRegistered(host, backend)
            return self._select(conn, *where)

    # -- reads ----------------------------------------------------------------

    def services(self, *, topic: str | None = None, host: str | None = None) -> list[ServiceRecord]:
        """Live (not deleted) services, optionally of one topic and/or host, by id."""
        where: list[ColumnElement[bool]] = [ServiceModel.deleted_at.is_(None)]
        if topic is not None:
            where.append(ServiceModel.topic == topic)
        if host is not None:
            where.append(ServiceModel.host == host)
        with self.transaction(write=False) as conn:
            return self._select(conn, *where)

    def up_endpoints(self, topic: str) -> list[str]:
        """The distinct endpoints of the up services of `topic`, sorted."""
        with self.transaction(write=False) as conn:
            records = self._select(
                conn,
                ServiceModel.deleted_at.is_(None),
                ServiceModel.topic == topic,
                ServiceModel.disabled.is_(False),
                ServiceModel.state != "stopped",
                ServiceModel.endpoint.is_not(None),
                ServiceModel.last_heartbeat.is_not(None),
            )
        return sorted({r.endpoint for r in records if r.is_up and r.endpoint is not None})

    def backup(self, destination: str | Path) -> Path:
        """Write a consistent copy of a SQLite registry to `destination`, while it is in use.

        A plain file copy of a live SQLite database in WAL mode can miss what
        is still in the WAL; `VACUUM INTO` reads one snapshot of the database
        (WAL included) and writes it whole. The destination must not exist.
        PostgreSQL has its own tools (pg_dump): RegistryError there.
        """
        if self._dialect != "sqlite":
            raise RegistryError(
                f"backup copies a SQLite registry; for {self._dialect} use its own tools (pg_dump)",
                url=self.url,
            )
        target = Path(destination).absolute()
        if target.exists():
            raise RegistryError(f"{target} exists already; not overwriting it", url=self.url)
        if not target.parent.is_dir():
            raise RegistryError(f"{target.parent} is not a directory", url=self.url)
        # Written under a temporary name, then linked into place: a backup that
        # fails half-way leaves nothing behind, and DEST is never overwritten.
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}-{threading.get_ident()}")
        try:
            raw = self._engine.raw_connection()  # autocommit: VACUUM runs outside a transaction
        except DATABASE_ERRORS as exc:
            raise self.unavailable(exc) from exc
        try:
            cursor = raw.cursor()
            try:
                cursor.execute("VACUUM INTO ?", (str(partial),))
            finally:
                cursor.close()
            os.link(partial, target)
        except _BACKUP_ERRORS as exc:
            raise RegistryError(
                f"backup to {target} failed: {self._reason(exc)}", url=self.url
            ) from exc
        finally:
            raw.close()
            partial.unlink(missing_ok=True)
        return target

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self._engine.dispose()

    # -- for code built on the registry's database ---------------------------

    def now(self) -> datetime:
        """The registry's clock: timezone-aware UTC (the injected `now`, if any).

        Timestamps written to the registry's database come from it, so that
        tests with their own clock see consistent ages.
        """
        now = self._now()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Connection]:
        """One connection and one transaction, committed when the block ends.

        `write=True` takes the write lock up front on SQLite (BEGIN IMMEDIATE),
        so a read-then-write transaction cannot fail half-way for a lock; ask
        for it whenever the block may write. Database errors become the
        retryable `DatabaseUnavailable`; any other exception rolls back and
        goes through as it is.
        """
        try:
            with self.connect(write=write) as conn, conn.begin():
                yield conn
        except DATABASE_ERRORS as exc:
            raise self.unavailable(exc) from exc

    def connect(self, *, write: bool) -> Connection:
        """A connection of the registry's engine, for a caller that holds one across
        transactions (the journal's writer does). `write` as for `transaction`.

        Errors are not translated here: wrap them with `unavailable()`.
        """
        conn = self._engine.connect()
        if write:
            conn.execution_options(**{_WRITE: True})
        return conn

    def unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        """The `DatabaseUnavailable` for a database error (see `is_database_error`).

        Its reason is the driver's message on one line, the password scrubbed.
        """
        return DatabaseUnavailable(self.url, self._reason(exc))

    # -- internals ------------------------------------------------------------

    def _reason(self, exc: BaseException) -> str:
        """The driver's message, on one line, with the password scrubbed."""
        orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
        reason = "; ".join(lines) or type(orig).__name__
        password = self._url.password
        if password:
            reason = reason.replace(str(password), "***")
        return reason

    def _upsert(self, row: ServiceRow, now: datetime) -> Insert:
        """INSERT ... ON CONFLICT (live-row unique index) DO UPDATE ... RETURNING id."""
        values: dict[str, Any] = {
            "host": row.host,
            "binary": row.binary,
            "topic": row.topic,
            "backend": row.backend,
            "endpoint": row.endpoint,
            "server_key": row.server_key,
            "down_after": row.down_after,
            "rpc_version": row.rpc_version,
            "state": "starting",
            "report_count": 0,
            "disabled": False,
            "created_at": now,
            "updated_at": now,
        }
        conflict_columns = [
            ServiceModel.host,
            ServiceModel.binary,
            ServiceModel.topic,
            ServiceModel.backend,
        ]
        # Both dialects spell the upsert the same way; only the insert differs.
        insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
        statement = insert(ServiceModel).values(values)
        refreshed = {
            "endpoint": statement.excluded.endpoint,
            "server_key": statement.excluded.server_key,
            "down_after": statement.excluded.down_after,
            "rpc_version": statement.excluded.rpc_version,
            "state": "starting",
            "updated_at": now,
        }
        return statement.on_conflict_do_update(
            index_elements=conflict_columns,
            index_where=ServiceModel.deleted_at.is_(None),
            set_=refreshed,
        ).returning(ServiceModel.id)

    def _select(self, conn: Connection, *where: ColumnElement[bool]) -> list[ServiceRecord]:
        now = self.now()
        table = ServiceModel.__table__
        rows = conn.execute(select(*table.columns).where(*where).order_by(ServiceModel.id))
        return [self._record(row._mapping, now) for row in rows]

    def _record(self, row: RowMapping, now: datetime) -> ServiceRecord:
        last: datetime | None = row["last_heartbeat"]
        age = (now - last).total_seconds() if last is not None else None
        down_after = row["down_after"]  # the service's own, else this reader's
        is_alive = (
            row["state"] != "stopped"
            and age is not None
            and age <= (down_after or self.service_down_time)
        )
        # Registered again ('starting') by a process that has not heartbeated yet:
        # the heartbeat it carries is the previous process's, which says nothing
        # of this one. Alive (its work stays its own), but not routed to until up.
        is_up = is_alive and not row["disabled"] and row["state"] != "starting"
        return ServiceRecord(
            id=row["id"],
            host=row["host"],
            binary=row["binary"],
            topic=row["topic"],
            backend=row["backend"],
            endpoint=row["endpoint"],
            rpc_version=row["rpc_version"],
            state=row["state"],
            report_count=row["report_count"],
            disabled=bool(row["disabled"]),
            disabled_reason=row["disabled_reason"],
            last_heartbeat=last,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            is_up=is_up,
            heartbeat_age=age,
            server_key=row["server_key"],
            down_after=down_after,
            is_alive=is_alive,
        )


# -- engines ------------------------------------------------------------------


def _parse_url(url: str) -> URL:
    """Parse the URL; PostgreSQL without a driver gets psycopg (3)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        # The message never includes the URL, which may carry a password.
        raise RegistryError(f"invalid registry database URL: {exc}", reason=str(exc)) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        shown = parsed.render_as_string(hide_password=True)
        raise RegistryError(
            f"unsupported registry database {shown}: use sqlite or postgresql",
            url=shown,
            reason=f"unsupported backend {backend!r}",
        )
    return parsed


def _sqlite_engine(url: URL) -> Engine:
    """A SQLite engine: WAL, busy timeout, foreign keys, explicit BEGIN.

    File databases get NullPool (a fresh connection per transaction, so a
    vanished file or directory fails the next call instead of a cached handle
    carrying on). In-memory databases need one shared connection instead.
    """
    database = url.database or ""
    in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    if in_memory:
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = create_engine(url, poolclass=NullPool)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    """Per-connection pragmas (busy timeout, foreign keys, WAL); take BEGIN away
    from the sqlite3 module.

    sqlite3's legacy transaction handling only begins before DML, so SELECTs
    and DDL would run outside the transaction; `_sqlite_on_begin` emits BEGIN
    itself instead (SQLAlchemy's documented recipe).
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {STATEMENT_TIMEOUT * 1000}")
        cursor.execute("PRAGMA foreign_keys = ON")
        (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() not in ("wal", "memory"):
            _switch_to_wal(cursor)
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Put the database file in WAL mode (a persistent property of the file).

    The switch needs an exclusive lock and SQLite does not wait for it (no busy
    handler), so when several connections race to switch a new file, the
    losers get SQLITE_BUSY. That is harmless: the winner switches the file,
    the next connection sees WAL, and this one works in the old journal mode.
    """
    try:
        cursor.execute("PRAGMA journal_mode = WAL")
    except sqlite3.OperationalError as exc:
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise


def _sqlite_on_begin(conn: Connection) -> None:
    """BEGIN IMMEDIATE for writes (the write lock up front, so a read-then-write
    transaction never fails with SQLITE_BUSY mid-way), plain BEGIN for reads.

    Sent on the driver connection so that it is not a SQLAlchemy cursor
    execute: statement counts seen by event listeners are the queries only.
    """
    mode = "BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN"
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(mode)
    finally:
        cursor.close()


def _postgresql_engine(url: URL, max_connections: int) -> Engine:
    """A PostgreSQL engine with connect and statement timeouts and TCP keepalives.

    URL query parameters win: `?connect_timeout=2`, `?keepalives_idle=30` or
    an `options` string of your own still apply (ours is put first, so a
    later `-c` overrides it).
    """
    connect_args: dict[str, Any] = {"application_name": "actors-registry"}
    query = url.query
    statement_timeout = float(STATEMENT_TIMEOUT)
    if "statement_timeout" in query:  # ours, not libpq's: seconds, for both ends
        statement_timeout = _positive_seconds("statement_timeout", query["statement_timeout"])
        url = url.difference_update_query(["statement_timeout"])
        query = url.query
    if "connect_timeout" not in query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    connect_args.update((k, v) for k, v in PG_TCP_SETTINGS.items() if k not in query)
    options = f"-c statement_timeout={int(statement_timeout * 1000)}"
    if "options" in query:
        theirs = query["options"]
        options += " " + (" ".join(theirs) if isinstance(theirs, tuple) else theirs)
    connect_args["options"] = options
    if "application_name" in query:
        del connect_args["application_name"]
    engine = create_engine(
        url,
        connect_args=connect_args,
        pool_size=2,  # kept open; more are opened when needed, up to max_connections
        max_overflow=max_connections - 2,
        pool_timeout=CONNECT_TIMEOUT,
        pool_recycle=1800,
        # A server that restarted leaves dead pooled connections: test each one
        # on checkout, so the first request after an outage does not fail.
        pool_pre_ping=True,
    )
    # The server ends a statement at statement_timeout; the watchdog ends the
    # wait on a path where the server cannot be heard (see _watchdog).
    watch_statements(engine, statement_timeout + WATCHDOG_MARGIN)
    return engine


def _positive_seconds(name: str, value: str | tuple[str, ...]) -> float:
    text = value[-1] if isinstance(value, tuple) else value
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ArgumentError(f"URL parameter {name} must be a positive number of seconds")
    return seconds
