"""The share driver contract as tests: run them against any `ShareDriver`.

`ShareDriverContract` is a driver conformance suite (`actors.testing.conformance`)
for the `ShareDriver` kind. Subclass it once per driver, name the driver and
its options, and pytest runs every test below (and the framework's own driver
tests) against it, through the framework, on both runtimes::

    import pytest
    from share_service.testing import ShareDriverContract

    class TestMyShareDriver(ShareDriverContract):
        driver = "mypkg.drivers:MyShareDriver"

        @pytest.fixture
        def driver_options(self, tmp_path):
            return {"root": str(tmp_path / "shares")}

The project runs it against LocalShareDriver, FakeShareDriver and a share
driver written as a plain class (tests/share_service/test_conformance.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from actors.errors import InvalidArguments
from actors.testing.conformance import DriverContract, DriverUnderTest
from share_service.drivers.base import ShareDriver
from share_service.errors import (
    InvalidAccessRule,
    ShareBroken,
    ShareNotFoundOnHost,
    SnapshotNotFound,
    UnsafeShareId,
    UnsafeSnapshotId,
)

__all__ = ["ShareDriverContract"]

RW = [{"access_to": "10.0.0.0/24", "access_level": "rw"}]


class ShareDriverContract(DriverContract):
    """What every share driver does, as ShareManager relies on it."""

    kind = ShareDriver

    # -- shares ---------------------------------------------------------------------------
    def test_create_share_answers_its_id_path_and_size(self, driver_under_test: Any) -> None:
        made = driver_under_test.create_share("s1", 2)
        assert made["share_id"] == "s1" and made["size_gb"] == 2
        assert isinstance(made["export_path"], str) and made["export_path"]

    def test_create_share_again_is_no_error(self, driver_under_test: Any) -> None:
        first = driver_under_test.create_share("s1", 1)
        assert driver_under_test.create_share("s1", 1) == first

    def test_delete_share_says_whether_it_existed(self, driver_under_test: Any) -> None:
        driver_under_test.create_share("s1", 1)
        assert driver_under_test.delete_share("s1") is True
        assert driver_under_test.delete_share("s1") is False
        with pytest.raises(ShareNotFoundOnHost):
            driver_under_test.get_usage("s1")

    def test_extend_and_shrink_answer_the_new_size(self, driver_under_test: Any) -> None:
        driver_under_test.create_share("s1", 1)
        assert driver_under_test.extend_share("s1", 3) == {"share_id": "s1", "size_gb": 3}
        assert driver_under_test.shrink_share("s1", 2) == {"share_id": "s1", "size_gb": 2}

    def test_a_missing_share_is_not_found(self, driver_under_test: Any) -> None:
        for op, args in (
            ("extend_share", ("nope", 2)),
            ("shrink_share", ("nope", 1)),
            ("get_usage", ("nope",)),
            ("create_snapshot", ("nope", "snap1")),
            ("revert_to_snapshot", ("nope", "snap1")),
            ("update_access", ("nope", RW)),
        ):
            with pytest.raises(ShareNotFoundOnHost):
                driver_under_test.call(op, *args)

    def test_usage_is_a_byte_count(self, driver_under_test: Any) -> None:
        driver_under_test.create_share("s1", 1)
        usage = driver_under_test.get_usage("s1")
        assert usage["share_id"] == "s1"
        assert isinstance(usage["used_bytes"], int) and usage["used_bytes"] >= 0

    def test_a_size_that_is_not_a_positive_integer_is_refused(self, driver_under_test: Any) -> None:
        for size in (0, -1, True, "1"):
            with pytest.raises(InvalidArguments):
                driver_under_test.create_share("s1", size)

    def test_an_unsafe_share_id_is_refused(self, driver_under_test: Any) -> None:
        for share_id in ("../etc", ".hidden", "a/b", "", "x" * 65):
            with pytest.raises(UnsafeShareId):
                driver_under_test.create_share(share_id, 1)

    # -- snapshots ------------------------------------------------------------------------
    def test_snapshots_are_made_again_without_error_and_deleted_once(
        self, driver_under_test: Any
    ) -> None:
        driver_under_test.create_share("s1", 1)
        snap = driver_under_test.create_snapshot("s1", "snap1")
        assert snap["share_id"] == "s1" and snap["snapshot_id"] == "snap1"
        assert isinstance(snap["path"], str) and isinstance(snap["size_bytes"], int)
        assert driver_under_test.create_snapshot("s1", "snap1")["snapshot_id"] == "snap1"
        assert driver_under_test.delete_snapshot("s1", "snap1") is True
        assert driver_under_test.delete_snapshot("s1", "snap1") is False

    def test_revert_needs_the_snapshot(self, driver_under_test: Any) -> None:
        driver_under_test.create_share("s1", 1)
        with pytest.raises(SnapshotNotFound):
            driver_under_test.revert_to_snapshot("s1", "snap1")
        driver_under_test.create_snapshot("s1", "snap1")
        reverted = driver_under_test.revert_to_snapshot("s1", "snap1")
        assert reverted["share_id"] == "s1" and reverted["snapshot_id"] == "snap1"
        assert reverted["export_path"] == driver_under_test.create_share("s1", 1)["export_path"]

    def test_an_unsafe_snapshot_id_is_refused(self, driver_under_test: Any) -> None:
        driver_under_test.create_share("s1", 1)
        with pytest.raises(UnsafeSnapshotId):
            driver_under_test.create_snapshot("s1", "../x")

    # -- access ---------------------------------------------------------------------------
    def test_access_rules_are_counted_and_cleared(self, driver_under_test: Any) -> None:
        driver_under_test.create_share("s1", 1)
        rules = [*RW, {"access_to": "host.example.com", "access_level": "ro"}]
        assert driver_under_test.update_access("s1", rules) == {"share_id": "s1", "exports": 2}
        assert driver_under_test.update_access("s1", []) == {"share_id": "s1", "exports": 0}

    def test_clearing_the_access_of_a_missing_share_is_no_error(
        self, driver_under_test: Any
    ) -> None:
        assert driver_under_test.update_access("gone", []) == {"share_id": "gone", "exports": 0}

    def test_a_bad_access_rule_is_refused(self, driver_under_test: Any) -> None:
        driver_under_test.create_share("s1", 1)
        for rule in (
            {"access_to": "10.0.0.1", "access_level": "admin"},
            {"access_to": "10.0.0.1(rw)", "access_level": "rw"},
            {"access_to": "", "access_level": "rw"},
            "10.0.0.1",
        ):
            with pytest.raises(InvalidAccessRule):
                driver_under_test.update_access("s1", [rule])

    # -- start-up -------------------------------------------------------------------------
    def test_ensure_share_repairs_the_exports(self, driver_under_test: Any) -> None:
        driver_under_test.create_share("s1", 1)
        ensured = driver_under_test.ensure_share("s1", 1, RW)
        assert ensured["share_id"] == "s1" and ensured["repaired"] == ["exports"]
        assert driver_under_test.ensure_share("s1", 1, RW)["repaired"] == []

    def test_ensure_share_of_a_missing_share_says_it_is_broken(
        self, driver_under_test: Any
    ) -> None:
        with pytest.raises(ShareBroken):
            driver_under_test.ensure_share("gone", 1, [])

    # -- stats ----------------------------------------------------------------------------
    def test_stats_give_capacity_and_capabilities(self, driver_under_test: DriverUnderTest) -> None:
        stats = driver_under_test.stats()
        for key in ("total_capacity_gb", "free_capacity_gb"):
            assert isinstance(stats[key], int | float) and stats[key] >= 0, key
        for key in ("snapshot_support", "revert_to_snapshot_support"):
            assert isinstance(stats[key], bool), key
