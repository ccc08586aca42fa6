"""The reference share service: ShareManager over the real LocalShareDriver."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from actors import InvalidArguments, OperationInterrupted
from actors.drivers.fake import FakeController
from actors.testing import ServiceHarness, wait_until
from share_service.errors import (
    InvalidAccessRule,
    QuotaExceeded,
    ShareExists,
    ShareNotAvailable,
    ShareNotFound,
    SnapshotNotKnown,
)

MANAGER = "share_service.manager:ShareManager"
LOCAL = "share_service.drivers.local:LocalShareDriver"


def _start(actors_service: Any, root: Path, state: Path, quota: int | None = 10) -> ServiceHarness:
    backend = {
        "manager": MANAGER,
        "driver": LOCAL,
        "options": {"root": str(root)},
        "manager_options": {"quota_gb": quota} if quota else {},
    }
    return actors_service({"local": backend}, host="h", state_dir=state)  # type: ignore[no-any-return]


@pytest.fixture
def shares(actors_service, actors_runtime, tmp_path) -> ServiceHarness:
    return _start(actors_service, tmp_path / "root", tmp_path / "state")


def _exports(root: Path) -> list[str]:
    return [line for line in (root / "exports").read_text().splitlines() if line.strip()]


def test_create_get_and_list_shares(shares, tmp_path):
    made = shares.call("local", "create_share", share_id="s1", size_gb=2, name="first")
    assert made["state"] == "available" and made["size_gb"] == 2 and made["name"] == "first"
    assert Path(made["export_path"]).is_dir()
    assert Path(made["export_path"]).parent == (tmp_path / "root" / "shares").resolve()
    got = shares.call("local", "get_share", share_id="s1")
    assert got["id"] == "s1" and got["snapshots"] == [] and got["access_rules"] == []
    shares.call("local", "create_share", share_id="s2", size_gb=1)
    listed = shares.call("local", "list_shares")
    assert listed["count"] == 2 and [s["id"] for s in listed["shares"]] == ["s1", "s2"]


def test_bad_requests_are_refused_with_clear_errors(shares):
    shares.call("local", "create_share", share_id="s1", size_gb=1)
    with pytest.raises(ShareExists):
        shares.call("local", "create_share", share_id="s1", size_gb=1)
    with pytest.raises(InvalidArguments, match="positive"):
        shares.call("local", "create_share", share_id="s2", size_gb=0)
    for unsafe in ("../escape", "/etc", "a/b", ".hidden", ""):
        with pytest.raises(InvalidArguments):
            shares.call("local", "create_share", share_id=unsafe, size_gb=1)
    with pytest.raises(ShareNotFound):
        shares.call("local", "get_share", share_id="nope")
    with pytest.raises(ShareNotFound):
        shares.call("local", "extend_share", share_id="nope", new_size_gb=3)
    with pytest.raises(InvalidArguments, match="exceed"):
        shares.call("local", "extend_share", share_id="s1", new_size_gb=1)


def test_list_shares_pages_by_marker(fake_shares, monkeypatch):
    import share_service.manager as share_module

    h = fake_shares
    for i in range(5):
        h.call("fake", "create_share", share_id=f"s{i}", size_gb=1)
    seen: list[str] = []
    marker = None
    while True:
        page = h.call("fake", "list_shares", limit=2, marker=marker)
        seen += [s["id"] for s in page["shares"]]
        assert page["count"] == len(page["shares"]) <= 2
        marker = page["next"]
        if marker is None:
            break
    assert seen == [f"s{i}" for i in range(5)]
    assert h.call("fake", "list_shares")["next"] is None  # one page of up to 1000
    monkeypatch.setattr(share_module, "PAGE_BYTES", 1)  # a size budget cuts a page short
    small = h.call("fake", "list_shares")
    assert [s["id"] for s in small["shares"]] == ["s0"] and small["next"] == "s0"
    with pytest.raises(InvalidArguments, match="limit"):
        h.call("fake", "list_shares", limit=1001)
    with pytest.raises(InvalidArguments, match="marker"):
        h.call("fake", "list_shares", marker="../x")


def test_inputs_that_every_listing_would_carry_are_bounded(fake_shares, monkeypatch):
    """A huge name or rule, or endless rules, would make list_shares too large to send."""
    import share_service.manager as share_module

    h = fake_shares
    with pytest.raises(InvalidArguments, match="at most 255"):
        h.call("fake", "create_share", share_id="s1", size_gb=1, name="n" * 256)
    with pytest.raises(InvalidArguments, match=r"characters\)") as caught:
        h.call("fake", "create_share", share_id="x" * 100_000, size_gb=1)
    assert len(str(caught.value)) < 400  # the bad id is not echoed whole
    h.call("fake", "create_share", share_id="s1", size_gb=1, name="n" * 255)
    with pytest.raises(InvalidArguments, match="access_to"):
        h.call("fake", "allow_access", share_id="s1", rule={"access_to": "a" * 256})
    monkeypatch.setattr(share_module, "MAX_ACCESS_RULES", 2)
    for client in ("10.0.0.1", "10.0.0.2"):
        h.call("fake", "allow_access", share_id="s1", rule={"access_to": client})
    with pytest.raises(InvalidArguments, match="at most 2 rules"):
        h.call("fake", "allow_access", share_id="s1", rule={"access_to": "10.0.0.3"})
    share = h.call("fake", "get_share", share_id="s1")
    assert share["state"] == "available"  # refused before anything changed, and back
    assert [r["access_to"] for r in share["access_rules"]] == ["10.0.0.1", "10.0.0.2"]
    # A client no exports file can take is refused before the share changes at
    # all, with the drivers' own error: the driver never sees it.
    fake = FakeController.for_backend("h@fake")
    before = fake.ops().count("update_access")
    for client in ("a b", "10.0.0.0/99", "x(rw)"):
        with pytest.raises(InvalidAccessRule):
            h.call("fake", "allow_access", share_id="s1", rule={"access_to": client})
    assert fake.ops().count("update_access") == before
    assert h.call("fake", "get_share", share_id="s1")["updated_at"] == share["updated_at"]
    h.call("fake", "allow_access", share_id="s1", rule={"access_to": "10.0.0.2"})  # a change


def test_the_backend_quota_holds_for_create_and_extend(shares):
    shares.call("local", "create_share", share_id="s1", size_gb=6)
    with pytest.raises(QuotaExceeded) as caught:
        shares.call("local", "create_share", share_id="s2", size_gb=5)
    assert caught.value.quota_gb == 10 and caught.value.used_gb == 6
    with pytest.raises(QuotaExceeded):
        shares.call("local", "extend_share", share_id="s1", new_size_gb=11)
    assert shares.call("local", "extend_share", share_id="s1", new_size_gb=10)["size_gb"] == 10
    assert shares.call("local", "get_share", share_id="s1")["state"] == "available"
    caps = shares.call("local", "get_capabilities")
    assert caps["quota_gb"] == 10 and caps["allocated_gb"] == 10 and caps["driver"] == "local"
    assert caps["snapshot_support"] is True and caps["free_bytes"] > 0


def test_shrink_is_refused_below_the_space_the_data_uses(shares):
    made = shares.call("local", "create_share", share_id="s1", size_gb=4)
    with open(Path(made["export_path"]) / "big", "wb") as f:
        f.truncate(2 * 1024**3 + 1)  # 2 GiB and a byte (sparse: costs no disk)
    from share_service.errors import ShareTooSmall

    with pytest.raises(ShareTooSmall):
        shares.call("local", "shrink_share", share_id="s1", new_size_gb=2)
    after = shares.call("local", "get_share", share_id="s1")
    assert (after["state"], after["size_gb"]) == ("available", 4)  # nothing changed
    assert shares.call("local", "shrink_share", share_id="s1", new_size_gb=3)["size_gb"] == 3


def test_snapshot_revert_and_delete_are_real_copies(shares):
    made = shares.call("local", "create_share", share_id="s1", size_gb=1)
    data = Path(made["export_path"]) / "data.txt"
    data.write_text("version 1\n")
    shares.call("local", "create_snapshot", share_id="s1", snapshot_id="snap1")
    data.write_text("version 2\n")
    (Path(made["export_path"]) / "new.txt").write_text("added later\n")
    snapshots = shares.call("local", "get_share", share_id="s1")["snapshots"]
    assert [(s["id"], s["state"]) for s in snapshots] == [("snap1", "available")]
    shares.call("local", "revert_to_snapshot", share_id="s1", snapshot_id="snap1")
    assert data.read_text() == "version 1\n"
    assert not (Path(made["export_path"]) / "new.txt").exists()
    with pytest.raises(SnapshotNotKnown):
        shares.call("local", "revert_to_snapshot", share_id="s1", snapshot_id="nope")
    shares.call("local", "delete_snapshot", share_id="s1", snapshot_id="snap1")
    assert shares.call("local", "get_share", share_id="s1")["snapshots"] == []


def test_a_share_in_error_cannot_be_snapshotted(shares, tmp_path):
    made = shares.call("local", "create_share", share_id="s1", size_gb=1)
    assert shares.service.registry is not None
    from share_service.store import ShareStore

    ShareStore(shares.service.registry).update("s1", state="error", reason="disk failed")
    with pytest.raises(ShareNotAvailable) as caught:
        shares.call("local", "create_snapshot", share_id="s1", snapshot_id="snap1")
    assert caught.value.state == "error"
    assert Path(made["export_path"]).is_dir()
    shares.call("local", "delete_share", share_id="s1")  # an error share can be deleted


def test_access_rules_are_written_as_exports(shares, tmp_path):
    a = shares.call("local", "create_share", share_id="a", size_gb=1)
    b = shares.call("local", "create_share", share_id="b", size_gb=1)
    shares.call("local", "allow_access", share_id="a", rule={"access_to": "10.0.0.0/24"})
    shares.call(
        "local", "allow_access", share_id="a", rule={"access_to": "db1", "access_level": "ro"}
    )
    shares.call("local", "allow_access", share_id="b", rule={"access_to": "*"})
    lines = _exports(tmp_path / "root")
    line_a = next(x for x in lines if x.startswith(a["export_path"] + " "))
    assert "10.0.0.0/24(rw," in line_a and "db1(ro," in line_a
    assert any(x.startswith(b["export_path"] + " ") for x in lines)
    shares.call("local", "deny_access", share_id="a", access_to="10.0.0.0/24")
    rules = shares.call("local", "get_share", share_id="a")["access_rules"]
    assert rules == [{"access_to": "db1", "access_level": "ro"}]
    line_a = next(x for x in _exports(tmp_path / "root") if x.startswith(a["export_path"] + " "))
    assert "10.0.0.0/24" not in line_a
    with pytest.raises(InvalidArguments):
        rule = {"access_to": "x", "access_level": "rwx"}
        shares.call("local", "allow_access", share_id="a", rule=rule)


def test_delete_share_removes_it_everywhere(shares, tmp_path):
    made = shares.call("local", "create_share", share_id="s1", size_gb=1)
    shares.call("local", "create_snapshot", share_id="s1", snapshot_id="snap1")
    shares.call("local", "allow_access", share_id="s1", rule={"access_to": "*"})
    assert shares.call("local", "delete_share", share_id="s1") == {
        "share_id": "s1",
        "deleted": True,
    }
    assert not Path(made["export_path"]).exists()
    assert not any(made["export_path"] in x for x in _exports(tmp_path / "root"))
    with pytest.raises(ShareNotFound):
        shares.call("local", "get_share", share_id="s1")


def test_ensure_share_after_a_restart_repairs_or_marks_error(actors_service, tmp_path):
    root, state = tmp_path / "root", tmp_path / "state"
    first = _start(actors_service, root, state)
    kept = first.call("local", "create_share", share_id="kept", size_gb=1)
    lost = first.call("local", "create_share", share_id="lost", size_gb=1)
    first.call("local", "allow_access", share_id="kept", rule={"access_to": "*"})
    first.stop()
    # While it was down: one share's data vanished, the exports file was emptied.
    os.rename(lost["export_path"], tmp_path / "elsewhere")
    (root / "exports").write_text("")
    second = _start(actors_service, root, state)

    def states() -> dict[str, str]:
        return {s["id"]: s["state"] for s in second.call("local", "list_shares")["shares"]}

    wait_until(  # ensure_share runs after init_host
        lambda: states().get("lost") == "error", message=lambda: f"lost in error: {states()}"
    )
    assert states() == {"kept": "available", "lost": "error"}
    assert "missing" in (second.call("local", "get_share", share_id="lost")["reason"] or "")
    assert any(x.startswith(kept["export_path"] + " ") for x in _exports(root))  # repaired


def test_a_restart_ensures_more_shares_than_the_driver_mailbox_holds(
    actors_service, actors_runtime, tmp_path, caplog
):
    # Every share's ensure_share is queued at start, before any request: past
    # the mailbox bound too. Refused as Busy, they once marked healthy shares error.
    backend = {"manager": MANAGER, "driver": LOCAL, "options": {"root": str(tmp_path / "root")}}
    backend["mailbox_capacity"] = 5
    first = actors_service({"local": backend}, host="h", state_dir=tmp_path / "state")
    for i in range(12):
        first.call("local", "create_share", share_id=f"s{i}", size_gb=1)
    first.stop()
    second = actors_service({"local": backend}, host="h", state_dir=tmp_path / "state")
    second.wait_running("h@local/driver")  # set up: it takes its mailbox from here
    second.settle()  # the driver has run what init_host queued ...
    second.settle()  # ... and the manager has handled each outcome
    assert second.run_in("local", lambda manager: manager.repairs.repaired) == 12
    assert not [r for r in caplog.records if "cannot be repaired" in r.getMessage()]
    second.call("local", "create_share", share_id="after", size_gb=1)  # room again
    listed = second.call("local", "list_shares")["shares"]
    assert {s["id"]: s["state"] for s in listed} == {
        **{f"s{i}": "available" for i in range(12)},
        "after": "available",
    }


def test_a_share_whose_new_state_cannot_be_recorded_is_not_made_twice(
    actors_service, tmp_path, monkeypatch
):
    # The driver made the share; the database then stayed away through every
    # retry of the bookkeeping. DatabaseUnavailable (retryable) would free the
    # operation's key, and a retry with it would run create_share again.
    import share_service.manager as share_module
    from actors.registry.api import DatabaseUnavailable
    from share_service.errors import ShareStateNotRecorded
    from share_service.store import ShareStore

    h = _start(actors_service, tmp_path / "root", tmp_path / "state")
    original = ShareStore.update

    def update(self: ShareStore, share_id: str, **fields: Any) -> Any:
        if fields.get("state") == "available":
            raise DatabaseUnavailable("registry", "gone for good")
        return original(self, share_id, **fields)

    monkeypatch.setattr(share_module, "_DB_ATTEMPTS", 1)
    monkeypatch.setattr(ShareStore, "update", update)
    for _ in range(2):  # the retry by key gets the same answer, and nothing runs again
        with pytest.raises(ShareStateNotRecorded, match="repaired at the next start") as info:
            h.call("local", "create_share", share_id="s1", size_gb=1, key="k-s1")
        assert not info.value.retryable
    [record] = h.service.operations.journal.list(target="h@local")
    assert record.state == "failed" and record.idempotency_key == "k-s1"
    assert h.call("local", "get_share", share_id="s1")["state"] == "creating"
    assert (tmp_path / "root" / "shares" / "s1").is_dir()
    # The next start finishes its creation: available, with the export path it never got.
    monkeypatch.undo()
    h.stop()
    again = _start(actors_service, tmp_path / "root", tmp_path / "state")

    def repaired() -> dict[str, Any] | None:
        shown = again.call("local", "get_share", share_id="s1")
        return shown if shown["state"] != "creating" else None

    shown = wait_until(repaired, message="s1 to be repaired")  # ensure_share runs after init_host
    assert (shown["state"], shown["reason"]) == ("available", None)
    assert shown["export_path"] == str(tmp_path / "root" / "shares" / "s1")


def test_a_manager_restarted_during_a_short_database_outage_waits_for_it(
    actors_service, actors_runtime, tmp_path, monkeypatch
):
    # Its init_host reads the shares: raising at once would use up the restart
    # intensity (here 1) within milliseconds and stop the whole service.
    from actors.registry.api import DatabaseUnavailable
    from share_service.store import ShareStore

    backend = {"manager": MANAGER, "driver": "share_service.drivers.fake:FakeShareDriver"}
    policy = {"max_restarts": 1, "backoff": {"initial": 0, "jitter": 0}}
    h = actors_service(
        {"fake": backend}, host="h", state_dir=tmp_path / "state", supervision=policy
    )
    h.call("fake", "create_share", share_id="s1", size_gb=1)
    original, refused = ShareStore.shares, []

    def shares(self: ShareStore, backend: str, **page: Any) -> Any:
        if len(refused) < 3:  # the database answers from the fourth read on
            refused.append(backend)
            raise DatabaseUnavailable("registry", "not yet")
        return original(self, backend, **page)

    monkeypatch.setattr(ShareStore, "shares", shares)
    h.crash("fake")
    h.wait_running("fake", timeout=20)
    assert refused == ["h@fake"] * 3 and h.service.failed is None
    assert h.call("fake", "get_share", share_id="s1")["state"] == "available"


def test_share_manager_over_the_fake_driver_records_driver_failures(actors_service, tmp_path):
    from actors.drivers.fake import FakeController
    from share_service.errors import ShareBroken

    backend = {"manager": MANAGER, "driver": "share_service.drivers.fake:FakeShareDriver"}
    h = actors_service({"fake": backend}, host="h", state_dir=tmp_path / "state")
    FakeController.for_backend("h@fake").fail("create_share", ShareBroken("s1", "disk gone"))
    with pytest.raises(ShareBroken, match="disk gone"):
        h.call("fake", "create_share", share_id="s1", size_gb=1)
    failed = h.call("fake", "get_share", share_id="s1")
    assert failed["state"] == "error" and "disk gone" in failed["reason"]
    made = h.call("fake", "create_share", share_id="s2", size_gb=1)
    assert made["state"] == "available" and made["export_path"].endswith("/s2")


@pytest.fixture
def fake_shares(actors_service, actors_runtime, tmp_path) -> ServiceHarness:
    backend = {"manager": MANAGER, "driver": "share_service.drivers.fake:FakeShareDriver"}
    return actors_service({"fake": backend}, host="h", state_dir=tmp_path / "state")  # type: ignore[no-any-return]


def test_a_driver_that_did_nothing_leaves_the_share_as_it_was(fake_shares):
    from actors import DriverNotReady
    from actors.drivers.fake import FakeController

    fake_shares.call("fake", "create_share", share_id="s1", size_gb=1)
    fake = FakeController.for_backend("h@fake")
    fake.fail("extend_share", DriverNotReady("h@fake/driver", "restarting"))
    with pytest.raises(DriverNotReady):
        fake_shares.call("fake", "extend_share", share_id="s1", new_size_gb=5)
    share = fake_shares.call("fake", "get_share", share_id="s1")
    assert (share["state"], share["size_gb"]) == ("available", 1)  # not error, not 5 GB
    fake.fail("create_share", DriverNotReady("h@fake/driver", "restarting"))
    with pytest.raises(DriverNotReady):
        fake_shares.call("fake", "create_share", share_id="s2", size_gb=1)
    with pytest.raises(ShareNotFound):  # no row left behind: the retry can create it
        fake_shares.call("fake", "get_share", share_id="s2")
    assert (
        fake_shares.call("fake", "create_share", share_id="s2", size_gb=1)["state"] == "available"
    )


def test_capabilities_count_the_backends_shares_and_their_size(fake_shares):
    empty = fake_shares.call("fake", "get_capabilities")
    assert (empty["shares"], empty["allocated_gb"]) == (0, 0)
    for share_id, size in (("s1", 1), ("s2", 3), ("s3", 5)):
        fake_shares.call("fake", "create_share", share_id=share_id, size_gb=size)
    fake_shares.call("fake", "delete_share", share_id="s3")
    caps = fake_shares.call("fake", "get_capabilities")
    assert (caps["shares"], caps["allocated_gb"], caps["backend"]) == (2, 4, "h@fake")


def test_a_driver_that_crashed_under_a_change_leaves_the_share_in_error(fake_shares):
    """Nobody knows how far a crashed step got: a delete cut off half-way must
    not put the share back to 'available' (its directory may be half gone)."""
    from actors import FatalError
    from actors.drivers.fake import FakeController

    fake_shares.call("fake", "create_share", share_id="s1", size_gb=1)
    fake = FakeController.for_backend("h@fake")
    fake.fail("delete_share", FatalError("the driver fell over"))
    with pytest.raises(OperationInterrupted):
        fake_shares.call("fake", "delete_share", share_id="s1")
    share = fake_shares.call("fake", "get_share", share_id="s1")
    assert share["state"] == "error" and "fell over" in share["reason"]
    fake_shares.wait_running("h@fake/driver")
    # The operator's (or the user's) way out: the delete, again.
    assert fake_shares.call("fake", "delete_share", share_id="s1")["deleted"] is True


@pytest.mark.parametrize(
    ("page", "window"), [(500, 32), (4, 4)], ids=["its-page-read", "its-page-to-come"]
)
def test_an_operation_resumed_after_a_crash_runs_after_its_shares_repair(
    actors_service, actors_runtime, tmp_path, monkeypatch, page, window
):
    """The repair works from the share as its page read it: run after the resumed
    operation, it would undo it. Here an allow_access cut short by a crash, on a
    share whose repair is still to come when recovery resumes it (its page read,
    or not yet): its export must survive the repair."""
    import share_service._repairs as repairs
    import share_service.manager as share_module
    from actors.drivers.fake import FakeController
    from actors.registry import Registry, sqlite_url_for
    from actors.registry.journal import Journal
    from share_service.store import ShareStore

    backend = {"manager": MANAGER, "driver": "share_service.drivers.fake:FakeShareDriver"}
    state = tmp_path / "state"
    h = actors_service({"fake": backend}, host="h", state_dir=state)
    ids = [f"s{n:02d}" for n in range(40)]  # more than the repairs' window
    for share_id in ids:
        h.call("fake", "create_share", share_id=share_id, size_gb=1)
    h.stop()
    # What a crash in the middle of allow_access on s39 leaves behind.
    rule = {"access_to": "10.0.0.9", "access_level": "rw"}
    registry = Registry(sqlite_url_for(state))
    try:
        ShareStore(registry).transition("s39", ("available",), "updating")
        with Journal(registry) as journal:
            op = journal.accept("h@fake", "allow_access", {"share_id": "s39", "rule": rule})
            cut = op.result(10)
            journal.set_state(cut.id, "running", owner="h@fake").result(10)
    finally:
        registry.close()
    monkeypatch.setattr(repairs, "PAGE", page)
    monkeypatch.setattr(share_module, "REPAIR_PAGE", page)
    monkeypatch.setattr(repairs, "WINDOW", window)
    fake = FakeController.for_backend("h@fake")
    fake.hang("ensure_share")  # the first repair holds the driver: the rest queue behind it
    # Started without settling: the driver is held, its mailbox is not the test's.
    again = actors_service({"fake": backend}, host="h", state_dir=state, start=False)
    again.service.start(timeout=10)
    driver = again.service.system.handle("h@fake/driver")
    wait_until(  # the window's other repairs, and one more for s39, wait for the driver
        lambda: driver.status()["mailbox"] >= window,
        interval=0.005,
        message="the repairs and the resumed operation to reach the driver",
    )
    fake.release()

    def finished() -> bool:
        record = again.service.operations.journal.get(cut.id)
        return record is not None and record.finished

    wait_until(finished, message="the resumed allow_access to finish")
    assert again.service.operations.journal.get(cut.id).state == "succeeded"
    wait_until(lambda: fake.ops().count("ensure_share") >= 40, message="every share to be repaired")
    share = again.call("fake", "get_share", share_id="s39")
    assert share["state"] == "available" and share["access_rules"] == [rule]
    assert fake.resources["s39"]["exports"] == [("10.0.0.9", "rw")]


def test_a_resumed_change_gives_up_on_a_driver_that_stays_unready_on_the_actors_clock(
    actors_service, actors_runtime, actors_clock, tmp_path
):
    """An extend cut short by a crash, resumed while the driver never gets ready:
    after its patience (on the clock its retries are scheduled on, virtual here)
    it ends failed, retryable, instead of waiting for ever."""
    from actors import DriverNotReady
    from actors.drivers.fake import FakeController
    from actors.registry import Registry, sqlite_url_for
    from actors.registry.journal import Journal
    from share_service.store import ShareStore

    backend = {"manager": MANAGER, "driver": "share_service.drivers.fake:FakeShareDriver"}
    state = tmp_path / "state"
    h = actors_service({"fake": backend}, host="h", state_dir=state)
    h.call("fake", "create_share", share_id="s1", size_gb=1)
    h.stop()
    registry = Registry(sqlite_url_for(state))
    try:
        ShareStore(registry).transition("s1", ("available",), "extending", size_gb=2)
        with Journal(registry) as journal:
            cut = journal.accept(
                "h@fake", "extend_share", {"share_id": "s1", "new_size_gb": 2}
            ).result(10)
            journal.set_state(cut.id, "running", owner="h@fake").result(10)
    finally:
        registry.close()
    FakeController.for_backend("h@fake").fail_setup(DriverNotReady("h@fake/driver", "no"), 10_000)
    again = actors_service(
        {"fake": backend}, host="h", state_dir=state, clock=actors_clock, report_interval=1
    )

    def record() -> Any:
        return again.service.operations.journal.get(cut.id)

    for _ in range(200):  # 200 s of the virtual clock: the patience is 60 s, twice
        if record().finished:
            break
        again.advance(1.0)
    done = record()
    assert done.state == "failed" and "not ready" in (done.reason or "")


def test_a_database_outage_after_the_driver_worked_does_not_strand_the_share(fake_shares):
    from actors.drivers.fake import FakeController

    fake = FakeController.for_backend("h@fake")
    fake.hang("create_share")
    creating = fake_shares.service.ask("fake", "create_share", {"share_id": "s1", "size_gb": 1})
    fake.wait_until(lambda f: f.in_flight == 1, fake_shares.service.system.runtime)
    with fake_shares.registry_outage():
        fake.release()  # the driver finishes while the database is away
        fake.wait_until(lambda f: f.in_flight == 0, fake_shares.service.system.runtime)
    assert creating.result(timeout=30)["state"] == "available"  # the write was retried
    assert fake_shares.call("fake", "get_share", share_id="s1")["state"] == "available"


def test_a_change_refused_by_a_full_driver_mailbox_leaves_the_share_as_it_was(
    actors_service, actors_runtime, tmp_path
):
    from actors import Busy
    from actors.drivers.fake import FakeController

    backend = {
        "manager": MANAGER,
        "driver": "share_service.drivers.fake:FakeShareDriver",
        "mailbox_capacity": 1,
    }
    h = actors_service({"fake": backend}, host="h", state_dir=tmp_path / "state")
    for share_id in ("s1", "s2", "s3"):
        h.call("fake", "create_share", share_id=share_id, size_gb=1)
    fake = FakeController.for_backend("h@fake")
    runtime = h.service.system.runtime
    fake.hang("extend_share")
    try:
        first = h.service.ask("fake", "extend_share", {"share_id": "s1", "new_size_gb": 2})
        fake.wait_until(lambda f: f.in_flight == 1, runtime)  # the driver is busy with s1
        queued = h.service.ask("fake", "extend_share", {"share_id": "s2", "new_size_gb": 2})
        driver = h.service.system.handle("h@fake/driver")
        wait_until(  # s2's change reaches the driver: slot taken
            lambda: driver.status()["mailbox"] >= 1,
            interval=0.005,
            message="the second change to reach the driver",
        )
        with pytest.raises(Busy):
            h.call("fake", "extend_share", share_id="s3", new_size_gb=2)
        assert h.call("fake", "get_share", share_id="s3")["state"] == "available"
    finally:
        fake.release()
    assert first.result(timeout=30)["size_gb"] == 2 and queued.result(timeout=30)["size_gb"] == 2
    assert h.call("fake", "extend_share", share_id="s3", new_size_gb=2)["size_gb"] == 2


def test_a_share_in_error_is_refused_without_retry(fake_shares):
    from share_service.errors import ShareInError
    from share_service.store import ShareStore

    fake_shares.call("fake", "create_share", share_id="s1", size_gb=1)
    assert fake_shares.service.registry is not None
    ShareStore(fake_shares.service.registry).update("s1", state="error", reason="broken")
    with pytest.raises(ShareInError) as caught:
        fake_shares.call("fake", "extend_share", share_id="s1", new_size_gb=2)
    assert not caught.value.retryable


def test_a_snapshot_is_not_deleted_under_a_busy_share(fake_shares):
    from share_service.store import ShareStore

    fake_shares.call("fake", "create_share", share_id="s1", size_gb=1)
    fake_shares.call("fake", "create_snapshot", share_id="s1", snapshot_id="snap")
    assert fake_shares.service.registry is not None
    store = ShareStore(fake_shares.service.registry)
    store.update("s1", state="reverting")  # as if a revert were running
    with pytest.raises(ShareNotAvailable):
        fake_shares.call("fake", "delete_snapshot", share_id="s1", snapshot_id="snap")
    store.update("s1", state="available")
    fake_shares.call("fake", "delete_snapshot", share_id="s1", snapshot_id="snap")
    share = fake_shares.call("fake", "get_share", share_id="s1")
    assert share["snapshots"] == [] and share["state"] == "available"


def test_one_service_per_state_directory_and_one_driver_per_root(
    actors_service, actors_runtime, tmp_path
):
    """A second service of the same identity on the state directory fails at start;
    a second driver on the same root stays not ready instead of touching its files."""
    from actors import DriverNotReady, Service, StateDirInUse

    root, state = tmp_path / "root", tmp_path / "state"
    first = _start(actors_service, root, state)
    first.call("local", "create_share", share_id="s1", size_gb=1)
    twin = Service(first.service.config)
    with pytest.raises(StateDirInUse) as caught:
        twin.start()
    assert caught.value.pid == os.getpid()
    assert twin.registry is None  # refused before the registry was opened
    # Another identity (host) on its own state, but the same driver root:
    other = _start_host(actors_service, root, tmp_path / "other-state", "h2")
    with pytest.raises(DriverNotReady, match="held by process"):
        other.call("local", "create_share", share_id="s2", size_gb=1)
    assert sorted(p.name for p in (root / "shares").iterdir()) == ["s1"]
    first.stop()  # lets go of both locks: the waiting driver's setup retries and wins

    def created() -> bool:
        try:
            other.call("local", "create_share", share_id="s2", size_gb=1)
        except DriverNotReady:
            return False  # its setup retries with backoff
        return True

    wait_until(created, interval=0.02, message="the waiting driver to take the lock")
    assert (root / "shares" / "s2").is_dir()
    again = Service(first.service.config).start()  # the state lock is free again
    again.stop()


def _start_host(actors_service: Any, root: Path, state: Path, host: str) -> ServiceHarness:
    backend = {
        "manager": MANAGER,
        "driver": LOCAL,
        "options": {"root": str(root)},
        "setup_backoff": {"initial": 0.02, "maximum": 0.05},
    }
    return actors_service({"local": backend}, host=host, state_dir=state)  # type: ignore[no-any-return]


def test_a_share_keeps_at_most_max_snapshots(fake_shares, monkeypatch):
    # get_share carries every snapshot: unbounded, a share would outgrow the message limit.
    import share_service.manager as share_module
    from share_service.errors import TooManySnapshots

    monkeypatch.setattr(share_module, "MAX_SNAPSHOTS", 2)
    fake_shares.call("fake", "create_share", share_id="s1", size_gb=1)
    for snap in ("a", "b"):
        fake_shares.call("fake", "create_snapshot", share_id="s1", snapshot_id=snap)
    with pytest.raises(TooManySnapshots, match="delete one first") as info:
        fake_shares.call("fake", "create_snapshot", share_id="s1", snapshot_id="c")
    assert info.value.limit == 2 and not info.value.retryable
    shown = fake_shares.call("fake", "get_share", share_id="s1")
    assert shown["state"] == "available" and [s["id"] for s in shown["snapshots"]] == ["a", "b"]
    fake_shares.call("fake", "delete_snapshot", share_id="s1", snapshot_id="a")
    fake_shares.call("fake", "create_snapshot", share_id="s1", snapshot_id="c")
