"""`ShareDriver`: the share driver contract, the "VolumeDriver" of the share service.

An abstract base class declaring the operations `ShareManager` calls, with
their arguments, return shapes, errors and whether re-running them is safe.
`LocalShareDriver` and `FakeShareDriver` implement it as DriverActors; a plain
class implementing it is a driver too (the framework wraps it: see
docs/architecture.md), and a class that does not subclass it may list the same
operations in its backend's `driver_operations`. `share_service.testing`
holds the contract's tests, to run against any implementation.

Ids are safe ids (`share_service.ids`): an unsafe one is refused with
`UnsafeShareId` / `UnsafeSnapshotId`. Sizes are positive integers of GiB, else
`InvalidArguments`. Access rules are maps with `access_to` and `access_level`
('rw' or 'ro'), else `InvalidAccessRule`.
"""

from __future__ import annotations

import abc
from typing import Any

from actors.drivers import operation

__all__ = ["ShareDriver"]


class ShareDriver(abc.ABC):
    """The operations of a share driver; implementations inherit the declarations."""

    @abc.abstractmethod
    def get_stats(self) -> dict[str, Any]:
        """Capacity and capabilities: `total_capacity_gb`, `free_capacity_gb`,
        `snapshot_support`, `revert_to_snapshot_support` (plain data)."""

    # -- shares -------------------------------------------------------------------------
    @operation(idempotent=True)
    @abc.abstractmethod
    def create_share(self, share_id: str, size_gb: int) -> dict[str, Any]:
        """Make the share (again: no error if it exists); {share_id, export_path, size_gb}."""

    @operation(idempotent=True)
    @abc.abstractmethod
    def delete_share(self, share_id: str) -> bool:
        """Remove the share, its snapshots and its exports; whether it existed."""

    @operation(idempotent=True)
    @abc.abstractmethod
    def extend_share(self, share_id: str, new_size_gb: int) -> dict[str, Any]:
        """Grow the share; {share_id, size_gb}; ShareNotFoundOnHost if it is missing."""

    @operation
    @abc.abstractmethod
    def shrink_share(self, share_id: str, new_size_gb: int) -> dict[str, Any]:
        """Shrink the share; {share_id, size_gb}; ShareTooSmall below what it holds."""

    @operation(idempotent=True)
    @abc.abstractmethod
    def get_usage(self, share_id: str) -> dict[str, Any]:
        """{share_id, used_bytes}; ShareNotFoundOnHost if the share is missing."""

    # -- snapshots ----------------------------------------------------------------------
    @operation(idempotent=True)
    @abc.abstractmethod
    def create_snapshot(self, share_id: str, snapshot_id: str) -> dict[str, Any]:
        """Copy the share (again: no error); {share_id, snapshot_id, path, size_bytes}."""

    @operation(idempotent=True)
    @abc.abstractmethod
    def delete_snapshot(self, share_id: str, snapshot_id: str) -> bool:
        """Remove the snapshot; whether it existed."""

    @operation
    @abc.abstractmethod
    def revert_to_snapshot(self, share_id: str, snapshot_id: str) -> dict[str, Any]:
        """Make the share what the snapshot holds; {share_id, snapshot_id, export_path};
        SnapshotNotFound if there is no such snapshot."""

    # -- access -------------------------------------------------------------------------
    @operation(idempotent=True)
    @abc.abstractmethod
    def update_access(self, share_id: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        """Export the share to exactly `rules` (none: not exported); {share_id, exports}."""

    @operation(idempotent=True)
    @abc.abstractmethod
    def ensure_share(
        self, share_id: str, size_gb: int, rules: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """At start: repair what can be (exports); {share_id, repaired, export_path};
        ShareBroken if the share itself is gone."""
