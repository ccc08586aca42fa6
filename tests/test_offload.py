"""Bounded offload: blocking work in two lanes, a refusal instead of an unbounded queue.

Workers are held by events and barriers, never by sleeps: a held call runs
until the test releases it, so which calls run, wait or are refused is known.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import actors._dispatch as dispatch
from actors import Busy, ConfigError, Overloaded, load_config
from actors.runtime import Runtime, configure_offload, offload_status
from actors.runtime._offload import DEFAULT_QUEUE, DEFAULT_WORKERS
from actors.testing import wait_until
from share_service.store import ShareStore
from tests.daemon import start_actorsd
from tests.support import backend
from transport.client import RpcClient
from transport.errors import error_from_wire

HOLD = 30.0  # how long a held call waits for its release at most (a test bug otherwise)
JOURNALED = backend("tests.support:JournaledManager")
SHARES = {
    "manager": "share_service.manager:ShareManager",
    "driver": "share_service.drivers.fake:FakeShareDriver",
}


@pytest.fixture(autouse=True)
def _default_limits() -> Iterator[None]:
    """The lanes are process-wide: every test leaves them as it found them."""
    configure_offload()
    yield
    configure_offload()


class Held:
    """Calls that block in their worker until `release()`; records what ran."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.lock = threading.Condition()
        self.running = 0
        self.most_running = 0
        self.ran: list[Any] = []

    def __call__(self, tag: Any) -> Any:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.lock.notify_all()
        try:
            if not self.gate.wait(HOLD):
                raise AssertionError("a held call was never released")
            with self.lock:
                self.ran.append(tag)
            return tag
        finally:
            with self.lock:
                self.running -= 1

    def wait_running(self, count: int) -> None:
        """Until `count` held calls run at once (the workers are all taken)."""
        with self.lock:
            assert self.lock.wait_for(lambda: self.running >= count, HOLD)

    def release(self) -> None:
        self.gate.set()


# -- the lanes, on both runtimes -----------------------------------------------------------
def test_a_full_client_lane_refuses_at_once_with_a_retryable_busy_error(runtime: Runtime):
    configure_offload(workers=2, queue=3)
    held = Held()
    try:
        accepted = [runtime.offload(held, i) for i in range(5)]  # 2 run, 3 wait
        held.wait_running(2)
        refused = runtime.offload(held, "one too many")
        assert refused.done()  # at once: nobody waits for a worker to free up
        error = refused.exception()
        assert isinstance(error, Overloaded) and isinstance(error, Busy)
        assert error.retryable
        assert (error.lane, error.workers, error.capacity) == ("client", 2, 3)
        assert "retry later" in str(error)
        assert not any(f.done() for f in accepted)
        status = offload_status()["client"]
        assert (status["running"], status["waiting"]) == (2, 3) and status["refused"] >= 1
    finally:
        held.release()
    assert [f.get(timeout=10) for f in accepted] == [0, 1, 2, 3, 4]
    assert held.most_running == 2  # never more than the lane's workers at once
    assert "one too many" not in held.ran
    assert runtime.offload(held, "room again").get(timeout=10) == "room again"


def test_queued_calls_start_in_the_order_they_were_submitted(runtime: Runtime):
    configure_offload(workers=2, queue=5)
    started = threading.Barrier(3, timeout=HOLD)
    first, second = threading.Event(), threading.Event()

    def hold(gate: threading.Event) -> None:
        started.wait()
        gate.wait(HOLD)

    order: list[int] = []
    a = runtime.offload(hold, first)
    b = runtime.offload(hold, second)
    try:
        started.wait()  # both workers are taken
        queued = [runtime.offload(order.append, i) for i in range(5)]
        assert order == [] and not any(f.done() for f in queued)
        first.set()  # one worker frees up; the other stays held
        for future in queued:
            future.get(timeout=10)
        assert order == [0, 1, 2, 3, 4]
        assert not b.done()
    finally:
        first.set()
        second.set()
    a.get(timeout=10)
    b.get(timeout=10)


def test_the_system_lane_runs_while_the_client_lane_is_saturated(runtime: Runtime):
    configure_offload(workers=1, queue=1, system_workers=1)
    held = Held()
    try:
        taken = [runtime.offload(held, i) for i in range(2)]
        assert isinstance(runtime.offload(held, "refused").exception(), Overloaded)
        # Not refused, not queued behind the held client calls.
        assert runtime.offload(lambda: "heartbeat", lane="system").get(timeout=10) == "heartbeat"
        many = [runtime.offload(str, i, lane="system") for i in range(50)]  # never refused
        assert [f.get(timeout=10) for f in many] == [str(i) for i in range(50)]
        assert not any(f.done() for f in taken)
    finally:
        held.release()
    assert [f.get(timeout=10) for f in taken] == [0, 1]


