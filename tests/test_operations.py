"""Journaled requests: committed before acknowledged, outcomes recorded, keys honoured."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from actors.errors import (
    Busy,
    InvalidArguments,
    MethodNotAllowed,
    OperationInProgress,
    OperationInterrupted,
)
from actors.registry import Registry, sqlite_url_for
from actors.registry.api import DatabaseUnavailable
from actors.registry.journal import Journal
from actors.testing import ServiceHarness, wait_until
from tests.support import backend

JOURNALED = backend("tests.support:JournaledManager")


@pytest.fixture
def h(make_harness: Any) -> ServiceHarness:
    return make_harness({"b1": JOURNALED}, report_interval=1, service_down_time=5)  # type: ignore[no-any-return]


def _records(h: ServiceHarness, **filters: Any) -> list[Any]:
    assert h.service.operations is not None
    return h.service.operations.journal.list(**filters)


def test_a_journaled_call_is_recorded_with_its_result(h):
    assert h.call("b1", "provision", resource_id="r1", size=3) == {"id": "r1", "size": 3}
    [record] = _records(h)
    assert (record.target, record.method, record.state) == ("h@b1", "provision", "succeeded")
    assert record.args == {"resource_id": "r1", "size": 3}
    assert record.result == {"id": "r1", "size": 3}
    assert record.finished_at is not None and record.error is None


def test_the_first_caller_and_a_retry_by_key_get_the_same_result(h):
    """Both get the result as the journal keeps it (JSON), whether the retry is
    answered from memory or, after a restart, from the database."""
    recorded = {"pair": ["a", 1], "by_number": {"7": "a"}}
    assert h.call("b1", "shaped", tag="a", key="k-shape") == recorded
    assert h.call("b1", "shaped", tag="a", key="k-shape") == recorded
    [record] = _records(h)
    assert record.result == recorded


def test_methods_without_journal_are_not_recorded(h):
    h.call("b1", "create", resource_id="r1")
    assert _records(h) == []


def test_a_failed_operation_records_the_error_and_the_caller_gets_its_type(h):
    from actors.drivers.fake import FakeResourceError

    h.call("b1", "provision", resource_id="r1")
    with pytest.raises(FakeResourceError, match="already exists"):
        h.call("b1", "provision", resource_id="r1")
    failed = _records(h, state="failed")
    assert [r.error["type"] for r in failed] == ["FakeResourceError"]
    assert "already exists" in (failed[0].reason or "")


def test_a_retry_with_the_same_key_returns_the_first_outcome_and_runs_once(h):
    first = h.call("b1", "provision", resource_id="r1", key="k-1")
    again = h.call("b1", "provision", resource_id="r1", key="k-1")
    assert again == first == {"id": "r1", "size": 1}
    assert h.fake("b1").ops().count("create") == 1
    assert len(_records(h)) == 1


def test_a_retry_of_a_failed_operation_gets_the_same_error_without_running(h):
    from actors.drivers.fake import FakeResourceError

    h.fake("b1").fail("create", FakeResourceError("r1", "disk on fire"))
    for _ in range(2):
        with pytest.raises(FakeResourceError, match="disk on fire"):
            h.call("b1", "provision", resource_id="r1", key="k-2")
    assert h.fake("b1").ops().count("create") == 1


def test_a_key_reused_for_another_method_is_refused(h):
    h.call("b1", "provision", resource_id="r1", key="k-3")
    with pytest.raises(InvalidArguments, match="already used"):
        h.call("b1", "resize", resource_id="r1", size=2, key="k-3")


def test_a_key_reused_with_other_arguments_is_refused(h):
    h.call("b1", "provision", resource_id="r1", key="k-8")
    with pytest.raises(InvalidArguments, match="other arguments"):
        h.call("b1", "provision", resource_id="r2", key="k-8")
    assert h.fake("b1").ops().count("create") == 1


def test_an_outcome_the_database_refused_is_kept_and_written_when_it_is_back(h):
    fake = h.fake("b1")
    fake.hang("create")
    op_id = h.cast("b1", "provision", resource_id="r1", key="k-9")
    fake.wait_until(lambda f: f.in_flight == 1, h.service.system.runtime)
    with h.registry_outage():
        fake.release()
        fake.wait_until(lambda f: f.in_flight == 0, h.service.system.runtime)
        h.settle()
    # Back: a retry by key gets the outcome (from memory or, once written, the row)...
    assert h.call("b1", "provision", resource_id="r1", key="k-9") == {"id": "r1", "size": 1}
    # ...and the next registry round writes it.
    h.run_in(h.service.name, lambda actor: actor.report())
    assert h.wait_operation(op_id).result == {"id": "r1", "size": 1}
    assert fake.ops().count("create") == 1


def test_a_retryable_failure_does_not_pin_the_key(h):
    from actors import Busy as BusyError

    fake = h.fake("b1")
    fake.fail("create", BusyError("h@b1/driver", 1))
    with pytest.raises(BusyError):
        h.call("b1", "provision", resource_id="r1", key="k-10")
    # The retry with the same key runs (the failure was retryable: the key was released).
    assert h.call("b1", "provision", resource_id="r1", key="k-10") == {"id": "r1", "size": 1}
    states = sorted(r.state for r in _records(h))
    assert states == ["failed", "succeeded"]


def test_an_operation_that_never_started_fails_retryably_and_frees_its_key(h):
    fake = h.fake("b1")
    crashing = h.service.ask("b1", "hold_then_crash", timeout=10)
    fake.wait_until(lambda f: f.in_flight == 1, h.service.system.runtime)
    op_id = h.cast("b1", "provision", resource_id="r1", key="k-11")  # queued behind the hold
    fake.release()
    with pytest.raises(Exception, match="crashed after the hold"):
        crashing.result()
    record = h.wait_operation(op_id)
    assert record.state == "failed" and record.error["retryable"]
    assert record.idempotency_key is None and "not started" in (record.reason or "")
    h.wait_running("b1")
    assert h.call("b1", "provision", resource_id="r1", key="k-11") == {"id": "r1", "size": 1}
    assert fake.ops().count("create") == 1


def test_a_retry_while_the_first_attempt_runs_waits_for_the_same_outcome(h):
    fake = h.fake("b1")
    fake.hang("create")
    op_id = h.cast("b1", "provision", resource_id="r1", key="k-4")
    assert op_id is not None
    fake.wait_until(lambda f: f.in_flight == 1, h.service.system.runtime)
    retry = h.service.ask("b1", "provision", {"resource_id": "r1"}, key="k-4", timeout=10)
    assert not retry.done()
    fake.release()
    assert retry.result() == {"id": "r1", "size": 1}
    assert fake.ops().count("create") == 1
    assert h.wait_operation(op_id).state == "succeeded"


def test_a_cast_is_acknowledged_with_its_operation_id_once_committed(h):
    fake = h.fake("b1")
    fake.hang("create")
    op_id = h.cast("b1", "provision", resource_id="r1")
    record = h.operation(op_id)
    assert record is not None and record.state in ("accepted", "running")
    fake.release()  # counts even if the driver has not reached its hang yet
    assert h.wait_operation(op_id).result == {"id": "r1", "size": 1}


def test_the_operation_can_be_queried_over_rpc(h):
    op_id = h.cast("b1", "provision", resource_id="r1")
    h.wait_operation(op_id)
    assert h.client is not None
    record = h.client.call("$service", "operation", {"id": op_id})
    assert record["state"] == "succeeded" and record["id"] == op_id
    assert isinstance(record["created_at"], str)
    listed = h.client.call("$service", "operations", {"state": "succeeded", "target": "h@b1"})
    assert [r["id"] for r in listed["operations"]] == [op_id]
    from actors.registry.journal import OperationNotFound

    with pytest.raises(OperationNotFound):
        h.client.call("$service", "operation", {"id": "nope"})
    with pytest.raises(InvalidArguments, match="state"):
        h.client.call("$service", "operations", {"state": "sleeping"})


def test_refusals_write_nothing(h):
    with pytest.raises(MethodNotAllowed):
        h.call("b1", "provision_everything")
    with pytest.raises(InvalidArguments, match="JSON"):
        h.service.call("b1", "provision", {"resource_id": b"bytes are not JSON"})
    assert _records(h) == []


def test_arguments_that_do_not_fit_are_refused_before_the_journal(h):
    """#22: a typo is answered at once, not recorded as a failed operation."""
    with pytest.raises(InvalidArguments):
        h.call("b1", "provision", resource_id="r1", size="big")
    assert _records(h) == []


