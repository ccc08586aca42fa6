"""Futures shared by both runtimes: pykka-compatible, with done-callbacks.

Callbacks run synchronously in whichever actor or thread completes the future.
They must be cheap and never block: in this code base they only complete another
future or put a message in a mailbox (pipe-to-self).
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import queue
import sys
import time
from collections.abc import Callable
from typing import Any, Generic, NoReturn, Self, TypeVar

import pykka

T = TypeVar("T")

log = logging.getLogger(__name__)

PENDING, VALUE, ERROR = 0, 1, 2
"""The states of a future (`ActorFuture._state`): hot paths test them directly."""
_ALREADY_DONE: Any = object()
_NO_RESULT: Any = object()  # a get hook that has not run yet


class ActorFuture(pykka.Future[T], Generic[T]):
    """A pykka Future that can also report completion to callbacks.

    Each runtime subclasses it with its waiting primitive (`_wait`), which
    parks waiters and keeps in `_waiting` the callable that wakes them, and
    adds any field of its own (threads: a lock and an Event). Completion,
    callbacks and reading are written once, here. Constructible with no
    arguments, as pykka requires.
    """

    # pykka.Future has no __slots__, so its two fields would live in an
    # instance dict; as slots here they are plain stores, and no dict is made.
    __slots__ = (
        "_callbacks",
        "_error",
        "_get_hook",
        "_get_hook_result",
        "_state",
        "_value",
        "_wait_until",
        "_waiting",
        "_what",
    )

    def __init__(self) -> None:
        # No super().__init__(): `_get_hook_result` is set by set_get_hook(),
        # the only way a get hook is ever set.
        self._get_hook = None
        self._wait_until: float | None = None
        self._what: tuple[str, str, float] | None = None
        self._state = PENDING
        self._value: Any = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[ActorFuture[T]], None]] | None = None
        self._waiting: Callable[[], None] | None = None  # wakes the parked waiters

    # -- primitives supplied by a runtime ----------------------------------
    _lock: Any = None
    """A lock for the runtimes whose futures are completed from several threads.

    None (a class attribute) where a future is completed in its waiters'
    thread only, as in the gevent runtime; the threading runtime's futures
    hold their own. Completion records the outcome under it.
    """

    def _wait(self, timeout: float | None) -> bool:
        """Wait until done or `timeout` passes; True if done. Called while pending.

        A runtime parks its waiters here and puts in `_waiting` the callable
        that wakes them: completion calls it once, directly.
        """
        raise NotImplementedError

    def set_get_hook(self, func: Any) -> None:
        # pykka's combinators (map, filter, reduce) set one; run here as pykka
        # runs it (once, its result kept), so that no pykka internal is needed.
        self._get_hook_result = _NO_RESULT
        self._get_hook = func

    # -- completion ---------------------------------------------------------
    def done(self) -> bool:
        """True once a value or an exception is set."""
        return self._state != PENDING

    def set(self, value: Any = None) -> None:
        if not self._complete(VALUE, value, None):
            raise queue.Full("future already completed")

    def set_exception(self, exc_info: Any = None) -> None:
        if isinstance(exc_info, BaseException):
            error = exc_info
        else:
            if exc_info is None:
                exc_info = sys.exc_info()
            error = exc_info[1] if exc_info[1] is not None else exc_info[0]()
        if not self._complete(ERROR, None, error):
            raise queue.Full("future already completed")

    def try_set(self, value: Any = None) -> bool:
        """Set the value unless already done; returns whether it was set."""
        return self._complete(VALUE, value, None)

    def try_set_exception(self, error: BaseException) -> bool:
        """Set an exception unless already done; returns whether it was set."""
        return self._complete(ERROR, None, error)

    def _complete(self, state: int, value: Any, error: BaseException | None) -> bool:
        """The one way a future completes: record, wake the waiters, run the callbacks.

        Every request completes two futures, so this is one call: the outcome
        is recorded in place (under `_lock` when the runtime has one) and the
        waiters' wake-up is called directly.
        """
        lock = self._lock
        if lock is None:
            if self._state != PENDING:
                return False
            self._value, self._error, self._state = value, error, state
        else:
            with lock:
                if self._state != PENDING:
                    return False
                self._value, self._error, self._state = value, error, state
        # Done now: no callback or waiter is added any more (both check the state).
        wake = self._waiting
        if wake is not None:
            self._waiting = None
            wake()
        callbacks = self._callbacks
        if callbacks is not None:
            self._callbacks = None
            for callback in callbacks:
                try:
                    callback(self)
                except Exception:
                    log.exception("future callback %r raised", callback)
        return True

    def add_done_callback(self, callback: Callable[[ActorFuture[T]], None]) -> None:
        """Run `callback(self)` when done (at once if already done)."""
        # Appended in place: completion takes the list away before running it.
        lock = self._lock
        if lock is None:
            if self._state == PENDING:
                if self._callbacks is None:
                    self._callbacks = [callback]
                else:
                    self._callbacks.append(callback)
                return
        else:
            with lock:
                if self._state == PENDING:
                    if self._callbacks is None:
                        self._callbacks = [callback]
                    else:
                        self._callbacks.append(callback)
                    return
        _run_callback(callback, self)

    def _copy_from(self, done: ActorFuture[Any]) -> None:
        self._complete(done._state, done._value, done._error)

    def transfer_to(self, other: ActorFuture[Any]) -> None:
        """When this completes, complete `other` the same way."""
        self.add_done_callback(other._copy_from)

    # -- reading ------------------------------------------------------------
    def get(self, *, timeout: float | None = None) -> T:
        if self._get_hook is not None:
            if self._get_hook_result is _NO_RESULT:
                self._get_hook_result = self._get_hook(timeout)
            return self._get_hook_result  # type: ignore[return-value]
        if self._state == PENDING and not self._wait(timeout):
            raise pykka.Timeout(f"{timeout} seconds")
        if self._state == ERROR:
            assert self._error is not None
            raise self._error
        return self._value  # type: ignore[no-any-return]

    def expect_by(self, target: str, method: str, timeout: float) -> None:
        """Record what this future answers and its deadline, for `result()`."""
        self._what = (target, method, timeout)
        self._wait_until = time.monotonic() + timeout

    def result(self, timeout: float | None = None) -> T:
        """Wait for the value, at most until the request's deadline.

        Raises `DeadlineExceeded` naming the target and method when the deadline
        passes first; otherwise returns the value or raises the remote error.
        """
        if timeout is None and self._wait_until is not None:
            timeout = self._wait_until - time.monotonic()
            if timeout < 0.0:
                timeout = 0.0
        if self._get_hook is not None:  # a pykka combinator's result: its hook reads it
            try:
                return self.get(timeout=timeout)
            except pykka.Timeout:
                self._deadline_passed(timeout)
        # The caller's side of every request: waits here, not through get().
        if self._state == PENDING and not self._wait(timeout):
            self._deadline_passed(timeout)
        if self._state == ERROR:
            assert self._error is not None
            raise self._error
        return self._value  # type: ignore[no-any-return]

    def _deadline_passed(self, timeout: float | None) -> NoReturn:
        from actors.errors import DeadlineExceeded

        target, method, full = self._expected() or ("<future>", "result", timeout or 0.0)
        if full == math.inf:  # accepted work has no deadline of its own: the wait had one
            full = timeout or 0.0
        raise DeadlineExceeded(target, method, full) from None

    def _expected(self) -> tuple[str, str, float] | None:
        """(target, method, timeout) this future answers, if known."""
        return self._what

    def exception(self) -> BaseException | None:
        """The exception if done with one, else None (does not wait)."""
        return self._error if self._state == ERROR else None

    def value(self) -> Any:
        """The value if done with one, else None (does not wait)."""
        return self._value if self._state == VALUE else None


class Completion:
    """Completes an ActorFuture from any thread: what `Runtime.completion` gives.

    It has the three methods of a concurrent Future that a worker thread
    completing it uses (`done`, `set_result`, `set_exception`), so a worker
    such as the journal's writer can be handed one instead of a concurrent
    Future that `Runtime.from_concurrent` would then follow: no Future, no
    Condition, no callback in between. This one completes the future in the
    calling thread (a thread-safe future); a runtime whose futures belong to
    one thread hands the completion over to it (see `_relay`).
    """

    __slots__ = ("_future", "_set")

    def __init__(self, future: ActorFuture[Any]) -> None:
        self._future = future
        self._set = False

    def done(self) -> bool:
        """Whether set_result or set_exception was called (the future may follow later)."""
        return self._set

    def set_result(self, result: Any) -> None:
        self._set = True
        self._relay(self._future.try_set, result)

    def set_exception(self, exception: BaseException | None) -> None:
        self._set = True
        self._relay(self._future.try_set_exception, exception)

    def _relay(self, complete: Callable[[Any], Any], outcome: Any) -> None:
        complete(outcome)


def copy_concurrent(completion: Completion, done: concurrent.futures.Future[Any]) -> None:
    """Complete `completion` as the finished concurrent future `done` ended.

    A cancelled one fails it with CancelledError: asking `done` for its
    exception would raise that instead, and the future would never complete.
    """
    if done.cancelled():
        completion.set_exception(concurrent.futures.CancelledError())
        return
    error = done.exception()
    if error is not None:
        completion.set_exception(error)
    else:
        completion.set_result(done.result())


def _run_callback(callback: Callable[[Any], None], future: ActorFuture[Any]) -> None:
    try:
        callback(future)
    except Exception:
        log.exception("future callback %r raised", callback)


class Request(ActorFuture[Any]):
    """A call to an actor and the future of its reply, in one object.

    The caller keeps it as the future it waits on; the actor's mailbox holds it
    as the message to handle, and completes it with the outcome. One object
    per call instead of a message plus a future: this is made for every
    request. Not started after `deadline` (on the runtime's clock); `system`
    is True only for work that was accepted elsewhere (a journaled operation),
    which passes the mailbox bound because it must not be refused.

    Each runtime makes its request class from this one and its own future
    class, `class GreenRequest(Request, GreenFuture)`, and declares the slots
    of `REQUEST_FIELDS` there: this class adds none, so that it fits on top of
    any runtime's future.
    """

    __slots__ = ()

    target: str
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    deadline: float | None
    timeout: float
    rpc: bool
    system: bool
    version: str | None

    def __init__(self) -> None:
        """A request for no call, never sent: see `create` for a call.

        Only because pykka's combinators (map, filter, join, reduce) make
        their result with `self.__class__()`.
        """
        super().__init__()
        self.target = self.method = ""
        self.args = ()
        self.kwargs = {}
        self.deadline = None
        self.timeout = 0.0
        self.rpc = self.system = False
        self.version = None

    @classmethod
    def create(
        cls,
        target: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        deadline: float | None,
        timeout: float,
        rpc: bool,
        version: str | None,
        system: bool,
        wait_until: float | None,
    ) -> Self:
        """A request for `method` of `target`, not started after `deadline`.

        `wait_until` is the caller's deadline on the real clock (for
        `result()`). Made for every call, so every field is set here, flat
        (the fields of `ActorFuture.__init__` too): `cls(...)` would add
        type.__call__ and a chain of `__init__` frames. A runtime's own
        fields are made by its future class's `__new__`.
        """
        request = cls.__new__(cls)
        request._get_hook = None
        request._wait_until = wait_until
        request._what = None
        request._state = PENDING
        request._value = None
        request._error = None
        request._callbacks = None
        request._waiting = None
        request.target = target
        request.method = method
        request.args = args
        request.kwargs = {} if kwargs is None else kwargs
        request.deadline = deadline
        request.timeout = timeout
        request.rpc = rpc
        request.version = version
        request.system = system
        return request

    def _expected(self) -> tuple[str, str, float] | None:
        if self._what is None and self.method:
            return (self.target, self.method, self.timeout)
        return self._what


REQUEST_FIELDS = (
    "args",
    "deadline",
    "kwargs",
    "method",
    "rpc",
    "system",
    "target",
    "timeout",
    "version",
)
"""The slots a runtime's request class declares (see `Request`)."""
