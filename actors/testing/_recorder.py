"""Probes: see every message an actor receives, wait for one, inject faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors._cell import DROP
from actors._messages import Cast, ChildExited, Continuation, Crash, Request, Stop, TimerFired
from actors.runtime import Runtime
from actors.testing._wait import WaitTimeout

__all__ = ["Fault", "Received", "Recorder"]


@dataclass(frozen=True)
class Received:
    """One message an actor received, in the order it received them."""

    actor: str
    kind: str
    method: str | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    at: float


def describe(message: Any) -> tuple[str, str | None, tuple[Any, ...], dict[str, Any]]:
    kind = type(message)
    if isinstance(message, Request):
        return "request", message.method, message.args, message.kwargs
    if kind is Cast:
        return "cast", message.method, message.args, message.kwargs
    if kind is TimerFired:
        return "timer", getattr(message.fn, "__name__", repr(message.fn)), (), {}
    if kind is Continuation:
        return "continuation", getattr(message.fn, "__name__", None), (), {}
    if kind is ChildExited:
        return "child_exited", message.name, (), {"reason": message.reason}
    if kind is Stop:
        return "stop", None, (), {"reason": message.reason}
    if kind is Crash:
        return "crash", None, (), {"reason": message.reason}
    return type(message).__name__, None, (), {}


@dataclass
class _Waiter:
    predicate: Callable[[Received], bool]
    event: Any
    match: Received | None = None


class Recorder:
    """Records every message `name` receives (across restarts) and lets a test wait."""

    def __init__(self, runtime: Runtime, name: str, status: Callable[[], Any]) -> None:
        self.runtime, self.name = runtime, name
        self.messages: list[Received] = []
        self._status = status
        self._lock = threading.Lock()
        self._waiters: list[_Waiter] = []

    def __call__(self, cell: Any, message: Any) -> None:
        kind, method, args, kwargs = describe(message)
        record = Received(self.name, kind, method, args, kwargs, time.monotonic())
        with self._lock:
            self.messages.append(record)
            ready = [w for w in self._waiters if w.predicate(record)]
            for w in ready:
                w.match = record
                self._waiters.remove(w)
        for w in ready:
            w.event.set()

    def methods(self, kind: str | None = None) -> list[str | None]:
        """Method names received so far (of one kind, if given), in order."""
        with self._lock:
            return [m.method for m in self.messages if kind is None or m.kind == kind]

    def expect(self, predicate: Callable[[Received], bool]) -> _Waiter:
        """Start waiting for a message matching `predicate` (before causing it)."""
        waiter = _Waiter(predicate, self.runtime.event())
        with self._lock:
            self._waiters.append(waiter)
        return waiter

    def wait(self, waiter: _Waiter, timeout: float, what: str) -> Received:
        """Wait for an `expect`ed message; on timeout, explain what the actor was doing."""
        if not waiter.event.wait(timeout):
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                recent = self.messages[-10:]
            raise WaitTimeout(
                f"{self.name} did not receive {what} within {timeout:g}s.\n"
                f"  actor now: {self._status()}\n"
                f"  last messages: {[(m.kind, m.method) for m in recent]}",
                what=f"{self.name} to receive {what}",
                timeout=timeout,
            )
        assert waiter.match is not None
        return waiter.match


@dataclass
class Fault:
    """A probe that drops or delays the next matching messages."""

    runtime: Runtime
    method: str
    drop: bool = False
    delay: float = 0.0
    times: int = 1
    hits: list[Received] = field(default_factory=list)

    def __call__(self, cell: Any, message: Any) -> Any:
        kind, method, args, kwargs = describe(message)
        if method != self.method or self.times <= 0 or kind not in ("request", "cast"):
            return None
        self.times -= 1
        self.hits.append(Received(cell.name, kind, method, args, kwargs, time.monotonic()))
        if self.delay:
            self.runtime.sleep(self.delay)
        return DROP if self.drop else None
