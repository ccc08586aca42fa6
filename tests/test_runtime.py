"""Runtimes: futures, timers, bounded mailboxes, crash containment."""

from __future__ import annotations

import queue

import pytest

from actors import Busy
from actors.actor import BaseActor
from actors.runtime import VirtualClock, get_runtime
from actors.system import ActorSystem
from actors.testing import FakeController
from tests.support import backend


def test_futures_are_constructible_with_no_arguments(runtime):
    future = type(runtime.future())()
    assert not future.done()
    future.set(41)
    assert future.get(timeout=1) == 41


def test_the_future_of_an_ask_supports_pykkas_combinators(runtime):
    # ask() returns the request itself; pykka's map/filter/join/reduce make
    # their results with `type(future)()`, which must work on it too.
    import pykka

    class Echo(BaseActor):
        def echo(self, value: int) -> int:
            return value

    system = ActorSystem(runtime)
    try:
        handle = system.spawn("echo", Echo())
        asks = [handle.ask("echo", (n,), timeout=10) for n in range(1, 4)]
        assert asks[0].map(lambda v: v * 10).get(timeout=10) == 10
        assert asks[0].join(asks[1], asks[2]).get(timeout=10) == [1, 2, 3]
        assert asks[0].join(asks[1], asks[2]).filter(lambda v: v > 1).get(timeout=10) == [2, 3]
        assert pykka.get_all(asks, timeout=10) == [1, 2, 3]
        joined = asks[0].join(asks[1], asks[2])
        assert joined.reduce(lambda a, b: a + b).get(timeout=10) == 6
    finally:
        assert system.stop(10)


def test_a_wait_on_delivered_work_that_times_out_names_the_work_and_the_wait(runtime):
    # deliver() hands over accepted work with no deadline of its own; a wait
    # on it that gives up says what it waited for, and how long it waited.
    from actors.errors import DeadlineExceeded

    release = runtime.event()

    class Blocked(BaseActor):
        def work(self) -> str:
            assert release.wait(10)
            return "done"

    system = ActorSystem(runtime)
    try:
        handle = system.spawn("blocked", Blocked())
        delivered = handle.ask("work", accepted=True)
        with pytest.raises(DeadlineExceeded) as err:
            delivered.result(timeout=0.05)
        assert (err.value.details["target"], err.value.details["method"]) == ("blocked", "work")
        assert "0.05" in str(err.value) and "inf" not in str(err.value)
        release.set()
        assert delivered.result(timeout=10) == "done"
    finally:
        assert system.stop(10)


def test_futures_and_requests_keep_their_fields_in_slots_not_a_dict(runtime):
    # pykka.Future has no __slots__; its fields are slots of ours, so no
    # instance dict is filled for each of the futures made per request.
    request = runtime.request.create("t", "m", (), {}, None, 1.0, False, None, False, None)
    future = runtime.future()
    for made in (request, future):
        made.set_get_hook(lambda timeout: "hooked")
        assert made.get(timeout=1) == "hooked"
        assert vars(made) == {}


def test_future_callbacks_run_once_whether_added_before_or_after(runtime):
    future = runtime.future()
    seen: list[object] = []
    future.add_done_callback(lambda f: seen.append(("before", f.value())))
    future.set("v")
    future.add_done_callback(lambda f: seen.append(("after", f.value())))
    assert seen == [("before", "v"), ("after", "v")]
    assert not future.try_set("again")


def test_future_carries_exceptions(runtime):
    future = runtime.future()
    future.set_exception(KeyError("k"))
    with pytest.raises(KeyError):
        future.get(timeout=1)
    assert isinstance(future.exception(), KeyError)


def test_future_wait_has_a_deadline(runtime):
    import pykka

    with pytest.raises(pykka.Timeout):
        runtime.future().get(timeout=0.01)