def test_a_result_that_is_not_json_is_returned_but_not_stored(h):
    assert h.service.call("b1", "unstorable") == {"a set": {1, 2}}
    [record] = _records(h)
    assert record.state == "succeeded" and record.result is None
    assert "not JSON" in (record.reason or "")


def test_a_manager_crash_interrupts_the_operation_at_once(h):
    with pytest.raises(OperationInterrupted, match="while it ran"):
        h.call("b1", "explode", key="k-5")
    [record] = _records(h)
    assert record.state == "interrupted" and "exploded" in (record.reason or "")
    h.wait_running("b1")
    with pytest.raises(OperationInterrupted):  # a retry gets the same answer
        h.call("b1", "explode", key="k-5")


def test_a_late_interruption_answers_with_the_outcome_the_journal_committed(h):
    """The driver's result was committed first; the manager's end then tries to
    write 'interrupted'. Callers and retries by key get what the journal holds."""
    from actors._operations import _InFlight

    assert h.call("b1", "provision", resource_id="r1", key="k-late") == {"id": "r1", "size": 1}
    [record] = _records(h)
    operations = h.service.operations
    waiter = h.service.system.runtime.future()
    operations._inflight[record.id] = _InFlight(record, waiter, started=True)
    held = operations.interrupt(record, "the manager ended").result(timeout=10)
    assert (held.state, held.result) == ("succeeded", {"id": "r1", "size": 1})
    assert waiter.result(timeout=10) == {"id": "r1", "size": 1}
    assert h.call("b1", "provision", resource_id="r1", key="k-late") == {"id": "r1", "size": 1}
    assert [r.state for r in _records(h)] == ["succeeded"]


