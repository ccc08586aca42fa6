"""The threading runtime: one OS thread per actor (pykka ThreadingActor).

For apps that embed service-actors and do not use gevent.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Self

import pykka

from actors.errors import Overloaded
from actors.runtime._base import BoundedInbox, Event, Runtime
from actors.runtime._clock import Clock, ThreadClock
from actors.runtime._future import (
    PENDING,
    REQUEST_FIELDS,
    ActorFuture,
    Completion,
    Request,
)
from actors.runtime._offload import OffloadLane, lane_pool


class ThreadFuture(ActorFuture[Any]):
    """A thread-safe ActorFuture; waiters sleep on a lazily made Event."""

    __slots__ = ("_event", "_lock")
    _event: threading.Event | None

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # In __new__, not __init__: `Request.create` skips __init__.
        future = super().__new__(cls)
        future._lock = threading.Lock()
        future._event = None  # made by the first waiter
        return future

    def _wait(self, timeout: float | None) -> bool:
        with self._lock:
            if self._state != PENDING:
                return True
            event = self._event
            if event is None:
                event = self._event = threading.Event()
                self._waiting = event.set
        return event.wait(timeout)


class ThreadRequest(Request, ThreadFuture):
    """A request whose reply is a ThreadFuture."""

    __slots__ = REQUEST_FIELDS


class ThreadCellBase(pykka.ThreadingActor):
    """pykka ThreadingActor with our bounded inbox and futures."""

    use_daemon_thread: ClassVar[bool] = True
    mailbox_capacity: int = 0

    def _create_actor_inbox(self) -> Any:  # type: ignore[override]
        return BoundedInbox(queue.SimpleQueue(), self.mailbox_capacity, threading.Lock())

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return ThreadFuture()

    _thread: threading.Thread | None = None

    def _start_actor_loop(self) -> None:
        self._thread = threading.Thread(
            target=self._run_loop, name=f"actor-{self}", daemon=self.use_daemon_thread
        )
        self._thread.start()

    def loop_alive(self) -> bool:
        """True while the actor's thread runs (even after it was abandoned)."""
        return self._thread is not None and self._thread.is_alive()

    def _run_loop(self) -> None:
        self._actor_loop()


_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()


def _shared_clock() -> ThreadClock:
    """One timer thread per process, whatever the number of runtimes or services."""
    with _shared_lock:
        clock = _shared.get("clock")
        if clock is None:
            clock = _shared["clock"] = ThreadClock()
        return clock  # type: ignore[no-any-return]


class ThreadingRuntime(Runtime):
    """Actors on OS threads; waits are real blocking waits with deadlines."""

    name = "threading"

    def _default_clock(self) -> Clock:
        return _shared_clock()

    @property
    def actor_base(self) -> type[pykka.Actor]:
        return ThreadCellBase

    future = ThreadFuture  # a class, not a method: one call less per request
    request = ThreadRequest

    def event(self) -> Event:
        return threading.Event()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def kill(self, actor: pykka.Actor) -> bool:
        return False

    def completion(self, future: ActorFuture[Any]) -> Completion:
        # ThreadFuture is thread-safe: completed in the calling thread.
        return Completion(future)

    def offload(
        self, fn: Callable[..., Any], *args: Any, lane: OffloadLane = "client"
    ) -> ActorFuture[Any]:
        # The worker completes the future itself (ThreadFuture is thread-safe).
        future = ThreadFuture()

        def done(ok: bool, value: Any) -> None:
            if ok:
                future.try_set(value)
            else:
                future.try_set_exception(value)

        try:
            lane_pool(lane).submit(fn, args, done)
        except Overloaded as exc:  # refused before anything ran
            future.try_set_exception(exc)
        return future