def test_call_later_and_repeating_timers_fire_on_the_real_clock(runtime):
    fired = runtime.event()
    runtime.call_later(0.01, fired.set)
    assert fired.wait(5)
    ticks: list[int] = []
    done = runtime.event()

    def tick() -> None:
        ticks.append(1)
        if len(ticks) == 3:
            done.set()

    handle = runtime.call_repeatedly(0.005, tick)
    assert done.wait(5)
    handle.cancel()


def test_virtual_clock_fires_timers_in_due_order_only_when_advanced():
    clock = VirtualClock()
    fired: list[str] = []
    clock.call_later(2, lambda: fired.append("b"))
    clock.call_later(1, lambda: fired.append("a"))
    cancelled = clock.call_later(1.5, lambda: fired.append("never"))
    cancelled.cancel()
    assert clock.advance(0.5) == 0 and fired == []
    assert clock.advance(1.6) == 2 and fired == ["a", "b"]
    assert clock.monotonic() == 1000 + 2.1


def test_virtual_clock_repeating_timer():
    runtime = get_runtime("threading", clock=VirtualClock())
    count: list[int] = []
    handle = runtime.call_repeatedly(10, lambda: count.append(1))
    runtime.clock.advance(35)  # type: ignore[attr-defined]
    assert len(count) == 3
    handle.cancel()
    runtime.clock.advance(100)  # type: ignore[attr-defined]
    assert len(count) == 3


def test_unknown_runtime_is_a_config_error():
    from actors import ConfigError

    with pytest.raises(ConfigError, match="unknown runtime 'fibers'"):
        get_runtime("fibers")


def test_full_mailbox_is_busy_at_once(make_service, runtime):
    service = make_service(
        {"b1": backend(manager="tests.support:HoldingManager", mailbox_capacity=3)}
    )
    fake = FakeController.for_backend("h@b1")
    held = service.ask("b1", "hold")
    fake.wait_until(lambda c: "manager.hold" in c.ops(), runtime)
    accepted = [service.ask("b1", "ping") for _ in range(3)]
    refused = service.ask("b1", "ping")
    assert refused.done()  # failed at once, not after a timeout
    with pytest.raises(Busy) as err:
        refused.result()
    assert err.value.retryable and err.value.capacity == 3 and err.value.target == "h@b1"
    with pytest.raises(Busy):
        service.cast("b1", "record", {"note": "no room"})
    fake.release()
    assert held.result() == "released"
    for future in accepted:
        assert future.result()["name"] == "h@b1"


class Worker(BaseActor):
    def __init__(self) -> None:
        self.done = 0

    def work(self) -> int:
        self.done += 1
        return self.done


@pytest.mark.parametrize("kind", ["timeout", "greenlet_exit"])
def test_gevent_timeout_or_greenlet_exit_ends_only_that_actor(kind):
    import pykka

    from actors import ActorCrashed

    system = ActorSystem("gevent")
    bystander = system.spawn("bystander", Worker())
    system2 = ActorSystem("gevent")
    from actors import Service, ServiceConfig

    config = ServiceConfig(
        host="h",
        runtime="gevent",
        enabled_backends=["b1"],
        backends={"b1": backend(manager="tests.support:HoldingManager")},
        supervision={"max_restarts": 0},
    )
    service = Service(config).start(timeout=5)
    try:
        with pytest.raises(ActorCrashed):
            service.call("b1", "raise_base_exception", {"kind": kind}, timeout=5)
        # every other actor in the process is still alive
        assert bystander.ask("work").result() == 1
        assert (
            pykka.ActorRegistry.get_by_urn(system.directory.entry("bystander").cell.actor_urn)
            is not None
        )
    finally:
        service.stop(5)
        assert system.stop(5) and system2.stop(5)


