"""LocalShareDriver on a real directory, and FakeShareDriver, both through the harness.

Every call goes over the wire (inproc://), so the errors checked here are the
types a client rebuilds from their registration, with their data.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from actors import DriverNotReady, ManagerActor, rpc
from share_service.drivers.fake import FakeShareDriver, set_used_bytes
from share_service.drivers.local import LocalShareDriver
from share_service.errors import (
    InvalidAccessRule,
    ShareBroken,
    ShareNotFoundOnHost,
    ShareTooSmall,
    SnapshotNotFound,
    UnsafeShareId,
    UnsafeSnapshotId,
)

GIB = 1024**3
OPTS = "sync,no_subtree_check"


class ShareProbe(ManagerActor):
    """Test-only manager: each RPC forwards to the driver operation of the same name."""

    @rpc
    def create_share(self, share_id: str, size_gb: int) -> Any:
        return self.driver.create_share(share_id, size_gb)

    @rpc
    def delete_share(self, share_id: str) -> Any:
        return self.driver.delete_share(share_id)

    @rpc
    def extend_share(self, share_id: str, new_size_gb: int) -> Any:
        return self.driver.extend_share(share_id, new_size_gb)

    @rpc
    def shrink_share(self, share_id: str, new_size_gb: int) -> Any:
        return self.driver.shrink_share(share_id, new_size_gb)

    @rpc
    def get_usage(self, share_id: str) -> Any:
        return self.driver.get_usage(share_id)

    @rpc
    def create_snapshot(self, share_id: str, snapshot_id: str) -> Any:
        return self.driver.create_snapshot(share_id, snapshot_id)

    @rpc
    def delete_snapshot(self, share_id: str, snapshot_id: str) -> Any:
        return self.driver.delete_snapshot(share_id, snapshot_id)

    @rpc
    def revert_to_snapshot(self, share_id: str, snapshot_id: str) -> Any:
        return self.driver.revert_to_snapshot(share_id, snapshot_id)

    @rpc
    def update_access(self, share_id: str, rules: list[dict[str, Any]]) -> Any:
        return self.driver.update_access(share_id, rules)

    @rpc
    def ensure_share(self, share_id: str, size_gb: int, rules: list[dict[str, Any]]) -> Any:
        return self.driver.ensure_share(share_id, size_gb, rules)

    @rpc
    def stats(self) -> Any:
        return self.driver.get_stats()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def h(actors_service: Any, actors_runtime: str, root: Path) -> Any:
    h = actors_service(
        {"s": {"manager": ShareProbe, "driver": LocalShareDriver, "options": {"root": str(root)}}},
        host="h",
    )
    h.call("s", "stats")  # the driver's setup has finished: root is laid out
    return h


def rule(to: str, level: str = "rw") -> dict[str, str]:
    return {"access_to": to, "access_level": level}


def exports(root: Path) -> list[str]:
    return (root / "exports").read_text().splitlines()


def hidden_leftovers(root: Path) -> list[str]:
    """Hidden temporary files or directories left behind (the driver's lock file is not one)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if p != root / ".lock")


# -- setup and stats -------------------------------------------------------------------------
def test_setup_lays_out_root_and_reports_stats(h: Any, root: Path) -> None:
    stats = h.call("s", "stats")
    assert (root / "shares").is_dir() and (root / "snapshots").is_dir()
    assert (root / "exports").read_text() == ""
    assert stats["driver"] == "local"
    assert stats["snapshot_support"] is True and stats["revert_to_snapshot_support"] is True
    assert isinstance(stats["reflink"], bool)
    assert stats["total_bytes"] >= stats["free_bytes"] > 0
    assert isinstance(stats["total_capacity_gb"], float)
    assert isinstance(stats["free_capacity_gb"], float)
    assert stats["total_capacity_gb"] == pytest.approx(stats["total_bytes"] / GIB, abs=0.01)
    assert hidden_leftovers(root) == []  # the reflink probe cleaned up after itself


def test_reflink_always_needs_a_file_system_with_reflinks(
    actors_service: Any, actors_runtime: str, tmp_path: Path
) -> None:
    h = actors_service(
        {
            "auto": {"manager": ShareProbe, "driver": LocalShareDriver,
                     "options": {"root": str(tmp_path / "a")}},
            "always": {"manager": ShareProbe, "driver": LocalShareDriver,
                       "options": {"root": str(tmp_path / "b"), "reflink": "always"}},
        },
        host="h",
    )  # fmt: skip
    if h.call("auto", "stats")["reflink"]:
        h.call("always", "create_share", share_id="s1", size_gb=1)
        assert h.call("always", "create_snapshot", share_id="s1", snapshot_id="p")["size_bytes"]
    else:
        with pytest.raises(DriverNotReady, match="reflink"):
            h.call("always", "create_share", share_id="s1", size_gb=1)


# -- shares ----------------------------------------------------------------------------------
def test_create_extend_shrink_with_real_usage(h: Any, root: Path) -> None:
    share = root / "shares" / "s1"
    created = h.call("s", "create_share", share_id="s1", size_gb=1)
    assert created == {"share_id": "s1", "export_path": str(share), "size_gb": 1}
    assert share.is_dir()
    with (share / "big").open("wb") as f:
        f.truncate(2 * GIB + 1)  # sparse: `du -sb` counts its apparent size
    assert h.call("s", "create_share", share_id="s1", size_gb=1) == created  # idempotent
    assert (share / "big").exists()

    assert h.call("s", "extend_share", share_id="s1", new_size_gb=5) == {
        "share_id": "s1",
        "size_gb": 5,
    }
    used = h.call("s", "get_usage", share_id="s1")["used_bytes"]
    assert used > 2 * GIB

    with pytest.raises(ShareTooSmall) as err:
        h.call("s", "shrink_share", share_id="s1", new_size_gb=2)
    assert (err.value.share_id, err.value.used_bytes, err.value.requested_gb) == ("s1", used, 2)
    assert h.call("s", "shrink_share", share_id="s1", new_size_gb=3) == {
        "share_id": "s1",
        "size_gb": 3,
    }

    for method, args in [
        ("extend_share", {"new_size_gb": 2}),
        ("shrink_share", {"new_size_gb": 2}),
        ("get_usage", {}),
    ]:
        with pytest.raises(ShareNotFoundOnHost) as missing:
            h.call("s", method, share_id="nope", **args)
        assert missing.value.share_id == "nope"


def test_snapshot_is_a_real_copy_and_revert_restores_it(h: Any, root: Path) -> None:
    share = root / "shares" / "s1"
    h.call("s", "create_share", share_id="s1", size_gb=1)
    (share / "data.txt").write_text("v1")
    (share / "sub").mkdir()
    (share / "sub" / "nested").write_text("n1")

    snap = h.call("s", "create_snapshot", share_id="s1", snapshot_id="p1")
    snap_path = root / "snapshots" / "s1" / "p1"
    assert snap["share_id"] == "s1" and snap["snapshot_id"] == "p1"
    assert snap["path"] == str(snap_path) and snap["size_bytes"] > 0
    assert (snap_path / "data.txt").read_text() == "v1"

    (share / "data.txt").write_text("v2")
    (share / "sub" / "nested").unlink()
    (share / "added").write_text("new")
    assert (snap_path / "data.txt").read_text() == "v1"  # not shared with the share
    # idempotent: the existing snapshot is kept as it was
    assert h.call("s", "create_snapshot", share_id="s1", snapshot_id="p1")["path"] == snap["path"]
    assert (snap_path / "data.txt").read_text() == "v1"

    reverted = h.call("s", "revert_to_snapshot", share_id="s1", snapshot_id="p1")
    assert reverted["share_id"] == "s1" and reverted["snapshot_id"] == "p1"
    assert (share / "data.txt").read_text() == "v1"
    assert (share / "sub" / "nested").read_text() == "n1"
    assert not (share / "added").exists()
    assert (snap_path / "data.txt").read_text() == "v1"  # the snapshot survives
    assert hidden_leftovers(root) == []

    with pytest.raises(SnapshotNotFound) as err:
        h.call("s", "revert_to_snapshot", share_id="s1", snapshot_id="p2")
    assert (err.value.share_id, err.value.snapshot_id) == ("s1", "p2")
    with pytest.raises(ShareNotFoundOnHost):
        h.call("s", "create_snapshot", share_id="nope", snapshot_id="p1")


def test_delete_snapshot(h: Any, root: Path) -> None:
    h.call("s", "create_share", share_id="s1", size_gb=1)
    h.call("s", "create_snapshot", share_id="s1", snapshot_id="p1")
    h.call("s", "create_snapshot", share_id="s1", snapshot_id="p2")
    assert h.call("s", "delete_snapshot", share_id="s1", snapshot_id="p1") is True
    assert not (root / "snapshots" / "s1" / "p1").exists()
    assert (root / "snapshots" / "s1" / "p2").is_dir()
    assert h.call("s", "delete_snapshot", share_id="s1", snapshot_id="p1") is False
    assert h.call("s", "delete_snapshot", share_id="nope", snapshot_id="p1") is False
    assert hidden_leftovers(root) == []


def test_delete_share_removes_dir_snapshots_and_export_lines(h: Any, root: Path) -> None:
    for sid in ("s1", "s2"):
        h.call("s", "create_share", share_id=sid, size_gb=1)
        h.call("s", "update_access", share_id=sid, rules=[rule("10.0.0.1")])
    (root / "shares" / "s1" / "f").write_text("x")
    h.call("s", "create_snapshot", share_id="s1", snapshot_id="p1")

    assert h.call("s", "delete_share", share_id="s1") is True
    assert not (root / "shares" / "s1").exists()
    assert not (root / "snapshots" / "s1").exists()
    assert exports(root) == [f"{root}/shares/s2 10.0.0.1(rw,{OPTS})"]
    assert (root / "shares" / "s2").is_dir()
    assert h.call("s", "delete_share", share_id="s1") is False
    assert hidden_leftovers(root) == []


# -- access ----------------------------------------------------------------------------------
def test_update_access_rewrites_only_this_shares_line(h: Any, root: Path) -> None:
    s1, s2 = f"{root}/shares/s1", f"{root}/shares/s2"
    (root / "exports").write_text("# managed by service-actors\n")
    for sid in ("s1", "s2"):
        h.call("s", "create_share", share_id=sid, size_gb=1)
    assert h.call(
        "s", "update_access", share_id="s1", rules=[rule("10.0.0.0/24"), rule("*", "ro")]
    ) == {"share_id": "s1", "exports": 2}
    h.call("s", "update_access", share_id="s2", rules=[rule("host.example", "ro")])
    assert exports(root) == [
        "# managed by service-actors",
        f"{s1} 10.0.0.0/24(rw,{OPTS}) *(ro,{OPTS})",
        f"{s2} host.example(ro,{OPTS})",
    ]

    h.call("s", "update_access", share_id="s1", rules=[rule("192.168.1.7", "ro")])
    assert exports(root) == [
        "# managed by service-actors",
        f"{s1} 192.168.1.7(ro,{OPTS})",
        f"{s2} host.example(ro,{OPTS})",
    ]
    assert h.call("s", "update_access", share_id="s1", rules=[]) == {"share_id": "s1", "exports": 0}
    assert exports(root) == ["# managed by service-actors", f"{s2} host.example(ro,{OPTS})"]
    assert hidden_leftovers(root) == []
    with pytest.raises(ShareNotFoundOnHost):
        h.call("s", "update_access", share_id="nope", rules=[rule("*")])


@pytest.mark.parametrize(
    "bad",
    [
        rule("10.0.0.1 rw"),
        rule("10.0.0.1(rw),*"),
        rule("evil\n/ *"),
        rule("host1\n"),
        rule(""),
        rule("a,b"),
        rule("#comment"),
        rule('"quoted"'),
        rule("10.0.0.0/99"),
        rule("10.0.0.1", "rwx"),
        {"access_level": "rw"},
        {"access_to": "10.0.0.1"},
    ],
)
def test_invalid_access_rules_are_refused(h: Any, root: Path, bad: dict[str, str]) -> None:
    h.call("s", "create_share", share_id="s1", size_gb=1)
    h.call("s", "update_access", share_id="s1", rules=[rule("10.0.0.1")])
    before = exports(root)
    with pytest.raises(InvalidAccessRule) as err:
        h.call("s", "update_access", share_id="s1", rules=[rule("10.0.0.2"), bad])
    assert err.value.rule == bad and err.value.reason
    assert exports(root) == before


def test_conflicting_levels_for_one_client_are_refused(h: Any) -> None:
    h.call("s", "create_share", share_id="s1", size_gb=1)
    with pytest.raises(InvalidAccessRule):
        h.call("s", "update_access", share_id="s1", rules=[rule("*"), rule("*", "ro")])
    assert h.call("s", "update_access", share_id="s1", rules=[rule("*"), rule("*")]) == {
        "share_id": "s1",
        "exports": 1,
    }


def test_ensure_share_repairs_exports_and_reports_a_missing_dir(h: Any, root: Path) -> None:
    rules = [rule("10.0.0.0/24")]
    line = f"{root}/shares/s1 10.0.0.0/24(rw,{OPTS})"
    h.call("s", "create_share", share_id="s1", size_gb=1)
    h.call("s", "update_access", share_id="s1", rules=rules)
    ensure = {"share_id": "s1", "size_gb": 1, "rules": rules}
    path = f"{root}/shares/s1"
    assert h.call("s", "ensure_share", **ensure) == {
        "share_id": "s1",
        "repaired": [],
        "export_path": path,
    }

    (root / "exports").write_text("")  # the line was lost
    assert h.call("s", "ensure_share", **ensure)["repaired"] == ["exports"]
    assert exports(root) == [line]

    (root / "exports").write_text(f"{root}/shares/s1 *(rw,{OPTS})\n{line}\n")  # wrong + dup
    assert h.call("s", "ensure_share", **ensure)["repaired"] == ["exports"]
    assert exports(root) == [line]
    assert h.call("s", "ensure_share", **ensure)["repaired"] == []

    (root / "shares" / "s1").rmdir()
    with pytest.raises(ShareBroken) as err:
        h.call("s", "ensure_share", **ensure)
    assert err.value.share_id == "s1" and "missing" in err.value.reason


# -- path safety -----------------------------------------------------------------------------
UNSAFE = ["../x", "/etc", "a/b", ".hidden", "", "..", ".", "a b", "x" * 65, "-lead", "a\nb", "ab\n"]


@pytest.mark.parametrize("bad", UNSAFE)
def test_unsafe_share_ids_are_refused(h: Any, root: Path, tmp_path: Path, bad: str) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    for method, args in [
        ("create_share", {"size_gb": 1}),
        ("delete_share", {}),
        ("get_usage", {}),
        ("create_snapshot", {"snapshot_id": "p1"}),
        ("update_access", {"rules": []}),
        ("ensure_share", {"size_gb": 1, "rules": []}),
    ]:
        with pytest.raises(UnsafeShareId) as err:
            h.call("s", method, share_id=bad, **args)
        assert err.value.share_id == bad
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert list((root / "shares").iterdir()) == []


@pytest.mark.parametrize("bad", UNSAFE)
def test_unsafe_snapshot_ids_are_refused(h: Any, root: Path, bad: str) -> None:
    h.call("s", "create_share", share_id="s1", size_gb=1)
    for method in ("create_snapshot", "delete_snapshot", "revert_to_snapshot"):
        with pytest.raises(UnsafeSnapshotId) as err:
            h.call("s", method, share_id="s1", snapshot_id=bad)
        assert err.value.snapshot_id == bad
    assert list((root / "snapshots").rglob("*")) in ([], [root / "snapshots" / "s1"])


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    target = tmp_path / "outside"
    target.mkdir()
    (target / "precious").write_text("keep me")
    return target


def test_a_symlinked_share_is_never_followed(h: Any, root: Path, outside: Path) -> None:
    (root / "shares" / "evil").symlink_to(outside)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("delete_share", {}),
        ("create_snapshot", {"snapshot_id": "p1"}),
        ("revert_to_snapshot", {"snapshot_id": "p1"}),
        ("get_usage", {}),
        ("create_share", {"size_gb": 1}),
        ("update_access", {"rules": [rule("*")]}),
        ("ensure_share", {"size_gb": 1, "rules": []}),
    ]
    for method, args in calls:
        with pytest.raises(UnsafeShareId, match="symbolic link"):
            h.call("s", method, share_id="evil", **args)
    assert sorted(p.name for p in outside.iterdir()) == ["precious"]
    assert (outside / "precious").read_text() == "keep me"
    assert (root / "shares" / "evil").is_symlink()
    assert not (root / "snapshots" / "evil").exists()
    assert exports(root) == []


