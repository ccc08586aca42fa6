"""The gevent runtime: one greenlet per actor, built on pykka's actor hooks.

pykka dropped its gevent support in 3.0; this puts it back through the three
hooks (`_create_actor_inbox`, `_create_future`, `_start_actor_loop`). The daemon
default: thousands of actors cost little and blocking I/O (zmq.green,
gevent.subprocess) yields to the others.
"""

from __future__ import annotations

import concurrent.futures
import queue
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import pykka
from gevent.exceptions import BlockingSwitchOutError
from gevent.hub import get_hub
from greenlet import getcurrent

from actors.errors import Overloaded
from actors.runtime._base import Event, MailboxClosed, MailboxFull, Runtime, _is_system
from actors.runtime._clock import Clock, TimerHandle
from actors.runtime._future import _PENDING, ActorFuture, log
from actors.runtime._offload import OffloadLane, OffloadPool, lane_pool

_NEVER = float("inf")

# How many times in a row parked greenlets may hand over to each other before
# one goes through the hub, so that its loop polls I/O and runs timers.
_HANDOFF_LIMIT = 64


class _RunQueue:
    """Wake-ups of greenlets parked by actors in one hub's thread, run in order.

    A put into a mailbox, or the completion of a future, wakes a parked
    greenlet. gevent would schedule a hub callback per wake-up and, once the
    waker parks, switch to the hub, which switches to the woken greenlet: two
    switches and a pass of the hub per message. Here wake-ups are grouped in
    batches, one hub callback each, and a greenlet about to park hands over
    directly to the oldest woken one (one switch) when every callback the hub
    has pending is one of these batches: nothing else was due first, so the
    order is the one gevent would have run them in. A wake-up joins the newest
    batch only while no other callback was scheduled after it; otherwise it
    starts a new one, behind that callback. At most `_HANDOFF_LIMIT` handovers
    run in a row before a park goes through the hub, whose loop then polls I/O
    and runs timers. A loop that does not show its pending callbacks (not
    libev's) gets no handovers: every batch runs from the hub.

    A "parker" is what a greenlet parks on, one per park: its `_take()` returns
    the parked greenlet and forgets it, or None once it has moved on (woken
    already, timed out, killed), so a greenlet is never switched into after it
    stopped waiting. Used in the hub's thread only.
    """

    __slots__ = (
        "_alarm",
        "_alarm_due",
        "_batches",
        "_callbacks",
        "_deadlines",
        "_handoffs",
        "_hub",
        "_limit",
        "_open",
        "_pending",
        "_tail",
    )

    def __init__(self, hub: Any) -> None:
        self._hub = hub
        self._callbacks: Any = getattr(hub.loop, "_callbacks", None)
        self._limit = _HANDOFF_LIMIT if self._callbacks is not None else 0
        self._batches: deque[deque[Any]] = deque()  # scheduled, oldest first
        self._open: deque[Any] | None = None  # the newest batch, while wake-ups may join it
        self._tail = -1  # len(self._callbacks) when the open batch was scheduled
        self._pending = 0  # batches whose callback the hub has not started
        self._handoffs = 0
        self._deadlines: dict[_Parked, float] = {}  # parked waiters: monotonic deadline
        self._alarm: Any = None  # one loop timer, for the earliest deadline (or sooner)
        self._alarm_due = _NEVER

    def wake(self, parker: Any) -> None:
        """Make `parker`'s greenlet ready to run."""
        batch = self._open
        callbacks = self._callbacks
        if batch is None or callbacks is None or len(callbacks) != self._tail:
            batch = self._open = deque()
            self._batches.append(batch)
            self._hub.loop.run_callback(self._run, batch)
            self._pending += 1
            if callbacks is not None:
                self._tail = len(callbacks)
        batch.append(parker)

    def _run(self, batch: deque[Any]) -> None:  # in the hub: a batch's callback
        self._pending -= 1
        self._handoffs = 0
        if self._open is batch:
            self._open = None
        while batch:
            greenlet = batch.popleft()._take()
            if greenlet is not None:
                greenlet.switch()
        batches = self._batches
        if batches and batches[0] is batch:
            batches.popleft()

    def park(self) -> None:
        """Switch away from the current greenlet until its parker is woken.

        The caller has registered its parker; it runs again when the parker's
        greenlet is switched back to (or something is thrown into it).
        """
        batches = self._batches
        if self._handoffs < self._limit and len(self._callbacks) == self._pending:
            while batches:
                batch = batches[0]
                while batch:
                    greenlet = batch.popleft()._take()
                    if greenlet is not None:
                        self._handoffs += 1
                        greenlet.switch()
                        return
                batches.popleft()  # its callback finds it empty
                if batch is self._open:
                    self._open = None
        self._hub.switch()

    # -- deadlines of parked waiters: one loop timer for all of them ----------------------
    def expect(self, parked: _Parked, due: float) -> None:
        """Time `parked` out at `due` (time.monotonic()) unless it is woken first.

        One loop timer per waiter would cost a timer's creation, start and
        close on every wait; waits are mostly over long before their deadline.
        The alarm is set for the earliest deadline and only moved when an
        earlier one comes; a waiter that leaves just drops out of the table.
        """
        self._deadlines[parked] = due
        if due < self._alarm_due:
            self._set_alarm(due)

    def forget(self, parked: _Parked) -> None:
        self._deadlines.pop(parked, None)

    def _set_alarm(self, due: float) -> None:
        if self._alarm is not None:
            self._alarm.close()
        self._alarm = self._hub.loop.timer(max(0.0, due - time.monotonic()))
        self._alarm_due = due
        self._alarm.start(self._on_alarm)

    def _on_alarm(self) -> None:  # in the hub
        self._alarm.close()
        self._alarm, self._alarm_due = None, _NEVER
        now = time.monotonic()
        deadlines = self._deadlines
        expired = [parked for parked, due in deadlines.items() if due <= now]
        for parked in expired:
            del deadlines[parked]
        if deadlines:
            self._set_alarm(min(deadlines.values()))
        for parked in expired:
            greenlet = parked._take()
            if greenlet is not None:
                greenlet.switch()