def test_timers_set_by_an_actor_run_in_its_mailbox(runtime):
    clock = VirtualClock()
    system = ActorSystem(get_runtime(runtime.name, clock=clock))

    class Ticker(BaseActor):
        def __init__(self) -> None:
            self.ticks = 0

        def on_start(self) -> None:
            self.call_repeatedly(5, self._tick)

        def _tick(self) -> None:
            self.ticks += 1

        def count(self) -> int:
            return self.ticks

    ticker = system.spawn("ticker", Ticker())
    assert ticker.ask("count").result() == 0
    clock.advance(16)
    assert ticker.ask("count").result() == 3  # the timer messages precede this request
    assert system.stop(5)
    assert clock.pending() == 0  # a stopped actor leaves no timers behind


def test_a_request_asked_with_a_deadline_is_not_started_after_it(runtime):
    from actors import DeadlineExceeded

    clock = VirtualClock()
    system = ActorSystem(get_runtime(runtime.name, clock=clock))
    gate = system.runtime.event()

    class Gated(BaseActor):
        def __init__(self) -> None:
            self.ran: list[int] = []

        def hold(self) -> str:
            gate.wait(10)
            return "held"

        def work(self, n: int) -> int:
            self.ran.append(n)
            return n

        def ran_so_far(self) -> list[int]:
            return list(self.ran)

    try:
        actor = system.spawn("gated", Gated())
        held = actor.ask("hold", timeout=30)
        # `deadline` (runtime clock) is sooner than the timeout: it applies.
        late = actor.ask("work", (1,), timeout=30, deadline=clock.monotonic() + 1)
        # ... and a later one does not extend the timeout.
        on_time = actor.ask("work", (2,), timeout=30, deadline=clock.monotonic() + 100)
        clock.advance(2)
        gate.set()
        assert held.result(timeout=5) == "held"
        with pytest.raises(DeadlineExceeded):
            late.result(timeout=5)
        assert on_time.result(timeout=5) == 2
        assert actor.ask("ran_so_far").result() == [2]
    finally:
        gate.set()
        assert system.stop(5)


class _BrokenDispatch(BaseActor):
    def resolve_call(self, method, *, rpc, version):  # type: ignore[override]
        raise GeneratorExit("dispatch blew up")


def test_a_crash_while_dispatching_fails_that_request_at_once(runtime):
    from actors import ActorCrashed

    system = ActorSystem(runtime)
    try:
        broken = system.spawn("broken", _BrokenDispatch())
        future = broken.ask("anything", timeout=60)
        with pytest.raises(ActorCrashed, match="dispatch blew up"):
            future.result(timeout=5)  # not after the 60s deadline
    finally:
        assert system.stop(5)


def test_pykka_level_stop_still_works(runtime):
    system = ActorSystem(runtime)
    worker = system.spawn("worker", Worker())
    cell = system.directory.entry("worker").cell
    assert cell.actor_ref.stop(timeout=5) is True  # pykka's own ask-based stop
    assert cell.exited.wait(5)
    assert worker.status()["state"] == "stopped"


def test_services_leave_no_threads_behind(tmp_path):
    """Timers and blocking work share one thread and one small pool per process."""
    import threading

    from actors import Service, ServiceConfig

    def run_one(i: int) -> None:
        config = ServiceConfig(
            host="h",
            runtime="threading",
            state_dir=tmp_path / str(i),
            enabled_backends=["b1"],
            backends={"b1": backend()},
        )
        service = Service(config).start(timeout=10)
        assert service.stop(10)

    before = threading.active_count()
    for i in range(8):
        run_one(i)
    # at most the shared timer thread and the 4 offload workers, not 8 services' worth
    assert threading.active_count() <= before + 1 + 4