def test_symlinked_snapshots_are_never_followed(h: Any, root: Path, outside: Path) -> None:
    h.call("s", "create_share", share_id="s1", size_gb=1)
    (root / "shares" / "s1" / "mine").write_text("mine")
    (root / "snapshots" / "s1").mkdir()
    (root / "snapshots" / "s1" / "p1").symlink_to(outside)
    for method in ("delete_snapshot", "revert_to_snapshot", "create_snapshot"):
        with pytest.raises(UnsafeSnapshotId, match="symbolic link"):
            h.call("s", method, share_id="s1", snapshot_id="p1")
    assert (root / "shares" / "s1" / "mine").read_text() == "mine"

    # the whole snapshot directory of a share planted as a symlink
    (root / "snapshots" / "s1" / "p1").unlink()
    (root / "snapshots" / "s1").rmdir()
    (root / "snapshots" / "s1").symlink_to(outside)
    for method, args in [
        ("delete_share", {}),
        ("create_snapshot", {"snapshot_id": "p2"}),
        ("delete_snapshot", {"snapshot_id": "precious"}),
    ]:
        with pytest.raises(UnsafeShareId, match="symbolic link"):
            h.call("s", method, share_id="s1", **args)
    assert (root / "shares" / "s1" / "mine").read_text() == "mine"  # nothing removed first
    assert sorted(p.name for p in outside.iterdir()) == ["precious"]
    assert (outside / "precious").read_text() == "keep me"


