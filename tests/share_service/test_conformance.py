"""The share driver contract, run against every share driver we have.

LocalShareDriver and FakeShareDriver are DriverActors; `PlainShareDriver` is a
share driver written as a plain class (it implements the `ShareDriver` ABC and
nothing of the framework): the framework wraps it, and the same contract holds.
"""

from __future__ import annotations

from typing import Any

import pytest

from actors.errors import InvalidArguments
from share_service.drivers.base import ShareDriver
from share_service.drivers.fake import FakeShareDriver
from share_service.drivers.local import LocalShareDriver
from share_service.errors import (
    InvalidAccessRule,
    ShareBroken,
    ShareNotFoundOnHost,
    SnapshotNotFound,
    UnsafeShareId,
    UnsafeSnapshotId,
)
from share_service.ids import is_safe_id
from share_service.testing import ShareDriverContract

GIB = 1024**3


class PlainShareDriver(ShareDriver):
    """Shares in a dict: a plain class, no actor in sight."""

    def __init__(self, capacity_gb: int = 100) -> None:
        self.capacity_gb = capacity_gb
        self.shares: dict[str, dict[str, Any]] = {}
        self.setups = 0

    def do_setup(self) -> None:
        self.setups += 1

    def get_stats(self) -> dict[str, Any]:
        used = sum(share["size_gb"] for share in self.shares.values())
        return {
            "total_capacity_gb": float(self.capacity_gb),
            "free_capacity_gb": float(self.capacity_gb - used),
            "snapshot_support": True,
            "revert_to_snapshot_support": True,
        }

    def _id(self, share_id: Any) -> str:
        if not is_safe_id(share_id):
            raise UnsafeShareId(str(share_id))
        return share_id

    def _size(self, op: str, size_gb: Any) -> int:
        if isinstance(size_gb, bool) or not isinstance(size_gb, int) or size_gb <= 0:
            raise InvalidArguments("plain", op, f"size must be a positive integer: {size_gb!r}")
        return size_gb

    def _share(self, share_id: str) -> dict[str, Any]:
        share = self.shares.get(self._id(share_id))
        if share is None:
            raise ShareNotFoundOnHost(share_id)
        return share

    def _rules(self, rules: list[Any]) -> list[tuple[str, str]]:
        clients = []
        for rule in rules:
            if not isinstance(rule, dict):
                raise InvalidAccessRule(repr(rule), "not a map")
            client, level = rule.get("access_to"), rule.get("access_level")
            if not isinstance(client, str) or not client or "(" in client:
                raise InvalidAccessRule(rule, "bad access_to")
            if level not in ("rw", "ro"):
                raise InvalidAccessRule(rule, "bad access_level")
            clients.append((client, level))
        return clients

    def create_share(self, share_id: str, size_gb: int) -> dict[str, Any]:
        self._id(share_id)
        size = self._size("create_share", size_gb)
        share = self.shares.setdefault(share_id, {"snapshots": set(), "exports": []})
        share["size_gb"] = size
        return {"share_id": share_id, "export_path": f"/plain/{share_id}", "size_gb": size}

    def delete_share(self, share_id: str) -> bool:
        return self.shares.pop(self._id(share_id), None) is not None

    def extend_share(self, share_id: str, new_size_gb: int) -> dict[str, Any]:
        size = self._size("extend_share", new_size_gb)
        self._share(share_id)["size_gb"] = size
        return {"share_id": share_id, "size_gb": size}

    def shrink_share(self, share_id: str, new_size_gb: int) -> dict[str, Any]:
        return self.extend_share(share_id, new_size_gb)  # nothing is ever written here

    def get_usage(self, share_id: str) -> dict[str, Any]:
        self._share(share_id)
        return {"share_id": share_id, "used_bytes": 0}

    def create_snapshot(self, share_id: str, snapshot_id: str) -> dict[str, Any]:
        share = self._share(share_id)
        if not is_safe_id(snapshot_id):
            raise UnsafeSnapshotId(str(snapshot_id))
        share["snapshots"].add(snapshot_id)
        path = f"/plain/snapshots/{share_id}/{snapshot_id}"
        return {"share_id": share_id, "snapshot_id": snapshot_id, "path": path, "size_bytes": 0}

    def delete_snapshot(self, share_id: str, snapshot_id: str) -> bool:
        share = self.shares.get(self._id(share_id))
        if share is None or snapshot_id not in share["snapshots"]:
            return False
        share["snapshots"].discard(snapshot_id)
        return True

    def revert_to_snapshot(self, share_id: str, snapshot_id: str) -> dict[str, Any]:
        if snapshot_id not in self._share(share_id)["snapshots"]:
            raise SnapshotNotFound(share_id, snapshot_id)
        return {
            "share_id": share_id,
            "snapshot_id": snapshot_id,
            "export_path": f"/plain/{share_id}",
        }

    def update_access(self, share_id: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        clients = self._rules(rules)
        share = self.shares.get(self._id(share_id))
        if share is None and clients:
            raise ShareNotFoundOnHost(share_id)
        if share is not None:
            share["exports"] = clients
        return {"share_id": share_id, "exports": len(clients)}

    def ensure_share(
        self, share_id: str, size_gb: int, rules: list[dict[str, Any]]
    ) -> dict[str, Any]:
        clients = self._rules(rules)
        share = self.shares.get(self._id(share_id))
        if share is None:
            raise ShareBroken(share_id, "it is gone")
        repaired = [] if share["exports"] == clients else ["exports"]
        share["exports"] = clients
        return {"share_id": share_id, "repaired": repaired, "export_path": f"/plain/{share_id}"}


class TestLocalShareDriver(ShareDriverContract):
    driver = LocalShareDriver

    @pytest.fixture
    def driver_options(self, tmp_path: Any) -> dict[str, Any]:
        return {"root": str(tmp_path / "shares")}


class TestFakeShareDriver(ShareDriverContract):
    driver = "share_service.drivers.fake:FakeShareDriver"  # an import path works too


class TestPlainShareDriver(ShareDriverContract):
    driver = PlainShareDriver

    @pytest.fixture
    def driver_options(self) -> dict[str, Any]:
        return {"capacity_gb": 10}  # its constructor's keyword arguments


def test_the_fake_is_the_fake_share_driver() -> None:
    assert FakeShareDriver.operations.keys() >= LocalShareDriver.operations.keys()
