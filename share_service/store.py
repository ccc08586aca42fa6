"""The share service's state in the registry database: shares, snapshots, access rules.

Built on the registry's public database API: `Registry.transaction()` for one
transaction (database errors become the retryable `DatabaseUnavailable`) and
`Registry.now()` for timestamps. Blocking calls (run them off the actors, e.g.
`runtime.offload`). Each is one transaction; checks that must hold together
(duplicate id, the backend's quota) are made in the same transaction as the
write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from actors.errors import InvalidArguments
from actors.registry import Registry
from share_service.errors import (
    QuotaExceeded,
    ShareExists,
    ShareInError,
    ShareNotAvailable,
    ShareNotFound,
    SnapshotExists,
    SnapshotNotKnown,
    TooManySnapshots,
)
from share_service.tables import share_snapshots as _snapshot_table
from share_service.tables import shares as _share_table

__all__ = ["ShareStore"]

_SHARE = tuple(_share_table.columns)
_SNAPSHOT = tuple(_snapshot_table.columns)


def _data(row: Any, columns: tuple[Any, ...]) -> dict[str, Any]:
    data = {c.name: row._mapping[c.name] for c in columns}
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
    return data


class ShareStore:
    """Shares and snapshots of every backend, on the registry's database."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    # -- shares ----------------------------------------------------------------------
    def create(
        self,
        share_id: str,
        backend: str,
        size_gb: int,
        name: str | None = None,
        quota_gb: int | None = None,
        *,
        resume: bool = False,
    ) -> dict[str, Any]:
        """Record a new share in state 'creating'; ShareExists / QuotaExceeded.

        With `resume` (the create runs again after a crash) a share of this
        backend with this id and size is the one it made: returned as it is.
        """
        now = self.registry.now()
        with self.registry.transaction(write=True) as conn:
            row = self._share_row(conn, share_id)
            if row is not None:
                if resume and row.backend == backend and row.size_gb == size_gb:
                    return _data(row, _SHARE)
                raise ShareExists(share_id)
            self._check_quota(conn, backend, size_gb, quota_gb)
            statement = insert(_share_table).values(
                id=share_id,
                backend=backend,
                name=name,
                size_gb=size_gb,
                state="creating",
                reason=None,
                export_path=None,
                access_rules=[],
                created_at=now,
                updated_at=now,
            )
            try:
                conn.execute(statement)
            except IntegrityError:  # a concurrent create of the same id won
                raise ShareExists(share_id) from None
            row = self._share_row(conn, share_id)
        return _data(row, _SHARE)

    def get(self, share_id: str) -> dict[str, Any]:
        with self.registry.transaction(write=False) as conn:
            row = self._share_row(conn, share_id)
            if row is None:
                raise ShareNotFound(share_id)
            share = _data(row, _SHARE)
            share["snapshots"] = self._snapshots(conn, share_id)
        return share

    def shares(
        self, backend: str, *, after: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The backend's shares by id; a page of `limit` after the id `after` if given."""
        statement = (
            select(*_SHARE).where(_share_table.c.backend == backend).order_by(_share_table.c.id)
        )
        if after is not None:
            statement = statement.where(_share_table.c.id > after)
        if limit is not None:
            statement = statement.limit(limit)
        with self.registry.transaction(write=False) as conn:
            return [_data(row, _SHARE) for row in conn.execute(statement)]

    def usage(self, backend: str) -> tuple[int, int]:
        """(shares, allocated GB) of the backend, counted by the database (no rows read)."""
        statement = select(func.count(), func.coalesce(func.sum(_share_table.c.size_gb), 0)).where(
            _share_table.c.backend == backend
        )
        with self.registry.transaction(write=False) as conn:
            count, allocated = conn.execute(statement).one()
        return int(count), int(allocated)

    def update(
        self, share_id: str, *, quota_gb: int | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Change fields of a share; a bigger size_gb is checked against `quota_gb`."""
        with self.registry.transaction(write=True) as conn:
            row = self._share_row(conn, share_id)
            if row is None:
                raise ShareNotFound(share_id)
            new_size = fields.get("size_gb")
            if new_size is not None and new_size > row.size_gb:
                self._check_quota(conn, row.backend, new_size - row.size_gb, quota_gb)
            fields["updated_at"] = self.registry.now()
            conn.execute(update(_share_table).where(_share_table.c.id == share_id).values(**fields))
            return _data(self._share_row(conn, share_id), _SHARE)

    def transition(
        self,
        share_id: str,
        expected: tuple[str, ...],
        state: str,
        *,
        quota_gb: int | None = None,
        resize_to: int | None = None,
        resume: bool = False,
        **fields: Any,
    ) -> dict[str, Any]:
        """Move a share from one of `expected` states to `state`, atomically.

        Raises ShareNotFound, ShareInError (in error, not expected), or
        ShareNotAvailable (another operation holds it: retryable). With
        `resize_to`, the new size must differ from the current one in the
        direction of `state` ('extending' grows, anything else shrinks),
        checked here so that two resizes cannot cross. A bigger size_gb is
        checked against `quota_gb` in the same transaction. The result has
        the share as it is now plus `previous_state` and `previous_size_gb`.

        With `resume` (the operation runs again after a crash) the share may be
        in `state` already, and already at the size `resize_to`.
        """
        if resume:
            expected = (*expected, state)
        with self.registry.transaction(write=True) as conn:
            row = self._share_row(conn, share_id)
            if row is None:
                raise ShareNotFound(share_id)
            if row.state not in expected:
                kind = ShareInError if row.state == "error" else ShareNotAvailable
                raise kind(share_id, row.state, expected)
            if resize_to is not None:
                grow = state == "extending"
                wrong = (resize_to <= row.size_gb) if grow else (resize_to >= row.size_gb)
                if wrong and not (resume and resize_to == row.size_gb):
                    way = "exceed" if grow else "be below"
                    raise InvalidArguments(
                        row.backend,
                        "extend_share" if grow else "shrink_share",
                        f"new size must {way} {row.size_gb} GB",
                    )
            new_size = fields.get("size_gb")
            if new_size is not None and new_size > row.size_gb:
                self._check_quota(conn, row.backend, new_size - row.size_gb, quota_gb)
            result = conn.execute(
                update(_share_table)
                .where(_share_table.c.id == share_id, _share_table.c.state == row.state)
                .values(state=state, updated_at=self.registry.now(), **fields)
            )
            if result.rowcount != 1:  # changed under us (PostgreSQL READ COMMITTED)
                raise ShareNotAvailable(share_id, "changing", expected)
            data = _data(self._share_row(conn, share_id), _SHARE)
            # A resumed operation that finds the share in its own state: undone, it
            # is available (its data is there, the crash only cut the bookkeeping).
            previous = "available" if resume and row.state == state else row.state
            data["previous_state"], data["previous_size_gb"] = previous, row.size_gb
            return data

    def delete(self, share_id: str) -> bool:
        with self.registry.transaction(write=True) as conn:
            conn.execute(delete(_snapshot_table).where(_snapshot_table.c.share_id == share_id))
            return bool(
                conn.execute(delete(_share_table).where(_share_table.c.id == share_id)).rowcount
            )

    # -- snapshots ---------------------------------------------------------------------
    def add_snapshot(
        self, share_id: str, snapshot_id: str, limit: int | None = None
    ) -> dict[str, Any]:
        """Record a new snapshot ('creating'); TooManySnapshots if the share has `limit`."""
        now = self.registry.now()
        with self.registry.transaction(write=True) as conn:
            if self._share_row(conn, share_id) is None:
                raise ShareNotFound(share_id)
            exists = conn.execute(
                select(_snapshot_table.c.id).where(_snapshot_table.c.id == snapshot_id)
            ).first()
            if exists is not None:
                raise SnapshotExists(snapshot_id)
            if limit is not None:
                count = conn.execute(
                    select(func.count())
                    .select_from(_snapshot_table)
                    .where(_snapshot_table.c.share_id == share_id)
                ).scalar_one()
                if count >= limit:
                    raise TooManySnapshots(share_id, limit)
            try:
                conn.execute(
                    insert(_snapshot_table).values(
                        id=snapshot_id,
                        share_id=share_id,
                        state="creating",
                        size_bytes=None,
                        reason=None,
                        created_at=now,
                        updated_at=now,
                    )
                )
            except IntegrityError:  # a concurrent snapshot with this id won
                raise SnapshotExists(snapshot_id) from None
            return self._snapshot(conn, share_id, snapshot_id)

    def update_snapshot(self, share_id: str, snapshot_id: str, **fields: Any) -> dict[str, Any]:
        fields["updated_at"] = self.registry.now()
        with self.registry.transaction(write=True) as conn:
            self._snapshot(conn, share_id, snapshot_id)
            conn.execute(
                update(_snapshot_table).where(_snapshot_table.c.id == snapshot_id).values(**fields)
            )
            return self._snapshot(conn, share_id, snapshot_id)

    def get_snapshot(self, share_id: str, snapshot_id: str) -> dict[str, Any]:
        with self.registry.transaction(write=False) as conn:
            return self._snapshot(conn, share_id, snapshot_id)

    def fail_pending_snapshots(self, share_id: str, reason: str) -> int:
        """Snapshots left 'creating' by a crash: mark them error."""
        with self.registry.transaction(write=True) as conn:
            result = conn.execute(
                update(_snapshot_table)
                .where(
                    _snapshot_table.c.share_id == share_id,
                    _snapshot_table.c.state == "creating",
                )
                .values(state="error", reason=reason, updated_at=self.registry.now())
            )
            return int(result.rowcount)

    def delete_snapshot(self, share_id: str, snapshot_id: str) -> bool:
        with self.registry.transaction(write=True) as conn:
            result = conn.execute(
                delete(_snapshot_table).where(
                    _snapshot_table.c.id == snapshot_id, _snapshot_table.c.share_id == share_id
                )
            )
            return bool(result.rowcount)

    # -- internals ---------------------------------------------------------------------
    def _share_row(self, conn: Connection, share_id: str) -> Any:
        return conn.execute(select(*_SHARE).where(_share_table.c.id == share_id)).first()

    def _snapshots(self, conn: Connection, share_id: str) -> list[dict[str, Any]]:
        statement = (
            select(*_SNAPSHOT)
            .where(_snapshot_table.c.share_id == share_id)
            .order_by(_snapshot_table.c.created_at, _snapshot_table.c.id)
        )
        return [_data(row, _SNAPSHOT) for row in conn.execute(statement)]

    def _snapshot(self, conn: Connection, share_id: str, snapshot_id: str) -> dict[str, Any]:
        row = conn.execute(
            select(*_SNAPSHOT).where(
                _snapshot_table.c.id == snapshot_id, _snapshot_table.c.share_id == share_id
            )
        ).first()
        if row is None:
            raise SnapshotNotKnown(share_id, snapshot_id)
        return _data(row, _SNAPSHOT)

    def _check_quota(
        self, conn: Connection, backend: str, more_gb: int, quota_gb: int | None
    ) -> None:
        if quota_gb is None:
            return
        if conn.dialect.name == "postgresql":
            # READ COMMITTED would let two transactions both see room: serialise
            # the quota checks of one backend until this transaction ends.
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:b))"), {"b": backend})
        used = conn.execute(
            select(func.coalesce(func.sum(_share_table.c.size_gb), 0)).where(
                _share_table.c.backend == backend
            )
        ).scalar_one()
        if int(used) + more_gb > quota_gb:
            raise QuotaExceeded(backend, quota_gb, int(used), more_gb)