def test_setup_undoes_an_interrupted_revert(
    actors_service: Any, actors_runtime: str, root: Path
) -> None:
    # A crash between the two renames of a revert: the share is at .old.<id>.<token>.
    (root / "shares" / ".old.s1.abc").mkdir(parents=True)
    (root / "shares" / ".old.s1.abc" / "data").write_text("before")
    (root / "shares" / ".revert.s1.abc").mkdir()
    (root / "snapshots" / "s1" / ".tmp.p1.abc").mkdir(parents=True)
    h = actors_service(
        {"s": {"manager": ShareProbe, "driver": LocalShareDriver, "options": {"root": str(root)}}},
        host="h",
    )
    assert h.call("s", "get_usage", share_id="s1")["used_bytes"] > 0  # once setup is done
    assert (root / "shares" / "s1" / "data").read_text() == "before"
    assert hidden_leftovers(root) == []


def test_a_leftover_that_cannot_be_removed_does_not_stop_setup(
    actors_service: Any, actors_runtime: str, root: Path, monkeypatch: Any, caplog: Any
) -> None:
    # rm fails on what a failed delete left (an immutable file, a mount point
    # inside, EIO): logged, and the backend's other shares are served.
    from actors.errors import ProcessExecutionError

    stuck = root / "shares" / ".deleting.s9.abc"
    (stuck / "pinned").mkdir(parents=True)
    removable = root / "shares" / ".revert.s1.abc"
    removable.mkdir()
    remove = LocalShareDriver._remove

    def refuse_pinned(self: LocalShareDriver, path: Path) -> None:
        if path == stuck:
            raise ProcessExecutionError(["rm"], 1, "", "rm: cannot remove: Operation not permitted")
        remove(self, path)

    monkeypatch.setattr(LocalShareDriver, "_remove", refuse_pinned)
    h = actors_service(
        {"s": {"manager": ShareProbe, "driver": LocalShareDriver, "options": {"root": str(root)}}},
        host="h",
    )
    assert h.call("s", "create_share", share_id="s2", size_gb=1)["share_id"] == "s2"
    assert stuck.is_dir() and not removable.exists()
    assert any("cannot remove leftover" in r.getMessage() for r in caplog.records)