def test_errors_of_offloaded_calls_reach_the_future(runtime: Runtime):
    def fail() -> None:
        raise KeyError("gone")

    with pytest.raises(KeyError, match="gone"):
        runtime.offload(fail).get(timeout=10)
    assert runtime.offload(lambda: "still working").get(timeout=10) == "still working"


def test_shrinking_the_lane_lets_running_calls_finish_under_the_new_bound(runtime: Runtime):
    configure_offload(workers=3, queue=0)
    held = Held()
    try:
        running = [runtime.offload(held, i) for i in range(3)]
        configure_offload(workers=1, queue=1)
        # 3 still run, above the new bound of 1 + 1: refused until they finish.
        assert isinstance(runtime.offload(held, "refused").exception(), Overloaded)
    finally:
        held.release()
    assert [f.get(timeout=10) for f in running] == [0, 1, 2]
    assert runtime.offload(str, 7).get(timeout=10) == "7"
    assert offload_status()["client"]["workers"] == 1


# -- configuration -----------------------------------------------------------------------
def test_the_limits_come_from_the_configuration_and_follow_a_reload(make_service):
    service = make_service(offload_workers=3, offload_queue=7, offload_system_workers=1)
    status = offload_status()
    assert (status["client"]["workers"], status["client"]["queue"]) == (3, 7)
    assert (status["system"]["workers"], status["system"]["queue"]) == (1, None)
    changed = service.config.model_copy(update={"offload_workers": 1, "offload_queue": 0})
    assert "offload_workers" not in service.reload(changed)["needs_restart"]
    assert (offload_status()["client"]["workers"], offload_status()["client"]["queue"]) == (1, 0)


def test_defaults_and_bad_limits():
    config = load_config(None, host="h")
    assert (config.offload_workers, config.offload_queue) == (DEFAULT_WORKERS, DEFAULT_QUEUE)
    with pytest.raises(ConfigError) as bad:
        load_config(None, host="h", offload_workers=0)
    assert bad.value.key == "offload_workers"


def test_overloaded_says_which_lane_refused_and_what_it_holds():
    assert str(Overloaded("client", 2, 128)) == (
        "overloaded: 2 workers busy and 128 calls waiting (client lane); retry later"
    )
    # The changes lane counts steps of changes under way, not workers.
    assert str(Overloaded("changes", 4, 200)) == (
        "overloaded: 200 steps of changes running or waiting (changes lane); retry later"
    )


def test_overloaded_crosses_the_wire_as_a_retryable_busy():
    sent = Overloaded("client", 2, 128).to_dict()
    assert sent["type"] == "Overloaded" and sent["retryable"] is True
    assert sent["details"] == {"lane": "client", "workers": 2, "capacity": 128}
    rebuilt = error_from_wire(sent)
    assert isinstance(rebuilt, Overloaded) and isinstance(rebuilt, Busy)
    assert rebuilt.retryable and rebuilt.workers == 2
    # A client that does not know the type still sees that a retry may succeed.
    unknown = error_from_wire({**sent, "type": "SomethingNewer"})
    assert unknown.retryable


