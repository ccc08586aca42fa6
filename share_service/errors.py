"""Every error of the share service: the manager's, the store's and the drivers'.

All derive from `ShareError` (an `ActorsError`), carry their data as details,
and are registered with `transport.errors.register_error`, so a Python client
that imports this module gets them back as these types; any other client
(actorsctl included) gets them as `RemoteError` with the same type name,
message, details and `retryable` flag.
"""

from __future__ import annotations

from typing import Any

from actors.errors import ActorsError
from share_service.ids import ID_RULE
from transport.errors import register_error

__all__ = [
    "InvalidAccessRule",
    "QuotaExceeded",
    "ShareBroken",
    "ShareError",
    "ShareExists",
    "ShareInError",
    "ShareNotAvailable",
    "ShareNotFound",
    "ShareNotFoundOnHost",
    "ShareNotReady",
    "ShareStateNotRecorded",
    "ShareTooSmall",
    "SnapshotExists",
    "SnapshotNotFound",
    "SnapshotNotKnown",
    "TooManySnapshots",
    "UnsafeShareId",
    "UnsafeSnapshotId",
]


class ShareError(ActorsError):
    """Base of the share service's errors."""


# -- the shares' state (the store and the manager) -------------------------------------------
class ShareNotFound(ShareError):
    """No share with this id."""

    def __init__(self, share_id: str) -> None:
        super().__init__(f"no share {share_id!r}", share_id=share_id)


class ShareExists(ShareError):
    """A share with this id exists already."""

    def __init__(self, share_id: str) -> None:
        super().__init__(f"share {share_id!r} exists already", share_id=share_id)


class QuotaExceeded(ShareError):
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


class ShareNotAvailable(ShareError):
    """The share is not in a state that allows this (busy with another operation, or in error)."""

    retryable = True

    def __init__(self, share_id: str, state: str, expected: tuple[str, ...]) -> None:
        super().__init__(
            f"share {share_id!r} is {state}; this needs it {' or '.join(expected)}",
            share_id=share_id,
            state=state,
            expected=list(expected),
        )


class ShareNotReady(ShareError):
    """The backend has not yet repaired this share since it started (retryable).

    At start a backend checks every share it holds, in id order; a change to a
    share not checked yet is refused with this meanwhile (reads are served).
    """

    retryable = True

    def __init__(self, share_id: str, backend: str) -> None:
        super().__init__(
            f"share {share_id!r} is not ready: backend {backend!r} is still repairing its"
            " shares after a start (retry)",
            share_id=share_id,
            backend=backend,
        )


class ShareInError(ShareNotAvailable):
    """The share is in error: only deleting it helps (not retryable)."""

    retryable = False


class SnapshotExists(ShareError):
    """A snapshot with this id exists already."""

    def __init__(self, snapshot_id: str) -> None:
        super().__init__(f"snapshot {snapshot_id!r} exists already", snapshot_id=snapshot_id)


class TooManySnapshots(ShareError):
    """The share has as many snapshots as it may keep (each is in every get_share)."""

    def __init__(self, share_id: str, limit: int) -> None:
        super().__init__(
            f"share {share_id!r} has {limit} snapshots, the most it may keep: delete one first",
            share_id=share_id,
            limit=limit,
        )


class SnapshotNotKnown(ShareError):
    """No snapshot with this id for this share."""

    def __init__(self, share_id: str, snapshot_id: str) -> None:
        super().__init__(
            f"share {share_id!r} has no snapshot {snapshot_id!r}",
            share_id=share_id,
            snapshot_id=snapshot_id,
        )


class ShareStateNotRecorded(ShareError):
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


# -- the host (the drivers) -------------------------------------------------------------------
class UnsafeShareId(ShareError):
    """A share id that could escape the driver's root, or whose path is a symlink."""

    def __init__(self, share_id: str, reason: str = f"use {ID_RULE}") -> None:
        super().__init__(
            f"unsafe share id {share_id!r}: {reason}", share_id=share_id, reason=reason
        )


class UnsafeSnapshotId(ShareError):
    """A snapshot id that could escape the driver's root, or whose path is a symlink."""

    def __init__(self, snapshot_id: str, reason: str = f"use {ID_RULE}") -> None:
        super().__init__(
            f"unsafe snapshot id {snapshot_id!r}: {reason}", snapshot_id=snapshot_id, reason=reason
        )


class ShareNotFoundOnHost(ShareError):
    """The share's directory does not exist on this host."""

    def __init__(self, share_id: str) -> None:
        super().__init__(f"share {share_id!r} does not exist on this host", share_id=share_id)


class SnapshotNotFound(ShareError):
    """The snapshot does not exist on this host."""

    def __init__(self, share_id: str, snapshot_id: str) -> None:
        super().__init__(
            f"snapshot {snapshot_id!r} of share {share_id!r} does not exist",
            share_id=share_id,
            snapshot_id=snapshot_id,
        )


class ShareTooSmall(ShareError):
    """A shrink would leave less room than the share already uses."""

    def __init__(self, share_id: str, used_bytes: int, requested_gb: int) -> None:
        super().__init__(
            f"share {share_id!r} uses {used_bytes} bytes, more than {requested_gb} GiB",
            share_id=share_id,
            used_bytes=used_bytes,
            requested_gb=requested_gb,
        )


class InvalidAccessRule(ShareError):
    """An access rule the exports file cannot express safely."""

    def __init__(self, rule: Any, reason: str) -> None:
        super().__init__(f"invalid access rule {rule!r}: {reason}", rule=rule, reason=reason)


class ShareBroken(ShareError):
    """The share cannot be served and cannot be repaired by the driver (data is missing)."""

    def __init__(self, share_id: str, reason: str) -> None:
        super().__init__(
            f"share {share_id!r} is broken: {reason}", share_id=share_id, reason=reason
        )


register_error(
    ShareError,
    ShareNotFound,
    ShareExists,
    QuotaExceeded,
    ShareNotAvailable,
    ShareInError,
    ShareNotReady,
    ShareStateNotRecorded,
    SnapshotExists,
    SnapshotNotKnown,
    TooManySnapshots,
    UnsafeShareId,
    UnsafeSnapshotId,
    ShareNotFoundOnHost,
    SnapshotNotFound,
    ShareTooSmall,
    InvalidAccessRule,
    ShareBroken,
)
