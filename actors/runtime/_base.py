"""The runtime interface: what an actor system needs from a concurrency backend."""

from __future__ import annotations

import abc
import concurrent.futures
import functools
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import pykka

from actors.runtime._clock import Clock, TimerHandle, call_repeatedly
from actors.runtime._future import ActorFuture, Completion, Request, copy_concurrent
from actors.runtime._offload import OffloadLane


class MailboxFull(Exception):
    """Raised by an inbox's `put` when a bounded mailbox is at capacity."""

    def __init__(self, capacity: int) -> None:
        super().__init__(f"mailbox full ({capacity})")
        self.capacity = capacity


class Event(Protocol):
    """A one-shot flag that can be waited on with a deadline."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def _is_system(message: Any) -> bool:
    # Our request and cast messages carry `system = False`; everything else
    # (stop, child exits, continuations, pykka's own messages) bypasses the
    # bound so that accepted work always completes.
    return getattr(message, "system", True)


class MailboxClosed(Exception):
    """Raised by an inbox's `put` once its actor has finished for good."""


class BoundedInbox:
    """A FIFO mailbox whose user messages are bounded; system messages are not.

    `queue` is any object with put/get/empty/qsize (SimpleQueue of either world).
    A full mailbox raises `MailboxFull` at once instead of blocking the sender;
    a closed one raises `MailboxClosed`, so nothing lands in a dead mailbox.
    With a `lock` (threads) the check and the put are one atomic step.
    """

    __slots__ = ("_lock", "_queue", "capacity", "closed", "get", "get_nowait")

    def __init__(self, queue: Any, capacity: int, lock: Any = None) -> None:
        self._queue = queue
        self.capacity = capacity
        self.closed = False
        self._lock = lock
        # The actor loop calls get() for every message: bind the queue's own.
        self.get = queue.get
        self.get_nowait = queue.get_nowait

    def put(self, message: Any, /) -> None:
        lock = self._lock
        if lock is None:
            self._put(message)
        else:
            with lock:
                self._put(message)

    def _put(self, message: Any) -> None:
        if self.closed:
            raise MailboxClosed()
        if self.capacity and self._queue.qsize() >= self.capacity and not _is_system(message):
            raise MailboxFull(self.capacity)
        self._queue.put(message)

    def close(self) -> None:
        """Refuse every later put; what is queued stays for the final drain."""
        lock = self._lock
        if lock is None:
            self.closed = True
        else:
            with lock:
                self.closed = True

    def empty(self) -> bool:
        return bool(self._queue.empty())

    def qsize(self) -> int:
        return int(self._queue.qsize())


class Runtime(abc.ABC):
    """A concurrency backend: actor base class, futures, events, clock, timers."""

    name: ClassVar[str]

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock if clock is not None else self._default_clock()

    @abc.abstractmethod
    def _default_clock(self) -> Clock: ...

    @property
    @abc.abstractmethod
    def actor_base(self) -> type[pykka.Actor]:
        """The pykka actor class whose hooks this runtime implements."""

    future: type[ActorFuture[Any]]
    """The future class of this runtime: `runtime.future()` makes a pending one."""
    request: type[Request]
    """The request class of this runtime: a call and its reply future in one object."""

    @abc.abstractmethod
    def event(self) -> Event:
        """A new unset event of this runtime."""

    @abc.abstractmethod
    def sleep(self, seconds: float) -> None:
        """Sleep without blocking other actors of this runtime."""

    @abc.abstractmethod
    def kill(self, actor: pykka.Actor) -> bool:
        """Interrupt an actor's loop at once; False if the runtime cannot."""

    @abc.abstractmethod
    def offload(
        self, fn: Callable[..., Any], *args: Any, lane: OffloadLane = "client"
    ) -> ActorFuture[Any]:
        """Run blocking `fn(*args)` (database I/O) off the actors; a future of its result.

        `lane="client"`: refusable work (reads for clients); beyond the lane's
        bound the future fails at once with `Overloaded`. `lane="changes"`:
        the steps of an admitted change (never refused; call
        `check_admission()` before the change starts). `lane="system"`: the
        process's upkeep (heartbeats, journal upkeep). See
        `actors/runtime/_offload.py`.
        """

    def from_concurrent(self, future: concurrent.futures.Future[Any]) -> ActorFuture[Any]:
        """An ActorFuture that completes with `future` (completed from any thread),
        through `completion`: where this runtime's futures may be completed."""
        adopted = self.future()
        future.add_done_callback(functools.partial(copy_concurrent, self.completion(adopted)))
        return adopted

    @abc.abstractmethod
    def completion(self, future: ActorFuture[Any]) -> Completion:
        """A handle that completes `future` from any thread, where that is safe.

        For work done in a native thread that would otherwise complete a
        concurrent Future followed with `from_concurrent`: cheaper (no Future,
        no Condition, one hand-over).
        """

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run `callback` once after `delay` seconds on this runtime's clock."""
        return self.clock.call_later(delay, callback)

    def call_repeatedly(self, interval: float, callback: Callable[[], None]) -> TimerHandle:
        """Run `callback` every `interval` seconds until the handle is cancelled."""
        return call_repeatedly(self.clock, interval, callback)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