# -- FakeShareDriver -------------------------------------------------------------------------
@pytest.fixture
def both(actors_service: Any, actors_runtime: str, root: Path) -> Any:
    return actors_service(
        {
            "local": {"manager": ShareProbe, "driver": LocalShareDriver,
                      "options": {"root": str(root)}},
            "fake": {"manager": ShareProbe, "driver": FakeShareDriver},
        },
        host="h",
    )  # fmt: skip


def test_the_fake_returns_what_the_local_driver_returns(both: Any) -> None:
    script: list[tuple[str, dict[str, Any]]] = [
        ("create_share", {"share_id": "s1", "size_gb": 2}),
        ("extend_share", {"share_id": "s1", "new_size_gb": 3}),
        ("shrink_share", {"share_id": "s1", "new_size_gb": 2}),
        ("get_usage", {"share_id": "s1"}),
        ("create_snapshot", {"share_id": "s1", "snapshot_id": "p1"}),
        ("revert_to_snapshot", {"share_id": "s1", "snapshot_id": "p1"}),
        ("update_access", {"share_id": "s1", "rules": [rule("*")]}),
        ("ensure_share", {"share_id": "s1", "size_gb": 2, "rules": [rule("*")]}),
        ("delete_snapshot", {"share_id": "s1", "snapshot_id": "p1"}),
        ("delete_share", {"share_id": "s1"}),
        ("delete_share", {"share_id": "s1"}),
        ("stats", {}),
    ]
    for method, args in script:
        local, fake = both.call("local", method, **args), both.call("fake", method, **args)
        if isinstance(local, dict):
            assert sorted(fake) == sorted(local), method
            assert {k: type(v) for k, v in fake.items() if k != "driver"} == {
                k: type(v) for k, v in local.items() if k != "driver"
            }, method
        else:
            assert fake == local, method
    assert both.call("fake", "create_share", share_id="s1", size_gb=1)["export_path"] == (
        "/fake/fake/s1"
    )
    for backend in ("local", "fake"):
        with pytest.raises(UnsafeShareId):
            both.call(backend, "create_share", share_id="../x", size_gb=1)
        with pytest.raises(ShareBroken):
            both.call(backend, "ensure_share", share_id="gone", size_gb=1, rules=[])
        with pytest.raises(InvalidAccessRule):
            both.call(backend, "update_access", share_id="s1", rules=[rule("a b")])


