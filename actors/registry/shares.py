"""The share service's state in the registry database: shares, snapshots, access rules.

Blocking calls (run them off the actors, e.g. `runtime.offload`). Each is one
transaction; checks that must hold together (duplicate id, the backend's
quota) are made in the same transaction as the write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from actors.errors import InvalidArguments
from actors.registry.api import Registry, RegistryError
from actors.registry.models import ShareModel, ShareSnapshotModel
from transport.errors import register_error

__all__ = [
    "QuotaExceeded",
    "ShareExists",
    "ShareInError",
    "ShareNotAvailable",
    "ShareNotFound",
    "ShareStore",
    "SnapshotExists",
    "SnapshotNotKnown",
]

_SHARE = tuple(ShareModel.__table__.columns)
_SNAPSHOT = tuple(ShareSnapshotModel.__table__.columns)


class ShareNotFound(RegistryError):
    """No share with this id."""

    def __init__(self, share_id: str) -> None:
        super().__init__(f"no share {share_id!r}", share_id=share_id)


class ShareExists(RegistryError):
    """A share with this id exists already."""

    def __init__(self, share_id: str) -> None:
        super().__init__(f"share {share_id!r} exists already", share_id=share_id)


class QuotaExceeded(RegistryError):
    """The backend's quota would be exceeded."""

    def __init__(self, backend: str, quota_gb: int, used_gb: int, requested_gb: int) -> None:
        super().__init__(
            f"{backend} quota of {quota_gb} GB exceeded:"
            f" {used_gb} GB used, {requested_gb} GB more asked",
            backend=backend,
            quota_gb=quota_gb,
            used_gb=used_gb,
            requested_gb=requested_gb,
        )


class ShareNotAvailable(RegistryError):
    """The share is not in a state that allows this (busy with another operation, or in error)."""

    retryable = True

    def __init__(self, share_id: str, state: str, expected: tuple[str, ...]) -> None:
        super().__init__(
            f"share {share_id!r} is {state}; this needs it {' or '.join(expected)}",
            share_id=share_id,
            state=state,
            expected=list(expected),
        )


class ShareInError(ShareNotAvailable):
    """The share is in error: only deleting it helps (not retryable)."""

    retryable = False


class SnapshotExists(RegistryError):
    """A snapshot with this id exists already."""

    def __init__(self, snapshot_id: str) -> None:
        super().__init__(f"snapshot {snapshot_id!r} exists already", snapshot_id=snapshot_id)


class TooManySnapshots(RegistryError):
    """The share has as many snapshots as it may keep (each is in every get_share)."""

    def __init__(self, share_id: str, limit: int) -> None:
        super().__init__(
            f"share {share_id!r} has {limit} snapshots, the most it may keep: delete one first",
            share_id=share_id,
            limit=limit,
        )


class SnapshotNotKnown(RegistryError):
    """No snapshot with this id for this share."""

    def __init__(self, share_id: str, snapshot_id: str) -> None:
        super().__init__(
            f"share {share_id!r} has no snapshot {snapshot_id!r}",
            share_id=share_id,
            snapshot_id=snapshot_id,
        )


class ShareStateNotRecorded(RegistryError):
    """The driver did the work, but the share's new state could not be written.

    Not retryable: running the change again would do the work twice. The
    share keeps its transitional state until the next start's repair.
    """

    retryable = False

    def __init__(self, share_id: str, reason: str) -> None:
        super().__init__(
            f"share {share_id!r}: the driver's work is done but its new state could not be"
            f" recorded ({reason}); the share is repaired at the next start",
            share_id=share_id,
            reason=reason,
        )