@pytest.mark.parametrize(("method", "args", "state"), [
    ("provision", {"resource_id": "r1"}, "interrupted"),  # not idempotent
    ("resize", {"resource_id": "r1", "size": 2}, "succeeded"),  # idempotent: run again
])  # fmt: skip
def test_an_operation_whose_commit_ack_was_lost_is_swept_to_recovery(
    h, monkeypatch, method, args, state
):
    """The COMMIT reached the database, its acknowledgement did not: the caller
    heard DatabaseUnavailable and nothing ran it. The sweep hands it to recovery."""
    h.call("b1", "provision", resource_id="r1")  # there is something to resize
    original, lost = Journal._write, []

    def write(self: Journal, batch: Any) -> Any:
        written = original(self, batch)  # committed ...
        if not lost:
            lost.append(True)  # ... and the acknowledgement of the first batch lost
            raise DatabaseUnavailable(self._registry.url, "connection reset during COMMIT")
        return written

    monkeypatch.setattr(Journal, "_write", write)
    with pytest.raises(DatabaseUnavailable):
        h.call("b1", method, key="k-lost", **args)
    [record] = _records(h, state="accepted")  # stranded: retries get OperationInProgress
    with pytest.raises(OperationInProgress):
        h.call("b1", method, key="k-lost", **args)
    # Not yet: it was accepted a moment ago.
    assert h.run_in(h.service.name, lambda actor: actor.sweep_stranded()) == 0
    assert h.run_in(h.service.name, lambda actor: actor.sweep_stranded(older_than=0)) == 1
    assert h.wait_operation(record.id).state == state
    if state == "succeeded":
        assert h.call("b1", method, key="k-lost", **args) == {"id": "r1", "size": 2}
    else:
        with pytest.raises(OperationInterrupted):
            h.call("b1", method, key="k-lost", **args)
    assert h.run_in(h.service.name, lambda actor: actor.sweep_stranded(older_than=0)) == 0


def test_operations_queued_behind_a_crash_are_interrupted_not_lost(h):
    fake = h.fake("b1")
    fake.delay("create", 0.3)
    ids = [h.cast("b1", "provision", resource_id=f"r{i}") for i in range(4)]
    fake.wait_until(lambda f: f.in_flight == 1, h.service.system.runtime)
    h.crash("b1")  # its driver stops after the running create; the rest never run
    records = [h.wait_operation(op_id) for op_id in ids]
    assert records[0].state in ("succeeded", "interrupted")
    assert [r.state for r in records[1:]] == ["interrupted"] * 3
    assert all(r.error["type"] == "OperationInterrupted" for r in records[1:])
    assert fake.ops().count("create") == 1


def test_a_driver_crash_interrupts_its_operation(h):
    from actors import FatalError

    h.fake("b1").fail("create", FatalError("the device vanished"))
    with pytest.raises(OperationInterrupted, match="the device vanished"):
        h.call("b1", "provision", resource_id="r1", key="k-7")
    [record] = _records(h)
    assert record.state == "interrupted" and record.error["type"] == "OperationInterrupted"


