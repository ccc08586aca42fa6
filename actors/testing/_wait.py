"""`wait_until`: poll a condition from a test, with a deadline and a clear failure."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["WaitTimeout", "wait_until"]

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A test waited for something that did not happen; says what it waited for.

    `what` names the awaited thing and `timeout` the seconds waited (None
    where the waiter did not say).
    """

    def __init__(self, message: str, *, what: str | None = None, timeout: float | None = None):
        super().__init__(message)
        self.what = what
        self.timeout = timeout


def nap(seconds: float) -> None:
    """Sleep without stopping the actors of either runtime.

    The gevent runtime's actors are greenlets on the hub of the thread that
    started them (a test's own thread): a plain `time.sleep` there would stop
    them too, so where this thread has a hub, sleep on it. Elsewhere (the
    threading runtime, a helper thread) sleep the thread.
    """
    if "gevent" in sys.modules:
        from gevent import sleep
        from gevent._hub_local import get_hub_if_exists

        if get_hub_if_exists() is not None:
            sleep(seconds)
            return
    time.sleep(seconds)


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str | Callable[[], str] | None = None,
) -> T:
    """Poll `predicate()` until it returns something true, and return that.

    For conditions no event announces (a database row, a file, a counter in
    another process); prefer an event (`waiting_for`, `FakeController.wait_until`)
    where there is one. Raises WaitTimeout after `timeout` seconds, naming
    what it waited for (`message`, or the predicate's name) and the last value
    seen. `message` may be a function, called at the timeout to describe the
    state of things then. Works from a test's own thread on both runtimes
    (see `nap`).
    """
    if timeout < 0 or interval <= 0:
        raise ValueError(f"need timeout >= 0 and interval > 0, not {timeout!r}, {interval!r}")
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            what = _describe(message, predicate)
            raise WaitTimeout(
                f"waited {timeout:g}s for {what}; last saw {value!r}", what=what, timeout=timeout
            )
        nap(min(interval, remaining))


def _describe(message: str | Callable[[], str] | None, predicate: Callable[[], object]) -> str:
    """What a wait was for: its message (called, if a function), else the predicate's name."""
    if callable(message):
        return message()
    if message:
        return message
    return str(getattr(predicate, "__qualname__", repr(predicate)))
