"""The durable operation journal: operations are committed before they are acknowledged.

`Journal.accept()` records an operation (target, method, JSON args, optional
idempotency key) and returns a future that resolves with the committed
`OperationRecord`. Accepts and state changes go through one writer thread that
GROUP COMMITS them: it takes whatever is pending (up to `batch_max`) and
writes it in one transaction, so N concurrent operations cost one fsync, not
N; what arrives during a commit makes the next batch. By default it does not
wait for more (`batch_wait` 0): waiting 2 ms for the batch to fill halved the
journaled requests per second on gevent (bench/bench_journal.py), as the
callers that would fill it wait for the writer. A future resolves only after
its batch has committed.

The write path is kept cheap per operation: `accept()` and `set_state()`
serialise their JSON once, in the caller (which is also its check), and
`accept()` builds the row and the record there too; the writer inserts the
rows with one driver-level executemany, writes a batch's state changes with
one SELECT of the states before and one executemany of a driver-level UPDATE
(on PostgreSQL with psycopg 3, the INSERTs and an UPDATE that returns what
applied go in one pipeline: two round trips per batch with the COMMIT), and
keeps its connection between batches while it is busy. `set_state_into()`
completes any `Completion` (e.g. an actor future's, see `Runtime.completion`)
instead of a new Future.

An idempotency key is unique per key scope (the target, or a whole topic):
accepting (scope, key) again, in a later batch or in the same one, resolves
with the operation already recorded (with its current state and result) and
never writes a second row.

Database failures reach every waiting future as the registry's retryable
`DatabaseUnavailable`; the writer survives them and goes on with the next
batch. Hosts sharing a PostgreSQL database write keys and rows in one order
(so their writers cannot deadlock each other), and a batch that still meets
a deadlock or a serialization failure runs again, three times at most; so
does one whose kept connection the server closed since the last batch (on a
new connection).
Nothing waits forever: the database calls are bounded by the registry's
connect / statement / lock timeouts, and `close()` has its own deadline.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, overload

from sqlalchemy import (
    Boolean,
    Connection,
    RowMapping,
    String,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from actors.registry._ids import new_operation_id
from actors.registry._watchdog import progress
from actors.registry.api import (
    DATABASE_ERRORS,
    DatabaseUnavailable,
    Registry,
    RegistryError,
    is_database_error,
)
from actors.registry.models import (
    FINISHED_STATES,
    OPERATION_STATES,
    UNFINISHED_STATES,
    OperationModel,
)
from transport.errors import register_error

__all__ = [
    "Completion",
    "InvalidTransition",
    "Journal",
    "JournalClosed",
    "JsonText",
    "OperationClaimed",
    "OperationNotFound",
    "OperationRecord",
    "json_text",
    "new_operation_id",
]

log = logging.getLogger(__name__)

_TABLE = OperationModel.__table__
_COLUMNS = tuple(_TABLE.columns)

# States set_state() may set: 'accepted' is set by accept() only.
SETTABLE_STATES = frozenset(OPERATION_STATES) - {"accepted"}

# The writer keeps its connection between batches while it is busy; after this
# many seconds without work, or this long after opening it, it lets it go.
_IDLE_RELEASE = 1.0
_MAX_HOLD = 300.0

# A batch that met a deadlock or a serialization failure (PostgreSQL rolls such
# a transaction back whole), or a connection lost since the last batch, runs
# again: at most this many times in all.
_BATCH_ATTEMPTS = 3
_CONFLICT_STATES = frozenset({"40P01", "40001"})

# JSON null, as SQLAlchemy's JSON type stores None (not SQL NULL).
_JSON_NULL = "null"


def _bind(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


UNFINISHED = frozenset(UNFINISHED_STATES)

# set_state()'s UPDATE, compiled once per journal to its dialect's driver SQL.
_UPDATE_STATE_MANY = (
    update(OperationModel)
    .where(
        OperationModel.id == bindparam("op_id"),
        # Literal values, not an expanding IN: the statement also runs as executemany.
        or_(*(OperationModel.state == literal_column(f"'{s}'") for s in UNFINISHED_STATES)),
        # Fenced: a writer that names its target changes only a row it still owns.
        OperationModel.target
        == func.coalesce(bindparam("owner", type_=String()), OperationModel.target),
    )
    .values(
        state=_bind("new_state", OperationModel.state),
        result=_bind("new_result", OperationModel.result),
        error=_bind("new_error", OperationModel.error),
        reason=_bind("new_reason", OperationModel.reason),
        # A released key may be used again: the retry runs as a new operation.
        idempotency_key=case(
            (bindparam("release_key", type_=Boolean()), null()),
            else_=OperationModel.idempotency_key,
        ),
        updated_at=_bind("now", OperationModel.updated_at),
        finished_at=_bind("finished", OperationModel.finished_at),
    )
)


class Completion(Protocol):
    """What the writer completes after a commit: a concurrent Future, or anything
    with its `done`, `set_result` and `set_exception` (see `Journal.set_state_into`)."""

    def done(self) -> bool: ...

    def set_result(self, result: Any) -> None: ...

    def set_exception(self, exception: BaseException | None) -> None: ...


class JournalClosed(RegistryError):
    """The journal is closed (or closing timed out): the request was not recorded."""

    def __init__(self, url: str) -> None:
        super().__init__(f"the operation journal on {url} is closed", url=url)


class JournalBusy(RegistryError):
    """Too many operations wait to be written; retry shortly."""

    retryable = True

    def __init__(self, pending: int) -> None:
        super().__init__(f"the operation journal has {pending} writes pending", pending=pending)


class OperationNotFound(RegistryError):
    """No operation with this id is in the journal."""

    def __init__(self, op_id: str) -> None:
        super().__init__(f"no operation {op_id!r} in the journal", op_id=op_id)


class OperationClaimed(RegistryError):
    """Another manager took the operation over (its owner looked down): not ours to change."""

    def __init__(self, op_id: str, owner: str, requested: str) -> None:
        super().__init__(
            f"operation {op_id!r} was taken over by {owner}: it cannot become {requested} here",
            op_id=op_id,
            owner=owner,
            requested=requested,
        )


class InvalidTransition(RegistryError):
    """The operation is finished; its state, result and error are final."""

    def __init__(self, op_id: str, state: str, requested: str) -> None:
        super().__init__(
            f"operation {op_id!r} is {state}: it cannot become {requested}",
            op_id=op_id,
            state=state,
            requested=requested,
        )


register_error(JournalClosed, JournalBusy, OperationNotFound, InvalidTransition, OperationClaimed)


@dataclass(frozen=True, slots=True)
class OperationRecord:
    """One operation as committed in the journal."""

    id: str
    idempotency_key: str | None
    key_scope: str  # across which managers the key is one operation (see Journal.accept)
    target: str
    method: str
    args: Any
    state: str
    result: Any
    error: Any
    reason: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def as_data(self) -> dict[str, Any]:
        """Plain data (timestamps as ISO 8601 strings), for the wire and JSON."""
        data = dataclasses.asdict(self)
        for name in ("created_at", "updated_at", "finished_at"):
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        return data


@dataclass(slots=True)
class _Accept:
    record: OperationRecord  # what the future resolves with unless the key exists
    params: tuple[Any, ...]  # the INSERT's parameters, already in database form
    future: Completion  # with the OperationRecord that holds the key


@dataclass(slots=True)
class _SetState:
    op_id: str
    state: str
    result: str  # JSON text, encoded once by set_state()
    error: str  # JSON text
    reason: str | None
    future: Completion  # with an OperationRecord, or None without `returning`
    release_key: bool = False
    returning: bool = True  # False: resolve with None, the row is not read back
    owner: str | None = None  # set: applies only while the row's target is this


_Request = _Accept | _SetState


def _record(row: RowMapping | dict[str, Any]) -> OperationRecord:
    return OperationRecord(**{column.name: row[column.name] for column in _COLUMNS})


# NaN is not JSON (PostgreSQL refuses it). One encoder, made once: json.dumps
# with a non-default option builds a new one per call (a third of its cost).
_encode_json = json.JSONEncoder(allow_nan=False).encode


class JsonText(str):
    """JSON text encoded already (by `json_text`): stored as it is, not encoded again."""

    __slots__ = ()


def json_text(value: Any) -> JsonText:
    """`value` as the journal stores it; raises TypeError or ValueError if it is not
    JSON data. For a caller that needs the text itself too (e.g. to give back
    what the journal will), so that it is encoded once."""
    return JsonText(_encode_json(value))


def _to_json(what: str, value: Any) -> str:
    """The JSON text stored for `value` (serialised once, here, in the caller).

    Fails now, in the caller, rather than failing a whole batch later.
    """
    if value is None:
        return _JSON_NULL
    if type(value) is JsonText:
        return value
    try:
        return _encode_json(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable: {exc}") from None


def _insert_sql(dialect: str, *, keyed: bool) -> str:
    """The INSERT of one operation row, in the driver's parameter style.

    The values come already in database form (JSON text, timestamps as the
    column type binds them), so the writer runs plain driver SQL instead of
    processing every parameter of every row through SQLAlchemy again.
    """
    names = [column.name for column in _COLUMNS]
    if dialect == "postgresql":
        json_columns = {"args", "result", "error"}
        marks = ", ".join("%s::json" if name in json_columns else "%s" for name in names)
    else:
        marks = ", ".join("?" for _ in names)
    sql = f"INSERT INTO {OperationModel.__tablename__} ({', '.join(names)}) VALUES ({marks})"
    if keyed:
        sql += (
            " ON CONFLICT (key_scope, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
        )
    return sql


class Journal:
    """The operation journal on a registry's database (same engine, same timeouts).

    Thread-safe. Writes (`accept`, `set_state`) are group-committed by one
    writer thread and return futures; reads are synchronous, each in its own
    transaction. The schema comes from `Registry.upgrade()` (migration 0002).
    """

    def __init__(
        self,
        registry: Registry,
        *,
        batch_max: int = 256,
        batch_wait: float = 0.0,
        max_pending: int = 10_000,
    ) -> None:
        if batch_max < 1:
            raise ValueError(f"batch_max must be at least 1, not {batch_max!r}")
        if batch_wait < 0:
            raise ValueError(f"batch_wait must not be negative, not {batch_wait!r}")
        self._registry = registry
        self._batch_max = batch_max
        self._batch_wait = float(batch_wait)
        self._max_pending = max_pending
        self._dialect = registry.engine.dialect.name
        self._insert_plain = _insert_sql(self._dialect, keyed=False)
        self._insert_keyed = _insert_sql(self._dialect, keyed=True)
        # set_state()'s UPDATE as driver SQL (parameters already in database form).
        compiled = _UPDATE_STATE_MANY.compile(dialect=registry.engine.dialect)
        self._update_sql = compiled.string
        self._update_order: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positiontup is not None else None
        )
        # psycopg 3 on PostgreSQL: a batch's statements go in one pipeline.
        self._pipelined = self._dialect == "postgresql" and _pipeline_supported(registry)
        table = OperationModel.__tablename__
        self._insert_keyed_returning = f"{self._insert_keyed} RETURNING id"
        self._update_returning = f"{self._update_sql} RETURNING {table}.id"
        # Timestamps bound exactly as the column type binds them (naive UTC text on SQLite).
        bind = _TABLE.c.created_at.type.dialect_impl(registry.engine.dialect).bind_processor(
            registry.engine.dialect
        )
        self._bind_time: Callable[[datetime], Any] = bind or (lambda value: value)
        # A SQLite file (NullPool) or PostgreSQL: the writer keeps its connection
        # while busy. In-memory SQLite shares one connection (StaticPool): not held.
        pool = registry.engine.pool
        self._hold = self._dialect == "postgresql" or isinstance(pool, NullPool)
        self._sqlite_path = (
            os.path.abspath(registry.engine.url.database or "")
            if self._dialect == "sqlite" and self._hold
            else None
        )
        self._conn: Connection | None = None  # the writer's held connection
        self._conn_identity: tuple[int, int] | None = None  # SQLite file (st_dev, st_ino)
        self._conn_opened = 0.0
        self._pending: list[_Request] = []
        self._cond = threading.Condition()
        # Submitters wake the writer only once len(_pending) reaches this (under _cond).
        self._wake_at = 1
        self._last_batch = 0  # size of the previous batch: how many callers come back
        self._closed = False
        self._batches = 0
        self._db = _database_runner()
        self._writer = threading.Thread(
            target=self._run, name=f"journal-writer({registry.url})", daemon=True
        )
        self._writer.start()

    @property
    def batches(self) -> int:
        """How many batches (transactions) the writer has run so far."""
        return self._batches

    @property
    def pending_writes(self) -> int:
        """Writes accepted and waiting for the next batch (at most `max_pending`)."""
        return len(self._pending)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({self._registry.url!r})"

    # -- writes (group-committed) ---------------------------------------------

    def accept(
        self,
        target: str,
        method: str,
        args: Any,
        key: str | None = None,
        *,
        op_id: str | None = None,
        scope: str | None = None,
    ) -> Future[OperationRecord]:
        """Record a new 'accepted' operation; the future resolves once it is committed.

        With a key already recorded in its scope, the future resolves with
        that operation instead (no second row): compare its id with `op_id`
        (a new UUID unless given) to tell the two apart. The scope is the
        target unless given: `topic:<topic>` makes the key one operation
        across every host of the topic (a request retried elsewhere finds the
        first host's row). Raises TypeError at once when `args` is not
        JSON-serialisable and ValueError when a name is longer than its column.
        """
        future: Future[OperationRecord] = Future()
        self._submit(self._accept_request(target, method, args, key, op_id, scope, future))
        return future

    def _accept_request(
        self,
        target: str,
        method: str,
        args: Any,
        key: str | None,
        op_id: str | None,
        scope: str | None,
        completion: Completion,
    ) -> _Accept:
        """The row of a new operation, checked and in database form."""
        scope = scope or target
        for what, value in (
            ("target", target),
            ("method", method),
            ("key", key),
            ("scope", scope),
        ):
            if value is not None and len(value) > 255:
                raise ValueError(f"{what} is longer than 255 characters")
        args_json = _to_json("args", args)
        now = self._registry.now()
        op_id = op_id or new_operation_id()
        stamp = self._bind_time(now)
        record = OperationRecord(
            op_id, key, scope, target, method, args, "accepted", None, None, None, now, now, None
        )
        # Column order of _COLUMNS, as the INSERT expects them.
        params = (
            op_id,
            key,
            scope,
            target,
            method,
            args_json,
            "accepted",
            _JSON_NULL,
            _JSON_NULL,
            None,
            stamp,
            stamp,
            None,
        )
        return _Accept(record, params, completion)

    def accept_into(
        self,
        completion: Completion,
        target: str,
        method: str,
        args: Any,
        key: str | None = None,
        *,
        op_id: str | None = None,
        scope: str | None = None,
    ) -> None:
        """`accept`, completing `completion` instead of returning a new Future.

        As `set_state_into`: `completion` is completed in the writer thread
        after the commit (e.g. `Runtime.completion(future)`), with no
        concurrent Future on the request path. Raises as `accept` does,
        before anything is submitted.
        """
        request = self._accept_request(target, method, args, key, op_id, scope, completion)
        self._submit(request)

    @overload
    def set_state(
        self,
        op_id: str,
        state: str,
        result: Any = None,
        error: Any = None,
        reason: str | None = None,
        *,
        release_key: bool = False,
        returning: Literal[True] = True,
        owner: str | None = None,
    ) -> Future[OperationRecord]: ...
    @overload
    def set_state(
        self,
        op_id: str,
        state: str,
        result: Any = None,
        error: Any = None,
        reason: str | None = None,
        *,
        release_key: bool = False,
        returning: Literal[False],
        owner: str | None = None,
    ) -> Future[None]: ...
    def set_state(
        self,
        op_id: str,
        state: str,
        result: Any = None,
        error: Any = None,
        reason: str | None = None,
        *,
        release_key: bool = False,
        returning: bool = True,
        owner: str | None = None,
    ) -> Future[OperationRecord] | Future[None]:
        """Move an unfinished operation to `state`; resolves with the updated record.

        With `returning=False` it resolves with None instead: the row is not
        read back (for writers that only need to know it was committed).

        Finished states ('succeeded', 'failed', 'interrupted') set finished_at
        and are final: changing a finished operation fails with
        InvalidTransition; an unknown id with OperationNotFound. With
        `release_key` the operation gives up its idempotency key, so that a
        retry with it runs anew (for failures that are known to have done
        nothing, e.g. a retryable refusal). With `owner` (a target) it applies
        only while the operation is still that target's: one another host took
        over fails with OperationClaimed.
        """
        future: Future[Any] = Future()
        self.set_state_into(
            future,
            op_id,
            state,
            result,
            error,
            reason,
            release_key=release_key,
            returning=returning,
            owner=owner,
        )
        return future

    def set_state_into(
        self,
        completion: Completion,
        op_id: str,
        state: str,
        result: Any = None,
        error: Any = None,
        reason: str | None = None,
        *,
        release_key: bool = False,
        returning: bool = True,
        owner: str | None = None,
    ) -> None:
        """`set_state`, completing `completion` instead of returning a new Future.

        `completion` is completed (`set_result` / `set_exception`) in the
        writer thread after the commit, as the Future of `set_state` would be:
        e.g. `Runtime.completion(future)`, which hands the outcome straight to
        an actor future (no concurrent Future on the request path). Raises as
        `set_state` does, before anything is submitted.
        """
        if state not in SETTABLE_STATES:
            raise ValueError(f"state must be one of {sorted(SETTABLE_STATES)}, not {state!r}")
        result_json = _to_json("result", result)
        error_json = _to_json("error", error)
        self._submit(
            _SetState(
                op_id,
                state,
                result_json,
                error_json,
                reason,
                completion,
                release_key,
                returning,
                owner,
            )
        )

    def close(self, timeout: float = 30.0) -> None:
        """Flush what is pending, then stop the writer. Later writes fail with JournalClosed.

        Waits at most `timeout` seconds for the writer; whatever it has not
        written by then fails with JournalClosed. Does not close the registry.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._writer.join(timeout)
        if not self._writer.is_alive():
            self._db(self._release)
        with self._cond:
            left, self._pending = self._pending, []
        for request in left:
            _fail(request.future, JournalClosed(self._registry.url))

    # -- reads ------------------------------------------------------------------

    def get(self, op_id: str) -> OperationRecord | None:
        """The operation with this id, or None."""
        return self._one(OperationModel.id == op_id)

    def get_by_key(self, scope: str, key: str) -> OperationRecord | None:
        """The operation recorded for (key scope, idempotency key), or None.

        The scope of a key sent to one manager is its target (`host@backend`).
        """
        return self._one(OperationModel.key_scope == scope, OperationModel.idempotency_key == key)

    def list(
        self,
        state: str | None = None,
        target: str | None = None,
        limit: int = 100,
        *,
        newest: bool = False,
    ) -> builtins.list[OperationRecord]:
        """Operations, oldest first, optionally of one state and/or target.

        The oldest `limit` of them, or with `newest` the newest `limit`.
        """
        order = (OperationModel.created_at, OperationModel.id)
        statement = select(*_COLUMNS).order_by(*(c.desc() for c in order) if newest else order)
        if state is not None:
            statement = statement.where(OperationModel.state == state)
        if target is not None:
            statement = statement.where(OperationModel.target == target)
        with self._registry.transaction(write=False) as conn:
            records = [_record(row._mapping) for row in conn.execute(statement.limit(limit))]
        return records[::-1] if newest else records

    def unfinished(
        self,
        created_before: datetime | None = None,
        *,
        created_after: datetime | None = None,
        targets: Iterable[str] | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
        scope: str | None = None,
    ) -> builtins.list[OperationRecord]:
        """Accepted or running operations, oldest first: what crash recovery handles.

        `created_before` limits it to operations of an earlier process (those
        accepted before this one started), `created_after` to those accepted
        since (stranded ones: see ServiceActor.sweep_stranded); `targets` to
        these managers. For paging, `limit` caps the rows and `after`
        continues behind the (created_at, id) of the last row of the previous
        page. `scope`: only keyed operations of this key scope (e.g. a topic's).
        """
        statement = (
            select(*_COLUMNS)
            .where(OperationModel.state.in_(UNFINISHED_STATES))
            .order_by(OperationModel.created_at, OperationModel.id)
        )
        if created_before is not None:
            statement = statement.where(OperationModel.created_at < created_before)
        if created_after is not None:
            statement = statement.where(OperationModel.created_at >= created_after)
        if targets is not None:
            statement = statement.where(OperationModel.target.in_(sorted(targets)))
        if scope is not None:
            statement = statement.where(
                OperationModel.key_scope == scope, OperationModel.idempotency_key.is_not(None)
            )
        if after is not None:
            created, op_id = after
            statement = statement.where(
                or_(
                    OperationModel.created_at > created,
                    and_(OperationModel.created_at == created, OperationModel.id > op_id),
                )
            )
        if limit is not None:
            statement = statement.limit(limit)
        with self._registry.transaction(write=False) as conn:
            return [_record(row._mapping) for row in conn.execute(statement)]

    def claim_all(
        self, records: Iterable[OperationRecord], target: str | None = None
    ) -> builtins.list[OperationRecord]:
        """Take unfinished operations over, each only if nobody changed it since it was read.

        A compare-and-set per row, in one transaction: the row must still
        have the target, state and `updated_at` of `record`. It gets
        `target` (its own target when None: recovery claims its own rows
        before it runs them) and a new `updated_at`, so that whoever read it
        before, a host taking it over or the owner's recovery, fails its own
        claim and leaves it alone. Returns the claimed records as they are now,
        in the order given. Rows are locked in the order of their ids, as the
        writer locks them: two hosts' transactions cannot deadlock.
        """
        now = self._registry.now()
        given = builtins.list(records)
        claimed: dict[str, OperationRecord] = {}
        with self._registry.transaction(write=True) as conn:
            for record in sorted(given, key=lambda record: record.id):
                owner = record.target if target is None else target
                changed = conn.execute(
                    update(OperationModel)
                    .where(
                        OperationModel.id == record.id,
                        OperationModel.target == record.target,
                        OperationModel.state == record.state,
                        OperationModel.updated_at == record.updated_at,
                    )
                    .values(target=owner, updated_at=now)
                ).rowcount
                if changed == 1:
                    claimed[record.id] = dataclasses.replace(record, target=owner, updated_at=now)
        return [claimed.pop(record.id) for record in given if record.id in claimed]

    def take_over(self, record: OperationRecord, target: str) -> OperationRecord | None:
        """`record` claimed for `target` if its owner (`host@backend`) is down; else None.

        Down as the registry judges it: no heartbeat for the owner's
        service_down_time, or stopped (a disabled service is not down). For a
        request retried on another host of a topic: the host that accepted it
        died before finishing it.
        """
        host, _, backend = record.target.partition("@")
        rows = self._registry.services(host=host)
        if any(row.backend == backend and row.is_alive for row in rows):
            return None  # alive (disabled or not): still its own
        claimed = self.claim_all([record], target)
        return claimed[0] if claimed else None

    def unfinished_counts(self, created_before: datetime | None = None) -> dict[str, int]:
        """How many accepted or running operations each target has (e.g. to find orphans)."""
        statement = (
            select(OperationModel.target, func.count())
            .where(OperationModel.state.in_(UNFINISHED_STATES))
            .group_by(OperationModel.target)
        )
        if created_before is not None:
            statement = statement.where(OperationModel.created_at < created_before)
        with self._registry.transaction(write=False) as conn:
            return {target: int(count) for target, count in conn.execute(statement)}

    def prune(self, older_than: timedelta) -> int:
        """Delete finished operations that finished more than `older_than` ago; return how many."""
        cutoff = self._registry.now() - older_than
        statement = delete(OperationModel).where(
            OperationModel.state.in_(FINISHED_STATES),
            OperationModel.finished_at.is_not(None),
            OperationModel.finished_at < cutoff,
        )
        with self._registry.transaction(write=True) as conn:
            return conn.execute(statement).rowcount

    # -- the writer ---------------------------------------------------------------

    def _submit(self, request: _Request) -> None:
        with self._cond:
            if not self._closed and len(self._pending) < self._max_pending:
                self._pending.append(request)
                # Only the writer waits on _cond: wake it once it has a reason to
                # go on, not for every request that joins the batch it waits for.
                if len(self._pending) >= self._wake_at:
                    self._cond.notify()
                return
            closed = self._closed
        # Bounded: a journal that cannot keep up refuses at once (retryable).
        error = JournalClosed(self._registry.url) if closed else JournalBusy(self._max_pending)
        _fail(request.future, error)

    def _take(self) -> builtins.list[_Request] | None:
        """The next batch; None once closed with nothing left.

        Waits for more requests, at most `batch_wait` after the first one, only
        while fewer are pending than the previous batch had: callers that wait
        for their acknowledgement come back with their next request, so once as
        many as last time are in, waiting longer only adds idle time. The first
        batch waits for `batch_max`.
        """
        while True:
            idle: Connection | None = None
            with self._cond:
                while not self._pending and idle is None:
                    if self._closed:
                        return None
                    self._wake_at = 1
                    if self._conn is None:
                        self._cond.wait()
                    elif not self._cond.wait(_IDLE_RELEASE) and not self._pending:
                        idle = self._conn  # idle: give the connection back
                if idle is None:
                    expected = min(self._batch_max, self._last_batch or self._batch_max)
                    if self._batch_wait > 0 and len(self._pending) < expected and not self._closed:
                        # Let concurrent callers join the batch, for at most batch_wait.
                        self._wake_at = expected
                        self._cond.wait_for(self._batch_full, timeout=self._batch_wait)
                        self._wake_at = 1
                    batch = self._pending[: self._batch_max]
                    del self._pending[: self._batch_max]
                    self._last_batch = len(batch)
                    return batch
            self._db(self._release)

    def _batch_full(self) -> bool:
        return len(self._pending) >= self._wake_at or self._closed

    def _run(self) -> None:
        try:
            while True:
                batch = self._take()
                if batch is None:
                    return
                self._run_batch(batch)
        finally:
            self._db(self._release)

    def _run_batch(self, batch: builtins.list[_Request]) -> None:
        try:
            outcomes = self._db(self._write, batch)
        except BaseException as exc:  # the writer must survive anything
            if not isinstance(exc, RegistryError):
                log.exception("operation journal batch of %d failed", len(batch))
            for request in batch:
                _fail(request.future, exc)
            return
        finally:
            self._batches += 1
        # Only now, after the commit: acknowledge.
        for request, outcome in zip(batch, outcomes, strict=True):
            future = request.future
            if isinstance(outcome, BaseException):
                _fail(future, outcome)
            elif not future.done():
                try:
                    future.set_result(outcome)
                except Exception:  # cancelled meanwhile, or a callback failed
                    log.debug("could not resolve a journal future", exc_info=True)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """The writer's transaction, on the connection it holds while busy.

        Holding it spares a connect (SQLite: a new file handle, pragmas, and a
        WAL checkpoint on each close) or a pool checkout and reset per batch.
        A SQLite file that was moved, deleted or replaced since the connection
        was opened is noticed before the batch: the connection is dropped and a
        fresh one opened, which fails as NullPool's would. After any error the
        connection is discarded. Database errors become DatabaseUnavailable.
        """
        if not self._hold:
            with self._registry.transaction(write=True) as shared:
                yield shared
            return
        registry = self._registry
        try:
            if self._conn is not None and not self._still_usable():
                self._release()
            conn = self._conn
            if conn is None:
                conn = registry.connect(write=True)
                self._conn, self._conn_opened = conn, time.monotonic()
                self._conn_identity = self._file_identity()
            try:
                with conn.begin():
                    yield conn
            except BaseException:
                self._release(invalidate=True)
                raise
        except DATABASE_ERRORS as exc:
            raise registry.unavailable(exc) from exc

    def _checkpoint(self, conn: Connection) -> None:
        """Fold the WAL into the database file before letting go idle.

        While the writer is busy its commits live in the WAL, as in any SQLite
        database in WAL mode (SQLite folds it in every 1000 pages). Once the
        journal has been idle for `_IDLE_RELEASE` the database file holds them
        too. PASSIVE: it never waits, so a long reader (a backup) neither
        blocks it nor, through it, other writers; what a reader still needs
        stays in the WAL for the next checkpoint. Live copies should use
        `actorsctl db backup`. Sent on the driver connection outside any
        transaction; a failure is only logged: the WAL's content is committed.
        """
        try:
            dbapi_connection = conn.connection.dbapi_connection
            assert dbapi_connection is not None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                cursor.close()
        except DATABASE_ERRORS:
            log.warning("journal WAL checkpoint failed", exc_info=True)

    def _file_identity(self) -> tuple[int, int] | None:
        """(st_dev, st_ino) of the SQLite file; None if it cannot be seen (or not SQLite)."""
        if self._sqlite_path is None:
            return None
        try:
            st = os.stat(self._sqlite_path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _still_usable(self) -> bool:
        """Whether the held connection may write the next batch (no connect needed)."""
        if time.monotonic() - self._conn_opened > _MAX_HOLD:
            return False
        if self._sqlite_path is None:
            return True
        # Unknown identity (e.g. a URI filename): reconnect per batch, as NullPool does.
        identity = self._conn_identity
        return identity is not None and self._file_identity() == identity

    def _release(self, *, invalidate: bool = False) -> None:
        """Let go of the writer's held connection (discarding it after an error)."""
        conn = self._conn
        if conn is None:
            return
        try:
            if invalidate:
                conn.invalidate()
            elif self._sqlite_path is not None:
                self._checkpoint(conn)
            conn.close()
        except Exception:  # it is going away anyway
            log.debug("closing the journal writer's connection failed", exc_info=True)
        finally:
            self._conn, self._conn_identity = None, None

    def _write(
        self, batch: Sequence[_Request]
    ) -> builtins.list[OperationRecord | Exception | None]:
        """Write one batch in one transaction; an outcome per request, in order."""
        accepts: builtins.list[_Accept] = []
        states: builtins.list[tuple[int, _SetState]] = []
        for i, request in enumerate(batch):
            if isinstance(request, _Accept):
                accepts.append(request)
            else:
                states.append((i, request))
        # A 'running' followed in the same batch by another state of the
        # same operation is not written: the later state says more (a quick
        # operation then costs one UPDATE, not two). Its future resolves with
        # what the later one wrote.
        last = {request.op_id: i for i, request in states}
        superseded = {
            i: last[request.op_id]
            for i, request in states
            if request.state == "running" and last[request.op_id] != i
        }
        # In the order of their ids (stable: two changes of one operation keep
        # theirs), as keys are inserted in theirs: writers of several hosts
        # then lock rows and keys in one order, and cannot deadlock each other.
        changes = sorted(
            ((i, request) for i, request in states if i not in superseded),
            key=lambda change: change[1].op_id,
        )
        for attempt in range(1, _BATCH_ATTEMPTS + 1):
            held = self._conn is not None  # a connection kept from an earlier batch
            sent = False
            try:
                with self._writing() as conn:
                    # State changes before accepts: a key released in this batch
                    # is free for an accept of it in the same batch (its retry).
                    if self._pipelined:
                        records, updated = self._write_pipelined(conn, accepts, changes)
                    else:
                        updated = self._update_all(conn, changes) if changes else {}
                        records = self._insert(conn, accepts) if accepts else []
                    sent = True  # only the COMMIT is left
                break
            except DatabaseUnavailable as exc:
                # Rolled back whole (or never committed), so the batch can run
                # again as it is: after a deadlock, or once on a new connection
                # if the one kept since the last batch was lost meanwhile (the
                # server restarted, or closed it). Not if the COMMIT failed:
                # whether it applied is unknown.
                lost = held and not sent and _connection_lost(exc.__cause__)
                if attempt == _BATCH_ATTEMPTS or not (_conflict(exc.__cause__) or lost):
                    raise
                log.debug("journal batch of %d runs again: %s", len(batch), exc)
        for i, later in superseded.items():
            updated[i] = updated[later]
        accepted = iter(records)
        return [updated[i] if i in updated else next(accepted) for i in range(len(batch))]

    def _write_pipelined(
        self,
        conn: Connection,
        accepts: Sequence[_Accept],
        changes: builtins.list[tuple[int, _SetState]],
    ) -> tuple[builtins.list[OperationRecord], dict[int, OperationRecord | Exception | None]]:
        """PostgreSQL (psycopg 3): the batch's statements in one round trip.

        The INSERTs and the UPDATEs (each returning its row's id if it
        applied) go to the server in one pipeline, where one statement at a
        time cost a round trip each (six per batch: BEGIN, a COPY and its
        end, the states before, the UPDATE, the COMMIT); the COMMIT follows
        as the second. A change that did not apply (rare) costs one more
        round trip, to read why; so do keys found taken and rows asked for.
        """
        dbapi: Any = conn.connection.dbapi_connection
        unkeyed, first_by_key = _by_first_key(accepts)
        keyed_params = [request.params for request in first_by_key.values()]
        stamp = self._bind_time(self._registry.now())
        keyed = updated = None
        progress(dbapi)  # (the watchdog's: these statements are new ones)
        with dbapi.pipeline():
            if changes:
                updated = dbapi.cursor()
                params = [self._params(request, stamp) for _, request in changes]
                updated.executemany(self._update_returning, params, returning=True)
            if unkeyed:
                dbapi.cursor().executemany(self._insert_plain, unkeyed)
            if keyed_params:
                keyed = dbapi.cursor()
                keyed.executemany(self._insert_keyed_returning, keyed_params, returning=True)
        new = _returned_each(keyed) if keyed is not None else []
        applied = _returned_each(updated) if updated is not None else []
        records = self._accepted_records(conn, accepts, first_by_key, all(new))
        outcomes = [(i, request, ok) for (i, request), ok in zip(changes, applied, strict=True)]
        refused = [request.op_id for _, request, ok in outcomes if not ok]
        # Why they were refused: read, not locked (a lock taken now, after the
        # UPDATEs, would be out of the id order other hosts' writers keep).
        before = self._states(conn, refused, lock=False) if refused else {}
        after = self._rows(conn, [r.op_id for _, r, ok in outcomes if ok and r.returning])
        out: dict[int, OperationRecord | Exception | None] = {}
        for i, request, ok in outcomes:
            if not ok:
                out[i] = _refusal(request, before.get(request.op_id))
            else:
                out[i] = _record(after[request.op_id]) if request.returning else None
        return records, out

    def _insert(
        self, conn: Connection, accepts: Sequence[_Accept]
    ) -> builtins.list[OperationRecord]:
        """Insert the new operations; keyed ones resolve to whichever row holds the key."""
        unkeyed, first_by_key = _by_first_key(accepts)
        if unkeyed:
            conn.exec_driver_sql(self._insert_plain, unkeyed)
        all_new = True
        if first_by_key:
            keyed_params = [request.params for request in first_by_key.values()]
            inserted = conn.exec_driver_sql(self._insert_keyed, keyed_params).rowcount
            all_new = inserted == len(keyed_params)  # ON CONFLICT skipped none
        return self._accepted_records(conn, accepts, first_by_key, all_new)

    def _accepted_records(
        self,
        conn: Connection,
        accepts: Sequence[_Accept],
        first_by_key: dict[tuple[str, str], _Accept],
        all_new: bool,
    ) -> builtins.list[OperationRecord]:
        """What each accept resolves with: its record, or the row holding its key."""
        if not first_by_key:
            return [request.record for request in accepts]
        keyed: dict[tuple[str, str], OperationRecord]
        if all_new:  # every keyed row was new: they are as built
            keyed = {k: request.record for k, request in first_by_key.items()}
        else:
            keyed = self._by_keys(conn, first_by_key)
            for _ in range(_BATCH_ATTEMPTS):
                # A key held at the INSERT and free at the read-back: released, or
                # its row pruned, by another host's commit in between. It is free
                # now: insert again (the accept is a new operation after all).
                missing = [k for k in first_by_key if k not in keyed]
                if not missing:
                    break
                params = [first_by_key[k].params for k in missing]
                conn.exec_driver_sql(self._insert_keyed, params)
                keyed.update(self._by_keys(conn, missing))
            if any(k not in keyed for k in first_by_key):  # (the database's doing, retryable)
                raise DatabaseUnavailable(
                    self._registry.url, "idempotency keys changed hands while written; retry"
                )
        out: builtins.list[OperationRecord] = []
        for request in accepts:
            record = request.record
            key = record.idempotency_key
            out.append(record if key is None else keyed[(record.key_scope, key)])
        return out

    def _by_keys(
        self, conn: Connection, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], OperationRecord]:
        by_scope: dict[str, builtins.list[str]] = {}
        for scope, key in keys:
            by_scope.setdefault(scope, []).append(key)
        found: dict[tuple[str, str], OperationRecord] = {}
        # Chunks keep the number of bound parameters well under every driver's limit.
        items = sorted(by_scope.items())
        for start in range(0, len(items), 200):
            clause = or_(
                *(
                    and_(OperationModel.key_scope == scope, OperationModel.idempotency_key.in_(ks))
                    for scope, ks in items[start : start + 200]
                )
            )
            for row in conn.execute(select(*_COLUMNS).where(clause)):
                record = _record(row._mapping)
                assert record.idempotency_key is not None
                found[(record.key_scope, record.idempotency_key)] = record
        return found

    def _update_all(
        self, conn: Connection, states: builtins.list[tuple[int, _SetState]]
    ) -> dict[int, OperationRecord | Exception | None]:
        """Every state change of a batch in two statements, not one per change.

        Driver SQL (`exec_driver_sql`) with parameters already in database
        form: no per-row bind or result processing.

        The states before (locked on PostgreSQL), then one executemany of the
        UPDATE; the rows after only for changes that asked for them. A change
        applies iff its operation was unfinished before, which is the
        UPDATE's own condition. An operation changed twice in one batch goes
        one by one (only the first of two final states may win).
        """
        op_ids = [request.op_id for _, request in states]
        if len(states) == 1 or len(set(op_ids)) != len(op_ids):
            return {i: self._update(conn, request) for i, request in states}
        before = self._states(conn, op_ids)
        stamp = self._bind_time(self._registry.now())
        changing = [
            self._params(request, stamp)
            for _, request in states
            if _applies(before.get(request.op_id), request)
        ]
        if changing:
            conn.exec_driver_sql(self._update_sql, changing)
        after = self._rows(conn, [request.op_id for _, request in states if request.returning])
        out: dict[int, OperationRecord | Exception | None] = {}
        for i, request in states:
            was = before.get(request.op_id)
            if _applies(was, request):
                out[i] = _record(after[request.op_id]) if request.returning else None
            else:
                out[i] = _refusal(request, was)
        return out

    @staticmethod
    def _rows(conn: Connection, op_ids: builtins.list[str]) -> dict[str, RowMapping]:
        """The rows of these operations as they are now (in this transaction)."""
        if not op_ids:
            return {}
        statement = select(*_COLUMNS).where(OperationModel.id.in_(op_ids))
        return {row.id: row._mapping for row in conn.execute(statement)}

    def _states(
        self, conn: Connection, op_ids: Sequence[str], *, lock: bool = True
    ) -> dict[str, tuple[str, str]]:
        """{id: (state, target)} of these operations (with `lock`, rows locked until the
        commit on PostgreSQL, in id order; SQLite's write transaction holds the file)."""
        table = OperationModel.__tablename__
        if self._dialect == "postgresql":
            sql = f"SELECT id, state, target FROM {table} WHERE id = ANY(%s)"
            if lock:
                sql += " ORDER BY id FOR UPDATE"
            return {row[0]: (row[1], row[2]) for row in conn.exec_driver_sql(sql, (list(op_ids),))}
        found: dict[str, tuple[str, str]] = {}
        # Chunks keep the number of bound parameters under SQLite's limit.
        for start in range(0, len(op_ids), 500):
            chunk = tuple(op_ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT id, state, target FROM {table} WHERE id IN ({marks})"
            found.update((row[0], (row[1], row[2])) for row in conn.exec_driver_sql(sql, chunk))
        return found

    def _params(self, request: _SetState, stamp: Any) -> Any:
        """The UPDATE's parameters for one change, in the driver's form."""
        params = {
            "op_id": request.op_id,
            "new_state": request.state,
            "new_result": request.result,
            "new_error": request.error,
            "new_reason": request.reason,
            "release_key": request.release_key,
            "owner": request.owner,
            "now": stamp,
            "finished": stamp if request.state in FINISHED_STATES else None,
        }
        order = self._update_order
        return params if order is None else tuple([params[name] for name in order])

    def _update(self, conn: Connection, request: _SetState) -> OperationRecord | Exception | None:
        """One state change on its own: the UPDATE, and only if it did not apply, why not.

        For a batch with one change, or an operation changed twice in one batch.
        """
        params = self._params(request, self._bind_time(self._registry.now()))
        if conn.exec_driver_sql(self._update_sql, params).rowcount != 1:
            return _refusal(request, self._states(conn, [request.op_id]).get(request.op_id))
        if not request.returning:
            return None
        record = self._one_in(conn, OperationModel.id == request.op_id)
        assert record is not None  # updated in this transaction
        return record

    # -- internals ------------------------------------------------------------------

    def _one(self, *where: Any) -> OperationRecord | None:
        with self._registry.transaction(write=False) as conn:
            return self._one_in(conn, *where)

    @staticmethod
    def _one_in(conn: Connection, *where: Any) -> OperationRecord | None:
        row = conn.execute(select(*_COLUMNS).where(*where)).first()
        return None if row is None else _record(row._mapping)


def _by_first_key(
    accepts: Sequence[_Accept],
) -> tuple[list[tuple[Any, ...]], dict[tuple[str, str], _Accept]]:
    """The INSERT parameters of unkeyed accepts, and the first accept of each key.

    Within one batch, the first accept of a key is the one written. The keys
    come in order (scope, key): see `Journal._write`.
    """
    unkeyed: list[tuple[Any, ...]] = []
    first_by_key: dict[tuple[str, str], _Accept] = {}
    for request in accepts:
        record = request.record
        key = record.idempotency_key
        if key is None:
            unkeyed.append(request.params)
        elif (record.key_scope, key) not in first_by_key:
            first_by_key[(record.key_scope, key)] = request
    return unkeyed, dict(sorted(first_by_key.items()))


def _conflict(exc: BaseException | None) -> bool:
    """Whether a database error is a deadlock or serialization failure (SQLSTATE 40P01,
    40001): the transaction was rolled back and may simply run again."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(orig, "sqlstate", None) in _CONFLICT_STATES


def _connection_lost(exc: BaseException | None) -> bool:
    """Whether a database error says the connection is gone (not an SQL error)."""
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    # psycopg's own errors (the pipeline): a lost connection has no SQLSTATE.
    return exc is not None and is_database_error(exc) and getattr(exc, "sqlstate", "") is None


def _returned_each(cursor: Any) -> list[bool]:
    """Per parameter set of an executemany(returning=True): whether it returned a row."""
    each: list[bool] = []
    while True:
        each.append(cursor.fetchone() is not None)
        if not cursor.nextset():
            return each


def _applies(was: tuple[str, str] | None, request: _SetState) -> bool:
    """Whether a state change applies to a row that was `was` (state, target)."""
    if was is None or was[0] not in UNFINISHED:
        return False
    return request.owner is None or request.owner == was[1]


def _refusal(request: _SetState, was: tuple[str, str] | None) -> Exception:
    """Why a state change did not apply to a row that was `was` (state, target)."""
    if was is None:
        return OperationNotFound(request.op_id)
    state, target = was
    if state in UNFINISHED:  # so the owner differs
        return OperationClaimed(request.op_id, target, request.state)
    return InvalidTransition(request.op_id, state, request.state)


def _pipeline_supported(registry: Registry) -> bool:
    """Whether the registry's PostgreSQL driver has pipeline mode: psycopg 3 on a
    libpq that supports it (14 or later; the binary wheel bundles one)."""
    if registry.engine.dialect.driver != "psycopg":
        return False
    import psycopg

    return bool(psycopg.Pipeline.is_supported())


def _fail(future: Completion, exc: BaseException) -> None:
    if not future.done():
        try:
            future.set_exception(exc)
        except Exception:  # cancelled meanwhile, or what it runs failed: not the writer's
            log.debug("could not fail a journal future", exc_info=True)


def _database_runner() -> Callable[..., Any]:
    """How the writer runs its database work: directly, or in one native thread.

    Under gevent's monkey-patching (actorsd) the writer "thread" is a greenlet
    on the hub, and SQLite calls (fsync, lock waits up to the statement
    timeout) would freeze every actor and the transport. There the database
    work goes to a one-thread native pool (always the same thread, so the
    held connection stays in it) while the writer greenlet waits cooperatively.
    """
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return _call
    if not monkey.is_module_patched("threading"):
        return _call
    from gevent.threadpool import ThreadPool

    pool = ThreadPool(1)

    def run(fn: Callable[..., Any], *args: Any) -> Any:
        # The error comes back as a value: gevent's pool prints the traceback
        # of anything its function raises (a hundred lines per failed write
        # through a database outage), though it raises it here too.
        ok, value = pool.apply(_captured, (fn, *args))
        if not ok:
            raise value
        return value

    return run


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def _captured(fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    """(True, fn's value) or (False, what it raised)."""
    try:
        return True, fn(*args)
    except Exception as exc:
        return False, exc
