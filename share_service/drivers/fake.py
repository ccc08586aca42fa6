"""`FakeShareDriver`: the share operations of `LocalShareDriver`, in memory.

For tests of share managers, ours and our users': same operations, same
arguments, same return shapes and same errors as
`share_service.drivers.local.LocalShareDriver`, with no files touched. Every
operation runs through `FakeDriver._run`, so the backend's `FakeController`
programs it (`delay`, `fail`, `hang`/`release`, `fail_setup`) and records it
(`calls`, `ops()`, `max_in_flight`).

State lives in the controller's `resources`, which outlives driver restarts
like host state would: `resources[share_id]` is a dict with `share_id`,
`size_gb`, `used_bytes` (0 when created), `exports` (the `(client, level)`
pairs currently exported) and `snapshots` (snapshot id -> its `used_bytes`).
Tests may edit it to stage host conditions::

    from share_service.drivers.fake import FakeShareDriver, set_used_bytes

    def test_shrink_below_usage(actors_service):
        h = actors_service({"shares": {"manager": ShareManager, "driver": FakeShareDriver}})
        fake = h.fake("shares")                  # the FakeController of this backend
        h.call("shares", "create_share", share_id="s1", size_gb=10)
        set_used_bytes(fake, "s1", 3 * 1024**3)  # what `du` would report
        fake.delay("create_snapshot", 0.5)       # slow snapshots
        fake.fail("delete_share", OSError("disk gone"))
        fake.resources["s1"]["exports"] = []     # the export line vanished
        del fake.resources["s1"]                 # the share's directory vanished

Its options accept (and ignore) LocalShareDriver's `root` and `reflink`, so a
configuration can switch between the two drivers without other changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from actors.drivers.fake import FakeController, FakeDriver, FakeDriverOptions
from share_service.checks import (
    GIB,
    check_share_id,
    check_size,
    check_snapshot_id,
    normalize_rules,
)
from share_service.drivers.base import ShareDriver
from share_service.errors import (
    ShareBroken,
    ShareNotFoundOnHost,
    ShareTooSmall,
    SnapshotNotFound,
)

__all__ = ["FakeShareDriver", "FakeShareOptions", "set_used_bytes"]


def set_used_bytes(controller: FakeController, share_id: str, used_bytes: int) -> None:
    """Make `get_usage` (and shrink checks, snapshots) see `used_bytes` for a share."""
    controller.resources[share_id]["used_bytes"] = int(used_bytes)


class FakeShareOptions(FakeDriverOptions):
    """`capacity` is the backend's size in GiB; `root` and `reflink` are ignored."""

    root: Path | None = None
    reflink: Literal["auto", "always", "never"] = "auto"