# -- the gevent mailbox -----------------------------------------------------------------
def test_green_mailbox_is_fifo_and_a_reader_waits_for_a_put():
    import gevent

    from actors.runtime._gevent import GreenMailbox

    box = GreenMailbox()
    got: list[int] = []

    def read(n: int) -> None:
        for _ in range(n):
            got.append(box.get())

    reader = gevent.spawn(read, 3)
    gevent.sleep(0)
    assert got == [] and box.empty()  # parked: nothing to read yet
    for i in range(3):
        box.put(i)
    assert box.qsize() == 3
    reader.join(timeout=5)
    assert reader.dead and got == [0, 1, 2] and box.empty()
    with pytest.raises(queue.Empty):
        box.get_nowait()


def test_green_mailbox_wake_after_its_reader_left_switches_into_nothing():
    """A wake-up scheduled for a reader that left get() meanwhile must not land
    in the next thing it waits for (that wait would end too early)."""
    import gevent
    import gevent.event

    from actors.runtime._gevent import GreenMailbox

    box = GreenMailbox()
    event = gevent.event.Event()

    def reader() -> bool:
        try:
            box.get()
        except gevent.GreenletExit:
            pass
        return event.wait(5)  # parked elsewhere now

    greenlet = gevent.spawn(reader)
    gevent.sleep(0)  # parked in get()
    greenlet.kill(gevent.GreenletExit, block=False)  # its way out is scheduled first...
    box.put("kept")  # ... then the put's wake-up
    gevent.sleep(0)  # the hub runs both scheduled callbacks
    assert not greenlet.dead  # still waiting on its event: no stray switch reached it
    event.set()
    assert greenlet.get(timeout=5) is True
    assert box.get_nowait() == "kept"  # nothing was lost either


def test_green_mailbox_bounds_user_messages_only_and_refuses_all_once_closed():
    from actors._messages import Stop
    from actors.runtime import MailboxClosed, MailboxFull
    from actors.runtime._gevent import GreenMailbox, GreenRequest

    def request() -> GreenRequest:
        return GreenRequest.create("t", "m", (), {}, None, 1.0, False, None, False, None)

    box = GreenMailbox(capacity=2)
    box.put(request())
    box.put(request())
    with pytest.raises(MailboxFull) as full:
        box.put(request())
    assert full.value.capacity == 2
    box.put(Stop())  # a system message is never refused for lack of room
    assert box.qsize() == 3
    box.close()
    with pytest.raises(MailboxClosed):
        box.put(Stop())
    assert [type(box.get_nowait()) for _ in range(3)] == [GreenRequest, GreenRequest, Stop]


# -- gevent wake-ups: order, fairness, stray switches -------------------------------------
def test_green_wakeups_keep_their_order_with_other_hub_callbacks():
    """A greenlet woken after something else was scheduled on the hub (here a
    spawn) runs after it, as with gevent's own wake-ups. The test harness's
    settle() relies on it: an actor spawned before a reply is running by the
    time its caller looks."""
    import gevent

    from actors.runtime._gevent import GreenFuture, GreenMailbox

    order: list[str] = []
    box_a, box_r = GreenMailbox(), GreenMailbox()
    done = GreenFuture()

    def reader() -> None:
        box_r.get()
        order.append("woken")
        done.set(None)

    def actor() -> None:
        box_a.get()
        gevent.spawn(order.append, "spawned")  # scheduled on the hub...
        box_r.put("wake")  # ... before this wake-up
        box_a.get()  # parks: must not hand over past the spawn

    greenlets = [gevent.spawn(reader), gevent.spawn(actor)]
    gevent.sleep(0)  # both parked
    box_a.put("go")
    done.get(timeout=5)
    assert order == ["spawned", "woken"]
    gevent.killall(greenlets, timeout=5)