def _run_queue(hub: Any) -> _RunQueue:
    runq: _RunQueue | None = getattr(hub, "_actors_run_queue", None)
    if runq is None:
        runq = hub._actors_run_queue = _RunQueue(hub)
    return runq


class _Parked:
    """A greenlet parked in `GreenFuture._wait`, until woken or timed out."""

    __slots__ = ("greenlet",)

    def __init__(self, greenlet: Any) -> None:
        self.greenlet = greenlet

    def _take(self) -> Any:
        greenlet, self.greenlet = self.greenlet, None
        return greenlet


class GreenFuture(ActorFuture[Any]):
    """An ActorFuture for greenlets; constructible with no arguments.

    Waiters park on the hub's run queue (see `_RunQueue`), which also times
    them out (one loop timer for all: cheaper than an Event plus a
    gevent.Timeout, or even a raw loop timer, on every wait).
    """

    __slots__ = ()

    def _wait(self, timeout: float | None) -> bool:
        if self._state != _PENDING:
            return True
        hub = get_hub()
        current = getcurrent()
        if current is hub:
            raise BlockingSwitchOutError("cannot wait for a future in the hub (a callback)")
        parked = _Parked(current)
        if self._waiters is None:
            self._waiters = [parked]
        else:
            self._waiters.append(parked)
        runq = getattr(hub, "_actors_run_queue", None) or _run_queue(hub)
        if timeout is not None:
            runq.expect(parked, time.monotonic() + timeout)
        try:
            while parked.greenlet is not None:
                runq.park()
        finally:
            parked.greenlet = None
            if timeout is not None:
                runq.forget(parked)
            waiters = self._waiters
            if waiters is not None and parked in waiters:
                waiters.remove(parked)
        return self._state != _PENDING

    def _wake(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = None
            hub = get_hub()
            runq = getattr(hub, "_actors_run_queue", None) or _run_queue(hub)
            for parked in waiters:
                runq.wake(parked)

    def _complete(self, state: int, value: Any, error: BaseException | None) -> bool:
        # ActorFuture._complete with _claim inlined: in the hub's thread there
        # is no lock to take, and every request completes two futures.
        if self._state != _PENDING:
            return False
        self._value = value
        self._error = error
        self._state = state
        callbacks = self._callbacks
        self._callbacks = None
        if self._waiters:
            self._wake()
        if callbacks:
            for callback in callbacks:
                try:
                    callback(self)
                except Exception:
                    log.exception("future callback %r raised", callback)
        return True


class GreenMailbox:
    """A bounded FIFO with one reader greenlet: a deque, and that reader parked on the hub.

    gevent's SimpleQueue serves any number of getters through Waiter objects
    and an unlock callback; an actor's mailbox has exactly one reader, so a put
    only has to schedule that reader's wake-up (at most one at a time). The
    wake-up checks the reader still waits here, so it never switches into a
    greenlet that has moved on. Used in the hub's thread only, like every
    gevent primitive, so the bound check and the append need no lock: this is
    `BoundedInbox` and its queue in one object, one call per put.
    """

    __slots__ = ("_items", "_reader", "_runq", "_wake_pending", "capacity", "closed")

    def __init__(self, capacity: int = 0) -> None:
        self._items: deque[Any] = deque()
        self._reader: Any = None  # the greenlet parked in get(), if any
        self._wake_pending = False  # queued on the run queue, not yet taken
        self._runq = _run_queue(get_hub())
        self.capacity = capacity
        self.closed = False

    def put(self, message: Any, /) -> None:
        """Append `message`; MailboxClosed if closed, MailboxFull if full (user messages only)."""
        if self.closed:
            raise MailboxClosed()
        items = self._items
        if self.capacity and len(items) >= self.capacity and not _is_system(message):
            raise MailboxFull(self.capacity)
        items.append(message)
        if self._reader is not None and not self._wake_pending:
            self._wake_pending = True
            self._runq.wake(self)

    def _take(self) -> Any:  # the run queue's: the reader, if it still waits here
        self._wake_pending = False
        reader, self._reader = self._reader, None
        return reader

    def get(self) -> Any:
        items = self._items
        while not items:
            self._reader = getcurrent()
            try:
                self._runq.park()
            finally:
                self._reader = None
        return items.popleft()

    def get_nowait(self) -> Any:
        if not self._items:
            raise queue.Empty
        return self._items.popleft()

    def close(self) -> None:
        """Refuse every later put; what is queued stays for the final drain."""
        self.closed = True

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class GeventCellBase(pykka.Actor):
    """pykka Actor running in a greenlet, with a bounded inbox."""

    mailbox_capacity: int = 0
    _greenlet: gevent.Greenlet | None = None

    def _create_actor_inbox(self) -> Any:  # type: ignore[override]
        return GreenMailbox(self.mailbox_capacity)

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return GreenFuture()

    def _start_actor_loop(self) -> None:
        self._greenlet = gevent.spawn(self._run_loop)

    def _run_loop(self) -> None:
        self._actor_loop()

    def loop_alive(self) -> bool:
        """True while the actor's greenlet runs."""
        return self._greenlet is not None and not self._greenlet.dead


class _GeventTimer:
    __slots__ = ("_greenlet",)

    def __init__(self, greenlet: gevent.Greenlet) -> None:
        self._greenlet = greenlet

    def cancel(self) -> None:
        self._greenlet.kill(block=False)


class GeventClock:
    """Real time; timers are greenlets spawned later on the hub."""

    monotonic = staticmethod(time.monotonic)

    def call_later(self, delay: float, callback: Any) -> TimerHandle:
        return _GeventTimer(gevent.spawn_later(max(0.0, delay), callback))


class GeventRuntime(Runtime):
    """Actors on greenlets; all actors of a service share one OS thread."""

    name = "gevent"

    def _default_clock(self) -> Clock:
        return GeventClock()

    @property
    def actor_base(self) -> type[pykka.Actor]:
        return GeventCellBase

    future = GreenFuture  # a class, not a method: one call less per request

    def event(self) -> Event:
        return gevent.event.Event()  # type: ignore[no-any-return]

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def offload(
        self, fn: Callable[..., Any], *args: Any, lane: OffloadLane = "client"
    ) -> ActorFuture[Any]:
        # A native worker runs fn; an async watcher carries the outcome back to
        # this hub (completing our future is safe only there) and, while the
        # call is pending, keeps the hub's loop alive for whoever waits on it.
        return _offload_green(lane_pool(lane), fn, args)

    def from_concurrent(self, future: concurrent.futures.Future[Any]) -> ActorFuture[Any]:
        # Completed in the thread that resolves `future`; handed to this hub
        # (the caller's) so that our future is completed where it is safe.
        green = GreenFuture()
        loop = get_hub().loop

        def complete(done: concurrent.futures.Future[Any]) -> None:
            error = done.exception()
            if error is not None:
                green.try_set_exception(error)
            else:
                green.try_set(done.result())

        def relay(done: concurrent.futures.Future[Any]) -> None:
            loop.run_callback_threadsafe(complete, done)

        future.add_done_callback(relay)
        return green

    def kill(self, actor: pykka.Actor) -> bool:
        greenlet = getattr(actor, "_greenlet", None)
        if greenlet is None or greenlet.dead:
            return True
        greenlet.kill(block=False)
        return True


def _offload_green(pool: OffloadPool, fn: Callable[..., Any], args: tuple[Any, ...]) -> GreenFuture:
    """Submit `fn(*args)` to an OffloadPool; a GreenFuture completed in this hub."""
    future = GreenFuture()
    watcher = get_hub().loop.async_()
    outcome: list[tuple[bool, Any]] = []

    def deliver() -> None:  # in the hub, once the worker has sent
        watcher.stop()
        watcher.close()
        ok, value = outcome[0]
        if ok:
            future.try_set(value)
        else:
            future.try_set_exception(value)

    def done(ok: bool, value: Any) -> None:  # in the worker thread
        outcome.append((ok, value))
        watcher.send()

    watcher.start(deliver)
    try:
        pool.submit(fn, args, done)
    except Overloaded as exc:  # refused before anything ran
        watcher.stop()
        watcher.close()
        future.try_set_exception(exc)
    return future