# -- through the service and the real ZeroMQ transport ---------------------------------------
def _held_listings(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """`$service.operations` calls block in their worker until the event is set."""
    gate = threading.Event()
    real = dispatch._operations

    def held(operations: Any, args: dict[str, Any]) -> dict[str, Any]:
        gate.wait(HOLD)
        return real(operations, args)

    monkeypatch.setattr(dispatch, "_operations", held)
    return gate


def test_a_flood_of_listings_gets_overloaded_while_status_answers(make_harness, monkeypatch):
    h = make_harness({"b1": JOURNALED}, offload_workers=1, offload_queue=2)
    assert h.client is not None
    h.call("b1", "provision", resource_id="r1")  # something to list
    gate = _held_listings(monkeypatch)
    refused_before = offload_status()["client"]["refused"]
    try:
        flood = [
            h.client.call_async("$service", "operations", {"limit": 10}, timeout=HOLD)
            for _ in range(300)
        ]
        # Dispatched in order: the first 3 take the worker and the queue ...
        status = h.client.call("$service", "status", timeout=5)  # ... and this still answers
        assert h.client.ping(timeout=5)["managers"] == ["h@b1"]
        assert status["offload"]["client"]["refused"] - refused_before == 297
        for future in flood[3:]:
            with pytest.raises(Overloaded) as refused:
                future.result()
            assert refused.value.retryable
        assert not any(future.done() for future in flood[:3])
        assert h.call("b1", "provision", resource_id="r2") == {"id": "r2", "size": 1}
    finally:
        gate.set()
    for future in flood[:3]:
        assert [op["method"] for op in future.result()["operations"]] == ["provision"] * 2


def test_share_writes_go_on_while_share_reads_are_refused(
    actors_service: Callable[..., Any], actors_runtime: str, tmp_path: Path, monkeypatch
):
    h = actors_service(
        {"fake": SHARES}, host="h", state_dir=tmp_path / "state", offload_workers=1, offload_queue=0
    )
    assert h.client is not None
    gate = threading.Event()
    real = ShareStore.shares

    def held(self: ShareStore, *args: Any, **kwargs: Any) -> Any:
        gate.wait(HOLD)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ShareStore, "shares", held)
    try:
        reading = h.client.call_async("fake", "list_shares", {}, timeout=HOLD)  # takes the worker
        with pytest.raises(Overloaded):
            h.call("fake", "list_shares")
        with pytest.raises(Overloaded):
            h.call("fake", "get_share", share_id="s1")
        # A change is admitted work: its reads and writes take the changes lane.
        made = h.call("fake", "create_share", share_id="s1", size_gb=1)
        assert made["state"] == "available"
        assert h.call("fake", "extend_share", share_id="s1", new_size_gb=2)["size_gb"] == 2
        assert not reading.done()
    finally:
        gate.set()
    assert reading.result()["count"] in (0, 1)  # read before or after the create
    assert h.call("fake", "get_share", share_id="s1")["size_gb"] == 2


def test_changes_are_refused_at_admission_while_the_operations_lane_is_backed_up(
    actors_service: Callable[..., Any], actors_runtime: str, tmp_path: Path
):
    h = actors_service(
        {"fake": SHARES},
        host="h",
        state_dir=tmp_path / "state",
        offload_changes_workers=1,
        offload_changes_backlog=2,
    )
    assert h.service.system is not None and h.service.operations is not None
    runtime = h.service.system.runtime
    h.call("fake", "create_share", share_id="s1", size_gb=1)
    journaled = len(h.service.operations.journal.list())
    held = Held()
    try:
        backed_up = [runtime.offload(held, i, lane="changes") for i in range(2)]
        held.wait_running(1)  # one runs, one waits: the backlog is at its limit
        with pytest.raises(Overloaded) as refused:  # journaled: refused before it is accepted
            h.call("fake", "create_share", share_id="s2", size_gb=1)
        assert (refused.value.lane, refused.value.capacity) == ("changes", 2)
        with pytest.raises(Overloaded):  # an idempotent change is journaled too: refused alike
            h.call("fake", "delete_share", share_id="s1")
        assert len(h.service.operations.journal.list()) == journaled  # nothing was accepted
        # The process's upkeep is in a lane of its own: a registry round still runs.
        registry = h.service.registry
        assert registry is not None
        before = registry.services(host="h")[0].report_count
        h.run_in(h.service.name, lambda actor: actor.report())  # waits for the round
        assert registry.services(host="h")[0].report_count >= before + 1  # (others may run too)
        assert offload_status()["changes"]["refused"] >= 2
    finally:
        held.release()
    assert [f.get(timeout=10) for f in backed_up] == [0, 1]
    assert h.call("fake", "get_share", share_id="s1")["state"] == "available"
    assert h.call("fake", "create_share", share_id="s2", size_gb=1)["state"] == "available"