def test_a_database_outage_refuses_with_a_retryable_error_and_runs_nothing(h):
    with h.registry_outage():
        with pytest.raises(DatabaseUnavailable) as caught:
            h.call("b1", "provision", resource_id="r1")
        assert caught.value.retryable
    assert "create" not in h.fake("b1").ops()
    assert h.call("b1", "provision", resource_id="r1") == {"id": "r1", "size": 1}


def test_a_full_mailbox_is_busy_before_anything_is_written(make_harness):
    h = make_harness({"b1": {**JOURNALED, "mailbox_capacity": 1}})
    fake = h.fake("b1")
    held = h.service.ask("b1", "hold", timeout=10)  # blocks the manager's mailbox
    fake.wait_until(lambda f: f.in_flight == 1, h.service.system.runtime)
    queued = h.service.ask("b1", "status", timeout=10)  # takes the one free slot
    with pytest.raises(Busy):
        h.call("b1", "provision", resource_id="r1")
    fake.release()
    assert held.result() == "released" and queued.result()["status_calls"] == 1
    assert _records(h) == []


def test_old_finished_operations_are_pruned(h):
    op_id = h.cast("b1", "provision", resource_id="r1")
    h.wait_operation(op_id)
    h.config.journal_retention = 3600.0
    assert h.run_in(h.service.name, lambda actor: actor.prune()) == 0
    h.config.journal_retention = 1e-6
    assert h.run_in(h.service.name, lambda actor: actor.prune()) == 1
    assert h.operation(op_id) is None


# -- crash recovery -------------------------------------------------------------------
def _leave_unfinished(state_dir: Any, host: str) -> dict[str, str]:
    """Operations as a killed process leaves them: accepted or running, never finished."""
    registry = Registry(sqlite_url_for(state_dir))
    registry.upgrade()
    with Journal(registry) as journal:
        ids = {}
        for method, args, state in (
            ("resize", {"resource_id": "r0", "size": 7}, "running"),
            ("provision", {"resource_id": "r1"}, "running"),
            ("provision", {"resource_id": "r2"}, "accepted"),
        ):
            record = journal.accept(f"{host}@b1", method, args, key=f"key-{method}-{state}")
            op_id = record.result(10).id
            if state == "running":
                journal.set_state(op_id, "running").result(10)
            ids[f"{method}-{state}"] = op_id
    registry.close()
    return ids


def test_recovery_reruns_idempotent_operations_and_interrupts_the_rest(
    actors_service, actors_runtime, tmp_path
):
    state = tmp_path / "recover"
    ids = _leave_unfinished(state, "h")
    from actors.drivers.fake import FakeController

    FakeController.for_backend("h@b1").resources["r0"] = {"id": "r0", "size": 1}
    h = actors_service({"b1": JOURNALED}, host="h", state_dir=state)
    resized = h.wait_operation(ids["resize-running"])
    assert resized.state == "succeeded" and resized.result == {"id": "r0", "size": 7}
    for name in ("provision-running", "provision-accepted"):
        record = h.wait_operation(ids[name])
        assert record.state == "interrupted"
        assert "not declared idempotent" in (record.reason or "")
    assert h.fake("b1").ops() == ["resize"]
    # A client retrying with its key now gets the recorded outcome.
    assert h.call("b1", "resize", resource_id="r0", size=7, key="key-resize-running") == {
        "id": "r0",
        "size": 7,
    }
    with pytest.raises(OperationInterrupted):
        h.call("b1", "provision", resource_id="r1", key="key-provision-running")
    assert h.fake("b1").ops() == ["resize"]