def test_actors_that_keep_each_other_busy_leave_timers_their_turn():
    """Two mailbox readers that keep each other busy forever still let timers run."""
    import gevent

    from actors.runtime._gevent import GreenMailbox

    ping, pong = GreenMailbox(), GreenMailbox()
    ticks: list[int] = []
    rounds = 0

    def player(inbox: GreenMailbox, outbox: GreenMailbox) -> None:
        nonlocal rounds
        while len(ticks) < 3 and rounds < 1_000_000:
            inbox.get()
            rounds += 1
            outbox.put("ball")

    def ticker() -> None:
        for i in range(3):
            gevent.sleep(0.001)
            ticks.append(i)

    players = [gevent.spawn(player, ping, pong), gevent.spawn(player, pong, ping)]
    clock = gevent.spawn(ticker)
    gevent.sleep(0)
    ping.put("ball")
    clock.join(timeout=10)
    assert ticks == [0, 1, 2] and rounds < 1_000_000
    ping.put("ball")
    pong.put("ball")
    gevent.joinall(players, timeout=5)
    assert all(p.dead for p in players)


def test_green_future_wake_after_its_waiter_left_switches_into_nothing():
    import gevent
    import gevent.event

    from actors.runtime._gevent import GreenFuture

    future = GreenFuture()
    event = gevent.event.Event()

    def waiter() -> bool:
        try:
            future.get(timeout=5)
        except gevent.GreenletExit:
            pass
        return event.wait(5)  # parked elsewhere now

    greenlet = gevent.spawn(waiter)
    gevent.sleep(0)  # parked on the future
    greenlet.kill(gevent.GreenletExit, block=False)
    future.set("done")  # its wake-up is scheduled after the kill
    gevent.sleep(0)
    assert not greenlet.dead  # still waiting on its event
    event.set()
    assert greenlet.get(timeout=5) is True


def test_waiting_for_a_green_future_in_a_hub_callback_is_refused():
    import gevent
    from gevent.exceptions import BlockingSwitchOutError

    from actors.runtime._gevent import GreenFuture

    future = GreenFuture()
    raised: list[BaseException] = []

    def in_the_hub() -> None:
        try:
            future.get(timeout=1)
        except BaseException as exc:
            raised.append(exc)

    gevent.get_hub().loop.run_callback(in_the_hub)
    gevent.sleep(0)
    assert len(raised) == 1 and isinstance(raised[0], BlockingSwitchOutError)


def test_green_future_waits_each_end_at_their_own_deadline():
    """A short wait that starts after a long one still ends at its own deadline;
    the long one is untouched."""
    import gevent
    import pykka

    from actors.runtime._gevent import GreenFuture

    long_wait, short_wait, answered = GreenFuture(), GreenFuture(), GreenFuture()

    def wait(future: GreenFuture, timeout: float) -> str:
        try:
            return str(future.get(timeout=timeout))
        except pykka.Timeout:
            return "timed out"

    waiters = [gevent.spawn(wait, long_wait, 30.0), gevent.spawn(wait, answered, 30.0)]
    gevent.sleep(0)  # both parked
    short = gevent.spawn(wait, short_wait, 0.05)
    assert short.get(timeout=5) == "timed out"  # not 30 s later
    answered.set("answered")
    assert waiters[1].get(timeout=5) == "answered"
    assert not waiters[0].ready()  # its deadline is still ahead
    long_wait.set("late but in time")
    assert waiters[0].get(timeout=5) == "late but in time"


def test_a_timer_cancelled_after_its_firing_was_queued_does_not_run(runtime):
    # Two timers fall due together; the first cancels the second, whose firing
    # is already in the mailbox: it must not run.
    clock = VirtualClock()
    system = ActorSystem(get_runtime(runtime.name, clock=clock))

    class Racer(BaseActor):
        def __init__(self) -> None:
            self.ran: list[str] = []

        def on_start(self) -> None:
            self.call_later(1, self._give_up)
            self.retry = self.call_later(1, lambda: self.ran.append("retry"))

        def _give_up(self) -> None:
            self.ran.append("give up")
            self.retry.cancel()

        def runs(self) -> list[str]:
            return self.ran

    racer = system.spawn("racer", Racer())
    assert racer.ask("runs").result() == []
    clock.advance(1)
    assert racer.ask("runs").result() == ["give up"]
    assert system.stop(5)