def test_a_worker_that_cannot_start_is_not_counted_and_its_calls_fail(runtime: Runtime):
    from actors.runtime._offload import OffloadPool

    pool = OffloadPool("test", 1, 10)
    real_start = pool._start_thread

    def no_threads(target: Any, name: str) -> None:
        raise RuntimeError("can't start new thread")

    pool._start_thread = no_threads
    outcomes: list[tuple[bool, Any]] = []
    pool.submit(str, (1,), lambda ok, value: outcomes.append((ok, value)))
    assert [ok for ok, _ in outcomes] == [False]  # failed at once: no worker will ever run it
    assert pool.status()["threads"] == 0
    pool.resize(2, 10)  # nothing waits: no thread to start
    pool._start_thread = real_start
    done = threading.Event()
    pool.submit(lambda: done.set(), (), lambda ok, value: None)
    assert done.wait(10)  # the count was right: a real worker started for it
    assert pool.status()["threads"] == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_that_dies_in_its_own_bookkeeping_frees_the_lane_and_fails_its_calls():
    """An error between taking the lane's lock and letting it go (here a
    MemoryError taking a task) kills that worker only: another worker is woken
    for the call it left, and the lane goes on, instead of every thread of the
    lane waiting forever for a lock nobody holds."""
    from collections import deque

    from actors.runtime._offload import OffloadPool

    class FailingOnce(deque):  # type: ignore[type-arg]
        failed = False

        def popleft(self) -> Any:
            if not self.failed:
                self.failed = True
                raise MemoryError("no memory for the task")
            return super().popleft()

    pool = OffloadPool("test", 2, 10)
    warm = [threading.Event(), threading.Event()]  # both workers started, then parked idle
    release = threading.Event()
    for event in warm:
        pool.submit(lambda e=event: (e.set(), release.wait(10)), (), lambda ok, value: None)
    assert all(e.wait(10) for e in warm)
    release.set()
    # No event marks "parked".
    wait_until(lambda: len(pool._idle) == 2, interval=0.001, message="both workers to park")
    pool._tasks = FailingOnce()
    failed = threading.Event()
    outcomes: list[tuple[bool, Any]] = []

    def record(ok: bool, value: Any) -> None:
        outcomes.append((ok, value))
        failed.set()

    def ours() -> int:
        return sum(t.name.startswith("actors-offload-test-") for t in threading.enumerate())

    before = ours()
    pool.submit(str, (1,), record)  # wakes one idle worker, which dies taking it
    assert failed.wait(10)  # the other worker was woken and ran it
    assert outcomes == [(True, "1")]
    # It re-raises as it dies: let it, within this test.
    wait_until(lambda: ours() < before, interval=0.001, message="the failed worker to end")
    ran = threading.Event()
    pool.submit(ran.set, (), lambda ok, value: None)
    assert ran.wait(10)  # the lock is free and the other worker took the call
    assert pool.status()["threads"] == 1


@pytest.mark.parametrize("runtime", ["gevent", "threading"])
def test_a_daemon_flooded_with_listings_refuses_some_and_keeps_answering(tmp_path, runtime):
    """A real actorsd over TCP: thousands of pipelined listings at once."""
    proc, endpoint = start_actorsd(
        None,
        tmp_path / "log",
        runtime,
        {"ACTORS_OFFLOAD_WORKERS": "1", "ACTORS_OFFLOAD_QUEUE": "0"},
        cwd=tmp_path,
    )
    try:
        with RpcClient(endpoint, timeout=30) as client:
            flood = [
                client.call_async("$service", "operations", {"limit": 100}) for _ in range(3000)
            ]
            status = client.call("$service", "status", timeout=10)
            assert status["offload"]["client"]["workers"] == 1
            answered = refused = 0
            for future in flood:  # every one answers: a listing or a refusal, no timeout
                try:
                    assert "operations" in future.result()
                    answered += 1
                except Overloaded:
                    refused += 1
            assert answered >= 1 and refused >= 1
            assert answered + refused == 3000
            assert client.ping(timeout=5)["service"]
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_changes_lane_keys_are_still_read_under_their_old_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The lane was called "operations" before: existing files and environments still load.
    old = tmp_path / "old.toml"
    old.write_text("offload_operations_workers = 3\noffload_operations_backlog = 7\n")
    config = load_config(old)
    assert (config.offload_changes_workers, config.offload_changes_backlog) == (3, 7)
    monkeypatch.setenv("ACTORS_OFFLOAD_OPERATIONS_WORKERS", "4")
    assert load_config().offload_changes_workers == 4
    monkeypatch.setenv("ACTORS_OFFLOAD_CHANGES_WORKERS", "5")
    assert load_config().offload_changes_workers == 5
    new = tmp_path / "new.toml"
    new.write_text("offload_changes_workers = 6\n")
    assert load_config(new, offload_changes_backlog=8).offload_changes_backlog == 8
    with pytest.raises(ConfigError):
        load_config(offload_changes_workers=0)
