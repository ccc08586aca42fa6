"""The gevent runtime: one greenlet per actor, built on pykka's actor hooks.

pykka dropped its gevent support in 3.0; this puts it back through the three
hooks (`_create_actor_inbox`, `_create_future`, `_start_actor_loop`). The daemon
default: thousands of actors cost little and blocking I/O (zmq.green,
gevent.subprocess) yields to the others.
"""

from __future__ import annotations

import logging
import queue
import time
import weakref
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

import gevent
import gevent.event
import pykka
from gevent.hub import Waiter, get_hub
from greenlet import getcurrent

from actors.errors import Overloaded
from actors.runtime._base import Event, MailboxClosed, MailboxFull, Runtime, _is_system
from actors.runtime._clock import Clock, TimerHandle
from actors.runtime._future import (
    PENDING,
    REQUEST_FIELDS,
    ActorFuture,
    Completion,
    Request,
)
from actors.runtime._offload import OffloadLane, OffloadPool, lane_pool

log = logging.getLogger(__name__)


class GreenFuture(ActorFuture[Any]):
    """An ActorFuture for greenlets; constructible with no arguments.

    Waiters park on a hub `Waiter` with a raw loop timer for the deadline
    (cheaper than an Event plus a gevent.Timeout on every wait). Like every
    gevent primitive, a GreenFuture is completed in its waiters' thread: work
    done in another thread comes back through `GeventRuntime.from_concurrent`
    or `offload`, which hand it over. So it needs no lock.
    """

    __slots__ = ()

    def _wait(self, timeout: float | None) -> bool:
        # Called only while pending (get() and result() check first), and
        # nothing else runs in this thread before the greenlet parks below.
        hub = get_hub()
        waiter = Waiter(hub)
        # What completion calls: the waiter's switch, scheduled on its hub.
        wake = partial(hub.loop.run_callback, waiter.switch, True)
        # One waiter (the usual case) is kept as it is; a list only for more.
        waiting = self._waiting
        if waiting is None:
            self._waiting = wake
        elif type(waiting) is _Wakers:
            waiting.append(wake)
        else:
            self._waiting = _Wakers((waiting, wake))
        timer = None
        if timeout is not None:
            timer = hub.loop.timer(timeout if timeout > 0.0 else 0.0)
            timer.start(waiter.switch, False)
        try:
            waiter.get()
        finally:
            if timer is not None:
                timer.close()
            waiting = self._waiting
            if waiting is wake:
                self._waiting = None
            elif type(waiting) is _Wakers and wake in waiting:
                waiting.remove(wake)
        return self._state != PENDING


class _Wakers(list[Callable[[], None]]):
    """The wake-ups of several greenlets waiting on one future: called, it wakes them all."""

    __slots__ = ()

    def __call__(self) -> None:
        for wake in self:
            wake()


class GreenRequest(Request, GreenFuture):
    """A request whose reply is a GreenFuture."""

    __slots__ = REQUEST_FIELDS


class GreenMailbox:
    """A bounded FIFO with one reader greenlet: a deque, and that reader parked on the hub.

    gevent's SimpleQueue serves any number of getters through Waiter objects
    and an unlock callback; an actor's mailbox has exactly one reader, so a put
    only has to schedule that reader's switch (at most one at a time). The
    reader cancels a scheduled switch whenever it leaves `get()`, so a switch
    never lands in a greenlet that has moved on (killed while parked, say).
    Used in the hub's thread only, like every gevent primitive, so the bound
    check and the append need no lock: this is `BoundedInbox` and its queue in
    one object, one call per put.
    """

    __slots__ = (
        "_hub",
        "_items",
        "_reader",
        "_run_callback",
        "_wakeup",
        "capacity",
        "closed",
    )

    def __init__(self, capacity: int = 0) -> None:
        self._items: deque[Any] = deque()
        self._reader: Any = None  # the greenlet parked in get(), if any
        self._wakeup: Any = None  # the hub callback that switches to it, once scheduled
        self._hub = get_hub()
        self._run_callback = self._hub.loop.run_callback  # looked up once: put() runs per message
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
        reader = self._reader
        if reader is not None and self._wakeup is None:
            self._wakeup = self._run_callback(reader.switch)

    def get(self) -> Any:
        items = self._items
        while not items:
            self._reader = getcurrent()
            try:
                self._hub.switch()
            finally:
                self._reader = None
                wakeup = self._wakeup
                if wakeup is not None:
                    # Normally the switch that resumed us (stopping it then is
                    # a no-op); otherwise it must not fire later, elsewhere.
                    self._wakeup = None
                    wakeup.stop()
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
    request = GreenRequest

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

    def completion(self, future: ActorFuture[Any]) -> Completion:
        # Completed in the thread that calls it; handed to this hub (the caller's).
        return _HubCompletion(future, _hub_relay())

    def kill(self, actor: pykka.Actor) -> bool:
        greenlet = getattr(actor, "_greenlet", None)
        if greenlet is None or greenlet.dead:
            return True
        greenlet.kill(block=False)
        return True


class _HubCompletion(Completion):
    """A Completion that hands the outcome to its future's hub (from any thread)."""

    __slots__ = ("_hub_relay",)

    def __init__(self, future: ActorFuture[Any], relay: _HubRelay) -> None:
        super().__init__(future)
        self._hub_relay = relay

    def _relay(self, complete: Callable[[Any], Any], outcome: Any) -> None:
        self._hub_relay.put(complete, outcome)


class _HubRelay:
    """Completions handed to one hub from other threads, run there together.

    A thread that completes many futures in a row (the journal's writer, a
    batch of commits) wakes the hub once for all of them: only the first put
    after the hub drained schedules a drain, which runs everything queued by
    then. deque's append and popleft are atomic, and the flag is cleared
    before draining: a put that finds it set is drained by the run it saw.
    """

    __slots__ = ("__weakref__", "_items", "_loop", "_scheduled")

    def __init__(self, loop: Any) -> None:
        self._loop = loop
        self._items: deque[tuple[Callable[[Any], Any], Any]] = deque()
        self._scheduled = False

    def put(self, complete: Callable[[Any], Any], outcome: Any) -> None:
        self._items.append((complete, outcome))
        if not self._scheduled:
            self._scheduled = True
            self._loop.run_callback_threadsafe(self._drain)

    def _drain(self) -> None:  # in the hub
        self._scheduled = False
        items = self._items
        while items:
            complete, outcome = items.popleft()
            try:
                complete(outcome)
            except Exception:  # a future's callback: logged by the future itself
                log.exception("completing a future handed over from a thread failed")


_relays: weakref.WeakKeyDictionary[Any, _HubRelay] = weakref.WeakKeyDictionary()


def _hub_relay() -> _HubRelay:
    """The relay of the calling thread's hub (made at its first use)."""
    hub = get_hub()
    relay = _relays.get(hub)
    if relay is None:
        relay = _relays[hub] = _HubRelay(hub.loop)
    return relay


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