def test_the_fake_is_programmable(both: Any) -> None:
    fake = both.fake("fake")
    both.call("fake", "create_share", share_id="s1", size_gb=5)
    set_used_bytes(fake, "s1", 3 * GIB)
    assert both.call("fake", "get_usage", share_id="s1") == {
        "share_id": "s1",
        "used_bytes": 3 * GIB,
    }
    with pytest.raises(ShareTooSmall) as err:
        both.call("fake", "shrink_share", share_id="s1", new_size_gb=2)
    assert err.value.used_bytes == 3 * GIB

    snap = both.call("fake", "create_snapshot", share_id="s1", snapshot_id="p1")
    assert snap["size_bytes"] == 3 * GIB
    set_used_bytes(fake, "s1", 1)
    both.call("fake", "revert_to_snapshot", share_id="s1", snapshot_id="p1")
    assert both.call("fake", "get_usage", share_id="s1")["used_bytes"] == 3 * GIB

    fake.delay("create_snapshot", 0.3)
    started = time.monotonic()
    both.call("fake", "create_snapshot", share_id="s1", snapshot_id="p2")
    assert time.monotonic() - started >= 0.3

    fake.fail("delete_share", ShareBroken("s1", "disk gone"))
    with pytest.raises(ShareBroken, match="disk gone"):
        both.call("fake", "delete_share", share_id="s1")
    assert "s1" in fake.resources  # the failure happened before the body

    both.call("fake", "update_access", share_id="s1", rules=[rule("10.0.0.1")])
    fake.resources["s1"]["exports"] = []  # staged: the export line was lost
    ensure = {"share_id": "s1", "size_gb": 5, "rules": [rule("10.0.0.1")]}
    assert both.call("fake", "ensure_share", **ensure)["repaired"] == ["exports"]
    assert both.call("fake", "ensure_share", **ensure)["repaired"] == []
    assert fake.ops()[-3:] == ["update_access", "ensure_share", "ensure_share"]

    # state outlives a driver restart, like a host's
    both.crash("h@fake/driver")
    both.wait_running("h@fake/driver")
    assert both.call("fake", "get_usage", share_id="s1")["used_bytes"] == 3 * GIB
