"""Managers never block on drivers; drivers run one operation at a time."""

from __future__ import annotations

import threading

import pytest

from actors import DeadlineExceeded, DriverNotReady
from actors.runtime import ActorFuture, get_runtime
from actors.testing import FakeController
from tests.support import backend


def test_manager_answers_status_while_its_driver_is_busy(make_service, runtime):
    service = make_service()
    fake = FakeController.for_backend("h@b1")
    fake.hang("create")
    slow = service.ask("b1", "create_and_count", {"resource_id": "slow"}, timeout=30)
    fake.wait_until(lambda c: c.in_flight == 1, runtime)
    # The driver is stuck in create; the manager keeps serving.
    for expected in range(1, 4):
        assert service.call("b1", "status", timeout=5)["status_calls"] == expected
    service.call("b1", "record", {"note": "while busy"}, timeout=5)
    assert not slow.done()
    fake.release()
    result = slow.result()
    assert result["resource"] == {"id": "slow", "size": 1}
    # The continuation ran in the manager's mailbox after the other work.
    events = service.call("b1", "status")["events"]
    assert events == ["init_host", "while busy", "created slow"]


def test_driver_runs_one_operation_at_a_time_in_acceptance_order(make_service, runtime):
    service = make_service({"b1": backend()}, mailbox_capacity=5000)
    fake = FakeController.for_backend("h@b1")
    fake.delay("create", 0.001)
    futures: list[ActorFuture] = []
    lock = threading.Lock()

    def hammer(prefix: str) -> None:
        for i in range(40):
            future = service.ask("b1", "create", {"resource_id": f"{prefix}-{i}", "size": 0})
            with lock:
                futures.append(future)

    callers = 6
    if runtime.name == "gevent":
        import gevent

        gevent.joinall([gevent.spawn(hammer, f"c{n}") for n in range(callers)], raise_error=True)
    else:
        threads = [threading.Thread(target=hammer, args=(f"c{n}",)) for n in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    for f in futures:
        f.result(timeout=30)
    assert len(fake.calls) == callers * 40
    assert fake.max_in_flight == 1
    # per caller, operations ran in the order that caller sent them
    for n in range(callers):
        mine = [c.args[0] for c in fake.calls if c.args[0].startswith(f"c{n}-")]
        assert mine == [f"c{n}-{i}" for i in range(40)]


def test_driver_stays_serial_when_many_managers_callers_hammer_it(make_service, runtime):
    service = make_service({"b1": backend(), "b2": backend()})
    fakes = [FakeController.for_backend(f"h@{b}") for b in ("b1", "b2")]
    for fake in fakes:
        fake.delay("create", 0.002)
    futures = [
        service.ask(b, "create_and_count" if i % 2 else "create", {"resource_id": f"r{i}"})
        for i in range(30)
        for b in ("b1", "b2")
    ]
    for f in futures:
        f.result(timeout=30)
    for fake in fakes:
        assert fake.max_in_flight == 1
        assert len(fake.calls) == 30


def test_driver_operation_deadline(make_service, runtime):
    service = make_service({"b1": backend(driver_timeout=0.2)})
    fake = FakeController.for_backend("h@b1")
    fake.hang("create")
    with pytest.raises(DeadlineExceeded):
        service.call("b1", "create", {"resource_id": "x"}, timeout=0.3)
    fake.release()


def test_queued_request_past_its_deadline_is_not_started(make_service, runtime):
    service = make_service()
    fake = FakeController.for_backend("h@b1")
    fake.hang("create")
    first = service.ask("b1", "create", {"resource_id": "first"})
    fake.wait_until(lambda c: c.in_flight == 1, runtime)
    late = service.ask("b1", "create", {"resource_id": "late"}, timeout=0.05)
    with pytest.raises(DeadlineExceeded):
        late.result()
    fake.release()
    first.result(timeout=10)
    # 'late' sat in the driver's mailbox past its deadline: never executed.
    service.call("b1", "ping")
    assert [c.args[0] for c in fake.calls] == ["first"]


def test_a_driver_step_queued_by_a_continuation_inherits_the_callers_deadline(
    make_harness, actors_clock, actors_runtime
):
    """§5: the second step of a call, queued once the first ended, is not started
    after the caller's deadline passed; the caller hears DeadlineExceeded."""
    h = make_harness(clock=actors_clock)
    fake = FakeController.for_backend("h@b1")
    fake.hang("create")
    call = h.service.ask("b1", "create_then_get", {"resource_id": "x"}, timeout=5)
    fake.wait_until(lambda c: c.in_flight == 1, get_runtime(actors_runtime))
    actors_clock.advance(6)  # the deadline passes while the first step runs
    with h.waiting_for("b1", "_on_done", kind="continuation"):  # where the second step starts
        fake.release()
    with pytest.raises(DeadlineExceeded):
        call.result(timeout=10)
    h.settle()
    assert [c.op for c in fake.calls] == ["create"]  # 'get' was never started


def test_driver_setup_failure_means_not_ready_and_is_retried(make_service, runtime, clock):
    fake = FakeController.for_backend("h@b1")
    fake.fail_setup(OSError("disk not mounted"), times=2)
    service = make_service(clock=clock)
    with pytest.raises(DriverNotReady) as err:
        service.call("b1", "create", {"resource_id": "x"}, timeout=5)
    assert "disk not mounted" in err.value.reason
    assert err.value.retryable
    assert service.call("b1", "ping")["name"] == "h@b1"  # manager itself serves
    clock.advance(0.7)  # first backoff (0.5s +- 20%)
    fake.wait_until(lambda c: c.setups == 2, runtime)
    with pytest.raises(DriverNotReady):
        service.call("b1", "create", {"resource_id": "x"}, timeout=5)
    clock.advance(1.3)  # second backoff (1s +- 20%)
    fake.wait_until(lambda c: c.setups == 3, runtime)
    assert service.call("b1", "create", {"resource_id": "x"}, timeout=5)["id"] == "x"


def test_driver_setup_backoff_is_configurable_per_backend(make_harness, actors_clock):
    fake = FakeController.for_backend("h@b1")
    fake.fail_setup(OSError("device busy"), times=3)
    backoff = {"initial": 5.0, "maximum": 8.0, "multiplier": 2.0, "jitter": 0.0}
    h = make_harness({"b1": backend(setup_backoff=backoff)}, clock=actors_clock)
    h.advance(4.9)  # handled all that fell due: the default 0.5 s would have retried
    assert fake.setups == 1
    h.advance(0.2)  # 5 s: the configured first delay
    assert fake.setups == 2
    h.advance(7.9)  # 10 s doubled, capped at 8 s
    assert fake.setups == 2
    h.advance(0.2)
    assert fake.setups == 3
    with pytest.raises(DriverNotReady, match="device busy"):
        h.call("b1", "create", resource_id="x")


def test_deliver_queues_past_the_driver_mailbox_bound_in_order(make_harness, actors_runtime):
    from actors import Busy

    h = make_harness({"b1": backend(mailbox_capacity=1)})
    fake = FakeController.for_backend("h@b1")
    fake.hang("create")
    first = h.service.ask("b1", "create", {"resource_id": "first"})
    fake.wait_until(lambda c: c.in_flight == 1, get_runtime(actors_runtime))
    queued = h.service.ask("b1", "create", {"resource_id": "queued"})  # the mailbox is full now
    with pytest.raises(Busy):
        h.call("b1", "create", resource_id="refused")
    # In a list: run_in would wait for a future it is given.
    [delivered] = h.run_in("b1", lambda m: [m.driver.deliver("create", "delivered", 1)])
    fake.release()
    assert [f.result(timeout=10)["id"] for f in (first, queued)] == ["first", "queued"]
    assert delivered.result(timeout=10)["id"] == "delivered"
    assert [c.args[0] for c in fake.calls] == ["first", "queued", "delivered"]


def test_deliver_to_a_driver_that_is_not_ready_fails_with_driver_not_ready(make_harness):
    FakeController.for_backend("h@b1").fail_setup(OSError("disk not mounted"), times=100)
    h = make_harness({"b1": backend(setup_backoff={"initial": 60.0, "maximum": 60.0})})
    [delivered] = h.run_in("b1", lambda m: [m.driver.deliver("create", "x")])
    with pytest.raises(DriverNotReady, match="disk not mounted"):
        delivered.result(timeout=10)


def test_a_deadline_that_runs_out_in_a_driver_step_names_the_call(make_service, runtime, clock):
    """§9: the caller hears its own target, method and timeout, not the driver's."""
    from transport.client import RpcClient

    service = make_service(clock=clock)
    server = service.serve("tcp://127.0.0.1:0")
    with RpcClient(server.endpoint, green=runtime.name == "gevent", timeout=30) as client:
        client.call("b1", "create", {"resource_id": "x"})
        fake = FakeController.for_backend("h@b1")
        fake.hang("create")
        stuck = client.call_async("b1", "create", {"resource_id": "stuck"})
        fake.wait_until(lambda c: c.in_flight == 1, runtime)
        late = client.call_async("b1", "get", {"resource_id": "x"}, timeout=5)
        client.call("b1", "ping")  # the manager has handed 'get' to its driver by now
        clock.advance(6)  # the server's deadline for 'get' passes while it waits in the driver
        fake.release()
        assert stuck.result()["id"] == "stuck"
        with pytest.raises(DeadlineExceeded) as err:
            late.result()
    assert (err.value.target, err.value.method, err.value.timeout) == ("h@b1", "get", 5)
    assert str(err.value) == "h@b1.get did not complete within 5s"