register_error(
    ShareNotFound,
    ShareExists,
    QuotaExceeded,
    ShareNotAvailable,
    ShareInError,
    ShareStateNotRecorded,
    SnapshotExists,
    SnapshotNotKnown,
    TooManySnapshots,
)


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
    ) -> dict[str, Any]:
        """Record a new share in state 'creating'; ShareExists / QuotaExceeded."""
        now = self.registry._clock()
        with self.registry._transaction(write=True) as conn:
            if self._share_row(conn, share_id) is not None:
                raise ShareExists(share_id)
            self._check_quota(conn, backend, size_gb, quota_gb)
            statement = insert(ShareModel).values(
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
        with self.registry._transaction(write=False) as conn:
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
        statement = select(*_SHARE).where(ShareModel.backend == backend).order_by(ShareModel.id)
        if after is not None:
            statement = statement.where(ShareModel.id > after)
        if limit is not None:
            statement = statement.limit(limit)
        with self.registry._transaction(write=False) as conn:
            return [_data(row, _SHARE) for row in conn.execute(statement)]

    def update(
        self, share_id: str, *, quota_gb: int | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Change fields of a share; a bigger size_gb is checked against `quota_gb`."""
        with self.registry._transaction(write=True) as conn:
            row = self._share_row(conn, share_id)
            if row is None:
                raise ShareNotFound(share_id)
            new_size = fields.get("size_gb")
            if new_size is not None and new_size > row.size_gb:
                self._check_quota(conn, row.backend, new_size - row.size_gb, quota_gb)
            fields["updated_at"] = self.registry._clock()
            conn.execute(update(ShareModel).where(ShareModel.id == share_id).values(**fields))
            return _data(self._share_row(conn, share_id), _SHARE)

    def transition(
        self,
        share_id: str,
        expected: tuple[str, ...],
        state: str,
        *,
        quota_gb: int | None = None,
        resize_to: int | None = None,
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
        """
        with self.registry._transaction(write=True) as conn:
            row = self._share_row(conn, share_id)
            if row is None:
                raise ShareNotFound(share_id)
            if row.state not in expected:
                kind = ShareInError if row.state == "error" else ShareNotAvailable
                raise kind(share_id, row.state, expected)
            if resize_to is not None:
                grow = state == "extending"
                if (resize_to <= row.size_gb) if grow else (resize_to >= row.size_gb):
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
                update(ShareModel)
                .where(ShareModel.id == share_id, ShareModel.state == row.state)
                .values(state=state, updated_at=self.registry._clock(), **fields)
            )
            if result.rowcount != 1:  # changed under us (PostgreSQL READ COMMITTED)
                raise ShareNotAvailable(share_id, "changing", expected)
            data = _data(self._share_row(conn, share_id), _SHARE)
            data["previous_state"], data["previous_size_gb"] = row.state, row.size_gb
            return data

    def delete(self, share_id: str) -> bool:
        with self.registry._transaction(write=True) as conn:
            conn.execute(delete(ShareSnapshotModel).where(ShareSnapshotModel.share_id == share_id))
            return bool(conn.execute(delete(ShareModel).where(ShareModel.id == share_id)).rowcount)

    # -- snapshots ---------------------------------------------------------------------
    def add_snapshot(
        self, share_id: str, snapshot_id: str, limit: int | None = None
    ) -> dict[str, Any]:
        """Record a new snapshot ('creating'); TooManySnapshots if the share has `limit`."""
        now = self.registry._clock()
        with self.registry._transaction(write=True) as conn:
            if self._share_row(conn, share_id) is None:
                raise ShareNotFound(share_id)
            exists = conn.execute(
                select(ShareSnapshotModel.id).where(ShareSnapshotModel.id == snapshot_id)
            ).first()
            if exists is not None:
                raise SnapshotExists(snapshot_id)
            if limit is not None:
                count = conn.execute(
                    select(func.count())
                    .select_from(ShareSnapshotModel)
                    .where(ShareSnapshotModel.share_id == share_id)
                ).scalar_one()
                if count >= limit:
                    raise TooManySnapshots(share_id, limit)
            try:
                conn.execute(
                    insert(ShareSnapshotModel).values(
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
        fields["updated_at"] = self.registry._clock()
        with self.registry._transaction(write=True) as conn:
            self._snapshot(conn, share_id, snapshot_id)
            conn.execute(
                update(ShareSnapshotModel)
                .where(ShareSnapshotModel.id == snapshot_id)
                .values(**fields)
            )
            return self._snapshot(conn, share_id, snapshot_id)

    def get_snapshot(self, share_id: str, snapshot_id: str) -> dict[str, Any]:
        with self.registry._transaction(write=False) as conn:
            return self._snapshot(conn, share_id, snapshot_id)

    def fail_pending_snapshots(self, share_id: str, reason: str) -> int:
        """Snapshots left 'creating' by a crash: mark them error."""
        with self.registry._transaction(write=True) as conn:
            result = conn.execute(
                update(ShareSnapshotModel)
                .where(
                    ShareSnapshotModel.share_id == share_id,
                    ShareSnapshotModel.state == "creating",
                )
                .values(state="error", reason=reason, updated_at=self.registry._clock())
            )
            return int(result.rowcount)

    def delete_snapshot(self, share_id: str, snapshot_id: str) -> bool:
        with self.registry._transaction(write=True) as conn:
            result = conn.execute(
                delete(ShareSnapshotModel).where(
                    ShareSnapshotModel.id == snapshot_id, ShareSnapshotModel.share_id == share_id
                )
            )
            return bool(result.rowcount)

    # -- internals ---------------------------------------------------------------------
    def _share_row(self, conn: Connection, share_id: str) -> Any:
        return conn.execute(select(*_SHARE).where(ShareModel.id == share_id)).first()

    def _snapshots(self, conn: Connection, share_id: str) -> list[dict[str, Any]]:
        statement = (
            select(*_SNAPSHOT)
            .where(ShareSnapshotModel.share_id == share_id)
            .order_by(ShareSnapshotModel.created_at, ShareSnapshotModel.id)
        )
        return [_data(row, _SNAPSHOT) for row in conn.execute(statement)]

    def _snapshot(self, conn: Connection, share_id: str, snapshot_id: str) -> dict[str, Any]:
        row = conn.execute(
            select(*_SNAPSHOT).where(
                ShareSnapshotModel.id == snapshot_id, ShareSnapshotModel.share_id == share_id
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
            select(func.coalesce(func.sum(ShareModel.size_gb), 0)).where(
                ShareModel.backend == backend
            )
        ).scalar_one()
        if int(used) + more_gb > quota_gb:
            raise QuotaExceeded(backend, quota_gb, int(used), more_gb)