def test_recovery_reads_page_by_page_and_leaves_other_hosts_alone(
    actors_service, actors_runtime, tmp_path, monkeypatch, caplog
):
    import actors._recovery

    monkeypatch.setattr(actors._recovery, "RECOVERY_PAGE", 3)
    state = tmp_path / "recover"
    registry = Registry(sqlite_url_for(state))
    registry.upgrade()
    with Journal(registry) as journal:
        mine = [
            journal.accept("h@b1", "provision", {"resource_id": f"r{i}"}).result(10).id
            for i in range(8)
        ]
        theirs = journal.accept("other@b1", "provision", {"resource_id": "x"}).result(10).id
        orphan = journal.accept("h@gone", "provision", {"resource_id": "y"}).result(10).id
    registry.close()
    reads: list[dict[str, Any]] = []
    unfinished = Journal.unfinished

    def spy(self: Journal, *args: Any, **kwargs: Any) -> Any:
        reads.append(kwargs)
        return unfinished(self, *args, **kwargs)

    monkeypatch.setattr(Journal, "unfinished", spy)
    caplog.set_level(logging.WARNING)
    h = actors_service({"b1": JOURNALED}, host="h", state_dir=state)
    for op_id in mine:
        record = h.wait_operation(op_id)
        assert record.state == "interrupted", record
    # Three pages of at most 3 (8 operations), each only of this service's manager.
    assert [(r["targets"], r["limit"]) for r in reads] == [(["h@b1"], 3)] * 3
    assert reads[0]["after"] is None and reads[1]["after"] is not None
    # Another host's operation is its own service's to recover; one of this
    # host's backends that no longer runs here is left alone, with a warning.
    for op_id in (theirs, orphan):
        other = h.operation(op_id)
        assert other is not None and other.state == "accepted"
    assert h.fake("b1").ops() == []
    warning = "1 unfinished operation(s) of h@gone, a backend this service does not run"
    wait_until(  # the lookup runs off the actors; its answer comes back through a mailbox
        lambda: any(warning in r.getMessage() for r in caplog.records),
        message="a warning about h@gone",
    )
    assert not any("other@b1" in r.getMessage() for r in caplog.records)


def test_a_key_of_an_operation_not_yet_recovered_is_in_progress(make_harness, tmp_path):
    h = make_harness({"b1": JOURNALED})
    assert h.service.operations is not None
    journal = h.service.operations.journal
    # An unfinished row this process did not start (as if recovery had not reached it).
    record = journal.accept("h@b1", "provision", {"resource_id": "x"}, key="k-late").result(10)
    with pytest.raises(OperationInProgress) as caught:
        h.call("b1", "provision", resource_id="x", key="k-late")
    assert caught.value.retryable and caught.value.op_id == record.id


def test_unfinished_is_limited_to_an_earlier_process(make_harness):
    h = make_harness({"b1": JOURNALED})
    assert h.service.operations is not None and h.service.actor is not None
    journal = h.service.operations.journal
    journal.accept("h@b1", "provision", {"resource_id": "x"}).result(10)
    started = h.service.actor.started_at
    assert started is not None
    assert journal.unfinished(created_before=started) == []
    assert len(journal.unfinished(created_before=started + timedelta(days=1))) == 1