def test_clocks_skip_a_timer_cancelled_by_an_earlier_one_of_the_same_batch():
    import time

    from actors.runtime._clock import ThreadClock

    clock, fired, held = VirtualClock(), [], {}
    clock.call_later(1, lambda: held["victim"].cancel())  # runs first of the two
    held["victim"] = clock.call_later(1, lambda: fired.append("victim"))
    clock.advance(2)
    assert fired == []
    # The real clock: its thread is kept busy until both are due, then takes them together.
    real, done, held = ThreadClock(), queue.Queue(), {}
    real.call_later(0, lambda: time.sleep(0.3))
    real.call_later(0.05, lambda: held["victim"].cancel())
    held["victim"] = real.call_later(0.06, lambda: done.put("victim"))
    real.call_later(0.4, lambda: done.put("end"))
    assert done.get(timeout=5) == "end"


def test_a_virtual_clock_logs_a_failing_callback_and_keeps_going(caplog):
    clock = VirtualClock(start=0.0)
    fired: list[str] = []

    def fail() -> None:
        raise RuntimeError("callback failed")

    clock.call_later(1, fail)
    clock.call_later(1, lambda: fired.append("same time"))
    clock.call_later(3, lambda: fired.append("later"))
    assert clock.advance(5) == 3
    assert fired == ["same time", "later"] and clock.monotonic() == 5.0
    assert any("timer callback failed" in r.getMessage() for r in caplog.records)


def test_from_concurrent_of_a_cancelled_future_fails_with_cancelled_error(runtime):
    import concurrent.futures

    pending: concurrent.futures.Future[int] = concurrent.futures.Future()
    adopted = runtime.from_concurrent(pending)
    assert pending.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        adopted.get(timeout=5)


def test_a_completion_completes_its_future_from_a_native_thread_in_the_runtimes_thread(runtime):
    """What the journal's writer thread is given instead of a concurrent Future."""
    import threading

    ok, failed = runtime.future(), runtime.future()
    seen: list[str] = []
    owner = threading.current_thread().name
    ok.add_done_callback(lambda done: seen.append(threading.current_thread().name))
    completions = runtime.completion(ok), runtime.completion(failed)
    assert not any(c.done() for c in completions)

    def writer() -> None:
        completions[0].set_result(42)
        completions[1].set_exception(ValueError("refused"))

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(5)
    assert all(c.done() for c in completions)
    assert ok.get(timeout=5) == 42
    with pytest.raises(ValueError, match="refused"):
        failed.get(timeout=5)
    # gevent's futures belong to their hub: completed there, not in the writer.
    assert seen == [owner if runtime.name == "gevent" else thread.name]


def test_completions_from_busy_threads_all_arrive_in_order(runtime):
    """Threads completing many futures in a row (a journal batch) lose none, and
    each thread's completions reach their futures in the order it made them (on
    gevent they are handed to the hub together, one wake-up for many)."""
    import threading

    per_thread, threads = 2_000, 3
    futures = [[runtime.future() for _ in range(per_thread)] for _ in range(threads)]
    arrived: list[list[int]] = [[] for _ in range(threads)]
    for t, row in enumerate(futures):
        for i, future in enumerate(row):
            future.add_done_callback(lambda done, t=t, i=i: arrived[t].append(i))
    completions = [[runtime.completion(f) for f in row] for row in futures]

    def complete(t: int) -> None:
        for i, completion in enumerate(completions[t]):
            if i % 7 == 0:
                completion.set_exception(ValueError(i))
            else:
                completion.set_result(i)

    workers = [threading.Thread(target=complete, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    for row in futures:
        for i, future in enumerate(row):
            if i % 7 == 0:
                with pytest.raises(ValueError):
                    future.get(timeout=10)
            else:
                assert future.get(timeout=10) == i
    assert arrived == [list(range(per_thread))] * threads
