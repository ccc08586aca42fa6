"""The durable operation journal: operations are committed before they are acknowledged.

`Journal.accept()` records an operation (target, method, JSON args, optional
idempotency key) and returns a future that resolves with the committed
`OperationRecord`. Accepts and state changes go through one writer thread that
GROUP COMMITS them: it takes whatever is pending (up to `batch_max`, waiting at
most `batch_wait` seconds after the first request for more to arrive) and
writes it in one transaction, so N concurrent operations cost one fsync, not N.
A future resolves only after its batch has committed.

An idempotency key is unique per target: accepting (target, key) again, in a
later batch or in the same one, resolves with the operation already recorded
(with its current state and result) and never writes a second row.

Database failures reach every waiting future as the registry's retryable
`DatabaseUnavailable`; the writer survives them and goes on with the next
batch. Nothing waits forever: the database calls are bounded by the registry's
connect / statement / lock timeouts, and `close()` has its own deadline.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from actors.registry.api import Registry, RegistryError
from actors.registry.models import (
    FINISHED_STATES,
    OPERATION_STATES,
    UNFINISHED_STATES,
    OperationModel,
)
from transport.errors import register_error

__all__ = [
    "InvalidTransition",
    "Journal",
    "JournalClosed",
    "OperationNotFound",
    "OperationRecord",
]

log = logging.getLogger(__name__)

_TABLE = OperationModel.__table__
_COLUMNS = tuple(_TABLE.columns)

# States set_state() may set: 'accepted' is set by accept() only.
SETTABLE_STATES = frozenset(OPERATION_STATES) - {"accepted"}


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


class InvalidTransition(RegistryError):
    """The operation is finished; its state, result and error are final."""

    def __init__(self, op_id: str, state: str, requested: str) -> None:
        super().__init__(
            f"operation {op_id!r} is {state}: it cannot become {requested}",
            op_id=op_id,
            state=state,
            requested=requested,
        )


register_error(JournalClosed, OperationNotFound, InvalidTransition)


@dataclass(frozen=True)
class OperationRecord:
    """One operation as committed in the journal."""

    id: str
    idempotency_key: str | None
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


@dataclass
class _Accept:
    values: dict[str, Any]
    future: Future[OperationRecord]


@dataclass
class _SetState:
    op_id: str
    state: str
    result: Any
    error: Any
    reason: str | None
    future: Future[OperationRecord]


_Request = _Accept | _SetState


def _record(row: RowMapping | dict[str, Any]) -> OperationRecord:
    return OperationRecord(**{column.name: row[column.name] for column in _COLUMNS})


def _check_json(what: str, value: Any) -> None:
    """Fail now, in the caller, rather than failing a whole batch later."""
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable: {exc}") from None


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
        batch_wait: float = 0.002,
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
        self._pending: list[_Request] = []
        self._cond = threading.Condition()
        self._closed = False
        self._batches = 0
        self._writer = threading.Thread(
            target=self._run, name=f"journal-writer({registry.url})", daemon=True
        )
        self._writer.start()

    @property
    def batches(self) -> int:
        """How many batches (transactions) the writer has run so far."""
        return self._batches

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
    ) -> Future[OperationRecord]:
        """Record a new 'accepted' operation; the future resolves once it is committed.

        With a key already recorded for this target, the future resolves with
        that operation instead (no second row): compare its id with `op_id`
        (a new UUID unless given) to tell the two apart. Raises TypeError at
        once when `args` is not JSON-serialisable.
        """
        _check_json("args", args)
        now = self._registry._clock()
        values: dict[str, Any] = {
            "id": op_id or str(uuid.uuid4()),
            "idempotency_key": key,
            "target": target,
            "method": method,
            "args": args,
            "state": "accepted",
            "result": None,
            "error": None,
            "reason": None,
            "created_at": now,
            "updated_at": now,
            "finished_at": None,
        }
        future: Future[OperationRecord] = Future()
        self._submit(_Accept(values, future))
        return future

    def set_state(
        self,
        op_id: str,
        state: str,
        result: Any = None,
        error: Any = None,
        reason: str | None = None,
    ) -> Future[OperationRecord]:
        """Move an unfinished operation to `state`; resolves with the updated record.

        Finished states ('succeeded', 'failed', 'interrupted') set finished_at
        and are final: changing a finished operation fails with
        InvalidTransition; an unknown id with OperationNotFound.
        """
        if state not in SETTABLE_STATES:
            raise ValueError(f"state must be one of {sorted(SETTABLE_STATES)}, not {state!r}")
        _check_json("result", result)
        _check_json("error", error)
        future: Future[OperationRecord] = Future()
        self._submit(_SetState(op_id, state, result, error, reason, future))
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Flush what is pending, then stop the writer. Later writes fail with JournalClosed.

        Waits at most `timeout` seconds for the writer; whatever it has not
        written by then fails with JournalClosed. Does not close the registry.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._writer.join(timeout)
        with self._cond:
            left, self._pending = self._pending, []
        for request in left:
            _fail(request.future, JournalClosed(self._registry.url))

    # -- reads ------------------------------------------------------------------

    def get(self, op_id: str) -> OperationRecord | None:
        """The operation with this id, or None."""
        return self._one(OperationModel.id == op_id)

    def get_by_key(self, target: str, key: str) -> OperationRecord | None:
        """The operation recorded for (target, idempotency key), or None."""
        return self._one(OperationModel.target == target, OperationModel.idempotency_key == key)

    def list(
        self, state: str | None = None, target: str | None = None, limit: int = 100
    ) -> builtins.list[OperationRecord]:
        """Operations, oldest first, optionally of one state and/or target."""
        statement = select(*_COLUMNS).order_by(OperationModel.created_at, OperationModel.id)
        if state is not None:
            statement = statement.where(OperationModel.state == state)
        if target is not None:
            statement = statement.where(OperationModel.target == target)
        with self._registry._transaction(write=False) as conn:
            return [_record(row._mapping) for row in conn.execute(statement.limit(limit))]

    def unfinished(self, created_before: datetime | None = None) -> builtins.list[OperationRecord]:
        """Every accepted or running operation, oldest first: what crash recovery handles.

        `created_before` limits it to operations of an earlier process (those
        accepted before this one started).
        """
        statement = (
            select(*_COLUMNS)
            .where(OperationModel.state.in_(UNFINISHED_STATES))
            .order_by(OperationModel.created_at, OperationModel.id)
        )
        if created_before is not None:
            statement = statement.where(OperationModel.created_at < created_before)
        with self._registry._transaction(write=False) as conn:
            return [_record(row._mapping) for row in conn.execute(statement)]

    def prune(self, older_than: timedelta) -> int:
        """Delete finished operations that finished more than `older_than` ago; return how many."""
        cutoff = self._registry._clock() - older_than
        statement = delete(OperationModel).where(
            OperationModel.state.in_(FINISHED_STATES),
            OperationModel.finished_at.is_not(None),
            OperationModel.finished_at < cutoff,
        )
        with self._registry._transaction(write=True) as conn:
            return conn.execute(statement).rowcount

    # -- the writer ---------------------------------------------------------------

    def _submit(self, request: _Request) -> None:
        with self._cond:
            if not self._closed and len(self._pending) < self._max_pending:
                self._pending.append(request)
                self._cond.notify_all()
                return
            closed = self._closed
        # Bounded: a journal that cannot keep up refuses at once (retryable).
        error = JournalClosed(self._registry.url) if closed else JournalBusy(self._max_pending)
        _fail(request.future, error)

    def _take(self) -> builtins.list[_Request] | None:
        """The next batch; None once closed with nothing left."""
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._cond.wait()
            if self._batch_wait > 0 and len(self._pending) < self._batch_max and not self._closed:
                # Let concurrent callers join the batch, for at most batch_wait.
                self._cond.wait_for(
                    lambda: len(self._pending) >= self._batch_max or self._closed,
                    timeout=self._batch_wait,
                )
            batch = self._pending[: self._batch_max]
            del self._pending[: self._batch_max]
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                outcomes = self._write(batch)
            except BaseException as exc:  # the writer must survive anything
                if not isinstance(exc, RegistryError):
                    log.exception("operation journal batch of %d failed", len(batch))
                for request in batch:
                    _fail(request.future, exc)
                continue
            finally:
                self._batches += 1
            # Only now, after the commit: acknowledge.
            for request, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    _fail(request.future, outcome)
                elif not request.future.done():
                    request.future.set_result(outcome)

    def _write(self, batch: Sequence[_Request]) -> builtins.list[OperationRecord | Exception]:
        """Write one batch in one transaction; an outcome per request, in order."""
        accepts = [(i, r) for i, r in enumerate(batch) if isinstance(r, _Accept)]
        states = [(i, r) for i, r in enumerate(batch) if isinstance(r, _SetState)]
        outcomes: dict[int, OperationRecord | Exception] = {}
        with self._registry._transaction(write=True) as conn:
            if accepts:
                records = self._insert(conn, [r.values for _, r in accepts])
                outcomes.update(zip((i for i, _ in accepts), records, strict=True))
            for i, request in states:
                outcomes[i] = self._update(conn, request)
        return [outcomes[i] for i in range(len(batch))]

    def _insert(
        self, conn: Connection, rows: Sequence[dict[str, Any]]
    ) -> builtins.list[OperationRecord]:
        """Insert the new operations; keyed ones resolve to whichever row holds the key."""
        first_by_key: dict[tuple[str, str], dict[str, Any]] = {}
        unkeyed: builtins.list[dict[str, Any]] = []
        for values in rows:
            key = values["idempotency_key"]
            if key is None:
                unkeyed.append(values)
            elif (values["target"], key) not in first_by_key:
                # Within one batch, the first accept of a key is the one written.
                first_by_key[(values["target"], key)] = values
        if unkeyed:
            conn.execute(insert(OperationModel), unkeyed)
        keyed: dict[tuple[str, str], OperationRecord] = {}
        if first_by_key:
            conn.execute(self._insert_keyed(), builtins.list(first_by_key.values()))
            keyed = self._by_keys(conn, first_by_key)
        out: builtins.list[OperationRecord] = []
        for values in rows:
            key = values["idempotency_key"]
            out.append(_record(values) if key is None else keyed[(values["target"], key)])
        return out

    def _insert_keyed(self) -> Any:
        """INSERT ... ON CONFLICT (target, idempotency_key) DO NOTHING."""
        keyed_rows = OperationModel.idempotency_key.is_not(None)
        columns = [OperationModel.target, OperationModel.idempotency_key]
        if self._dialect == "postgresql":
            return pg_insert(OperationModel).on_conflict_do_nothing(
                index_elements=columns, index_where=keyed_rows
            )
        return sqlite_insert(OperationModel).on_conflict_do_nothing(
            index_elements=columns, index_where=keyed_rows
        )

    def _by_keys(
        self, conn: Connection, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], OperationRecord]:
        by_target: dict[str, builtins.list[str]] = {}
        for target, key in keys:
            by_target.setdefault(target, []).append(key)
        found: dict[tuple[str, str], OperationRecord] = {}
        # Chunks keep the number of bound parameters well under every driver's limit.
        items = sorted(by_target.items())
        for start in range(0, len(items), 200):
            clause = or_(
                *(
                    and_(OperationModel.target == target, OperationModel.idempotency_key.in_(ks))
                    for target, ks in items[start : start + 200]
                )
            )
            for row in conn.execute(select(*_COLUMNS).where(clause)):
                record = _record(row._mapping)
                assert record.idempotency_key is not None
                found[(record.target, record.idempotency_key)] = record
        return found

    def _update(self, conn: Connection, request: _SetState) -> OperationRecord | Exception:
        now = self._registry._clock()
        statement = (
            update(OperationModel)
            .where(
                OperationModel.id == request.op_id,
                OperationModel.state.in_(UNFINISHED_STATES),
            )
            .values(
                state=request.state,
                result=request.result,
                error=request.error,
                reason=request.reason,
                updated_at=now,
                finished_at=now if request.state in FINISHED_STATES else None,
            )
            .returning(*_COLUMNS)
        )
        row = conn.execute(statement).first()
        if row is not None:
            return _record(row._mapping)
        current = conn.execute(
            select(OperationModel.state).where(OperationModel.id == request.op_id)
        ).scalar_one_or_none()
        if current is None:
            return OperationNotFound(request.op_id)
        return InvalidTransition(request.op_id, current, request.state)

    # -- internals ------------------------------------------------------------------

    def _one(self, *where: Any) -> OperationRecord | None:
        with self._registry._transaction(write=False) as conn:
            row = conn.execute(select(*_COLUMNS).where(*where)).first()
        return None if row is None else _record(row._mapping)


def _fail(future: Future[OperationRecord], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