class FakeShareDriver(FakeDriver, ShareDriver):
    """In-memory shares, snapshots and exports; see the module docstring."""

    Options = FakeShareOptions
    options: FakeShareOptions

    def get_stats(self) -> dict[str, Any]:
        total = self.options.capacity * GIB
        used = sum(
            share.get("size_gb", 0) * GIB
            for share in self.controller.resources.values()
            if "share_id" in share
        )
        free = max(0, total - used)
        return {
            "driver": "fake_share",
            "total_bytes": total,
            "free_bytes": free,
            "total_capacity_gb": float(self.options.capacity),
            "free_capacity_gb": round(free / GIB, 2),
            "snapshot_support": True,
            "revert_to_snapshot_support": True,
            "reflink": False,
        }

    def _export_path(self, share_id: str) -> str:
        return f"/fake/{self.backend}/{share_id}"

    def _share(self, share_id: str) -> dict[str, Any]:
        check_share_id(share_id)
        share = self.controller.resources.get(share_id)
        if share is None:
            raise ShareNotFoundOnHost(share_id)
        return share

    def _check_size(self, op: str, size_gb: int) -> None:
        check_size(self.name, op, size_gb)

    # -- shares ---------------------------------------------------------------------------
    def create_share(self, share_id: str, size_gb: int) -> dict[str, Any]:
        def body() -> dict[str, Any]:
            check_share_id(share_id)
            self._check_size("create_share", size_gb)
            resources = self.controller.resources
            share = resources.setdefault(
                share_id,
                {"share_id": share_id, "used_bytes": 0, "exports": [], "snapshots": {}},
            )
            share["size_gb"] = size_gb
            share["size"] = size_gb  # what FakeDriver's own bookkeeping reads
            return {
                "share_id": share_id,
                "export_path": self._export_path(share_id),
                "size_gb": size_gb,
            }

        return self._run("create_share", (share_id, size_gb), body)  # type: ignore[no-any-return]

    def delete_share(self, share_id: str) -> bool:
        def body() -> bool:
            check_share_id(share_id)
            return self.controller.resources.pop(share_id, None) is not None

        return self._run("delete_share", (share_id,), body)  # type: ignore[no-any-return]

    def extend_share(self, share_id: str, new_size_gb: int) -> dict[str, Any]:
        def body() -> dict[str, Any]:
            self._check_size("extend_share", new_size_gb)
            share = self._share(share_id)
            share["size_gb"] = share["size"] = new_size_gb
            return {"share_id": share_id, "size_gb": new_size_gb}

        return self._run("extend_share", (share_id, new_size_gb), body)  # type: ignore[no-any-return]

    def shrink_share(self, share_id: str, new_size_gb: int) -> dict[str, Any]:
        def body() -> dict[str, Any]:
            self._check_size("shrink_share", new_size_gb)
            share = self._share(share_id)
            if share["used_bytes"] > new_size_gb * GIB:
                raise ShareTooSmall(share_id, share["used_bytes"], new_size_gb)
            share["size_gb"] = share["size"] = new_size_gb
            return {"share_id": share_id, "size_gb": new_size_gb}

        return self._run("shrink_share", (share_id, new_size_gb), body)  # type: ignore[no-any-return]

    def get_usage(self, share_id: str) -> dict[str, Any]:
        def body() -> dict[str, Any]:
            return {"share_id": share_id, "used_bytes": self._share(share_id)["used_bytes"]}

        return self._run("get_usage", (share_id,), body)  # type: ignore[no-any-return]

    # -- snapshots ------------------------------------------------------------------------
    def create_snapshot(self, share_id: str, snapshot_id: str) -> dict[str, Any]:
        def body() -> dict[str, Any]:
            share = self._share(share_id)
            check_snapshot_id(snapshot_id)
            size = share["snapshots"].setdefault(snapshot_id, share["used_bytes"])
            return {
                "share_id": share_id,
                "snapshot_id": snapshot_id,
                "path": f"/fake/{self.backend}/snapshots/{share_id}/{snapshot_id}",
                "size_bytes": size,
            }

        return self._run("create_snapshot", (share_id, snapshot_id), body)  # type: ignore[no-any-return]

    def delete_snapshot(self, share_id: str, snapshot_id: str) -> bool:
        def body() -> bool:
            check_share_id(share_id)
            check_snapshot_id(snapshot_id)
            share = self.controller.resources.get(share_id)
            if share is None:
                return False
            return share["snapshots"].pop(snapshot_id, None) is not None

        return self._run("delete_snapshot", (share_id, snapshot_id), body)  # type: ignore[no-any-return]

    def revert_to_snapshot(self, share_id: str, snapshot_id: str) -> dict[str, Any]:
        def body() -> dict[str, Any]:
            share = self._share(share_id)
            check_snapshot_id(snapshot_id)
            if snapshot_id not in share["snapshots"]:
                raise SnapshotNotFound(share_id, snapshot_id)
            share["used_bytes"] = share["snapshots"][snapshot_id]
            return {
                "share_id": share_id,
                "snapshot_id": snapshot_id,
                "export_path": self._export_path(share_id),
            }

        return self._run("revert_to_snapshot", (share_id, snapshot_id), body)  # type: ignore[no-any-return]

    # -- access ---------------------------------------------------------------------------
    def update_access(self, share_id: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        def body() -> dict[str, Any]:
            check_share_id(share_id)
            clients = normalize_rules(rules)
            share = self.controller.resources.get(share_id)
            if share is None:
                if clients:
                    raise ShareNotFoundOnHost(share_id)
            else:
                share["exports"] = clients
            return {"share_id": share_id, "exports": len(clients)}

        return self._run("update_access", (share_id, rules), body)  # type: ignore[no-any-return]

    def ensure_share(
        self, share_id: str, size_gb: int, rules: list[dict[str, Any]]
    ) -> dict[str, Any]:
        def body() -> dict[str, Any]:
            check_share_id(share_id)
            self._check_size("ensure_share", size_gb)
            clients = normalize_rules(rules)
            share = self.controller.resources.get(share_id)
            if share is None:
                raise ShareBroken(share_id, "its directory is missing")
            repaired: list[str] = []
            if [tuple(pair) for pair in share["exports"]] != clients:
                share["exports"] = clients
                repaired.append("exports")
            return {
                "share_id": share_id,
                "repaired": repaired,
                "export_path": self._export_path(share_id),
            }

        return self._run("ensure_share", (share_id, size_gb, rules), body)  # type: ignore[no-any-return]