class _Deferred:
    """An offloaded read or a hand-off that completes when the test says so."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.callbacks, self.result, self.error = fn, [], None, None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except Exception as exc:
            self.error = exc
        for callback in self.callbacks:
            callback(self)

    def exception(self) -> Any:
        return self.error

    def value(self) -> Any:
        return self.result


def test_a_backend_away_while_its_page_was_read_is_recovered_by_a_later_pass(tmp_path, monkeypatch):
    """Removed and added back by reloads during a pass: what the pass skipped is not lost."""
    import logging as _logging
    from types import SimpleNamespace

    import actors._recovery as recovery_module

    monkeypatch.setattr(recovery_module, "RECOVERY_PAGE", 2)
    registry = Registry(sqlite_url_for(tmp_path / "state"))
    registry.upgrade()
    journal = Journal(registry)
    try:
        ids = [journal.accept("h@x", "m", i).result(10).id for i in range(5)]
        pending: list[_Deferred] = []
        handed: list[str] = []

        def offload(fn: Any, *args: Any, lane: str = "client") -> _Deferred:
            pending.append(_Deferred(lambda: fn(*args)))
            return pending[-1]

        def ask(method: str, args: Any, *, accepted: bool) -> _Deferred:
            assert accepted  # recovered work was accepted before the crash
            handed.extend(r.id for r in args[0])
            pending.append(_Deferred(lambda: {"interrupted": len(args[0])}))
            return pending[-1]

        def pipe(future: Any, fn: Any) -> None:
            future.callbacks.append(fn)

        # The ServiceActor as Recovery sees it, its mailbox run by hand.
        service = SimpleNamespace(
            runtime=SimpleNamespace(offload=offload),
            log=_logging.getLogger("test"),
            pipe=pipe,
            child=lambda name: SimpleNamespace(ask=ask),
            config=SimpleNamespace(host="h"),
            plans=[SimpleNamespace(name="h@x")],
        )
        operations = SimpleNamespace(journal=journal)
        recovery = recovery_module.Recovery(service, operations, registry.now())  # type: ignore[arg-type]
        recovery._orphans_checked = True

        def run_all() -> None:
            while pending:
                pending.pop(0).run()

        recovery.start()
        pending.pop(0).run()  # page 1 read: two operations handed over
        pending.pop(0).run()  # ... and taken; page 2 is being read
        recovery.forget("h@x")  # a reload removes the backend
        pending.pop(0).run()  # page 2 arrives while it is away: skipped
        recovery.expect("h@x")  # another reload adds it back
        run_all()
        assert recovery.unrecovered == {"h@x"}, "the pass skipped some: it must not count as done"
        assert handed == ids[:2] + ids[4:]
        recovery.start()  # the next registry round's pass
        run_all()
        assert recovery.unrecovered == set()
        assert set(handed) == set(ids)
    finally:
        journal.close(10)
        registry.close()


def test_service_operation_queries_refuse_unknown_or_huge_arguments(h):
    with pytest.raises(InvalidArguments, match="unexpected argument"):
        h.client.call("$service", "operations", {"bogus": 1})
    with pytest.raises(InvalidArguments, match="unexpected argument"):
        h.client.call("$service", "operation", {"id": "x", "bogus": 1})
    with pytest.raises(InvalidArguments, match="at most 255"):
        h.client.call("$service", "operation", {"id": "x" * 100_000})


def test_a_flood_of_failing_casts_is_logged_a_few_times_not_once_each(h, caplog, monkeypatch):
    import actors._cell
    from transport.ratelimit import RateLimitedLog

    # A fresh limiter: another test may have just logged this category.
    monkeypatch.setattr(actors._cell, "_cast_log", RateLimitedLog(actors._cell.log))
    caplog.set_level(logging.DEBUG, logger="actors.cell")
    for _ in range(300):
        h.cast("b1", "create", {"bogus": 1})  # refused in the manager: nobody to answer
    h.settle()
    assert h.call("b1", "status")["status_calls"] >= 1  # still serving
    refusals = [r for r in caplog.records if "cast create failed" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    assert "unexpected keyword argument" in refusals[0].getMessage()
    assert not refusals[0].exc_info  # a refusal, not a bug: no traceback


def test_the_operations_listing_stays_small_enough_to_send(h, monkeypatch):
    """Arguments are journaled as they came: a listing carries sizes, not
    huge arguments, and stops (truncated) before the reply could get too large."""
    import actors._dispatch

    for n in range(2):
        h.call("b1", "provision", resource_id=f"{n}" + "x" * 600_000)
    assert h.client is not None
    listed = h.client.call("$service", "operations", {})
    for op in listed["operations"]:
        assert op["args"]["omitted_bytes"] > 600_000 < op["result"]["omitted_bytes"]
        assert op["state"] == "succeeded"
    assert listed["truncated"] is False
    monkeypatch.setattr(actors._dispatch, "LISTING_BYTES", 600)
    first = h.client.call("$service", "operations", {})
    assert len(first["operations"]) == 1 and first["truncated"] is True


def test_a_huge_error_is_recorded_with_a_bounded_reason(h):
    from actors.drivers.fake import FakeController, FakeResourceError

    FakeController.for_backend("h@b1").fail("create", FakeResourceError("r1", "x" * 100_000))
    with pytest.raises(FakeResourceError):
        h.call("b1", "provision", resource_id="r1")
    [record] = _records(h, state="failed")
    assert record.reason is not None and len(record.reason) == 1_000
    assert record.reason.endswith("more characters)")
    assert h.client is not None
    assert h.client.call("$service", "operation", {"id": record.id})["state"] == "failed"


def test_the_newest_operations_can_be_listed_over_rpc(h, monkeypatch):
    import actors._dispatch

    ids = [h.cast("b1", "provision", resource_id=f"r{i}") for i in range(4)]
    for op_id in ids:
        h.wait_operation(op_id)
    assert h.client is not None
    newest = h.client.call("$service", "operations", {"limit": 2, "newest": True})
    assert [op["id"] for op in newest["operations"]] == ids[2:]  # still oldest first
    monkeypatch.setattr(actors._dispatch, "LISTING_BYTES", 10)  # cut: the newest one stays
    cut = h.client.call("$service", "operations", {"newest": True})
    assert [op["id"] for op in cut["operations"]] == ids[3:] and cut["truncated"] is True
    with pytest.raises(InvalidArguments, match="newest"):
        h.client.call("$service", "operations", {"newest": "yes"})
