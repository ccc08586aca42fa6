"""Clocks: where actors read the time and schedule timers.

A real clock per runtime, and a `VirtualClock` that only moves when a test
advances it, so periodic work, backoffs and deadlines fire deterministically.
Timer callbacks must be cheap and non-blocking; actors use them only to post a
message to their own mailbox.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time source and timer scheduler used by actors."""

    def monotonic(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class _RepeatingTimer:
    """Re-arms itself after each run until cancelled; used by `call_repeatedly`."""

    def __init__(self, clock: Clock, interval: float, callback: Callable[[], None]) -> None:
        self._clock, self._interval, self._callback = clock, interval, callback
        self._cancelled = False
        self._handle = clock.call_later(interval, self._fire)

    def _fire(self) -> None:
        if self._cancelled:
            return
        self._handle = self._clock.call_later(self._interval, self._fire)
        self._callback()

    def cancel(self) -> None:
        self._cancelled = True
        self._handle.cancel()


def call_repeatedly(clock: Clock, interval: float, callback: Callable[[], None]) -> TimerHandle:
    """Run `callback` every `interval` seconds on `clock` until cancelled."""
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval!r}")
    return _RepeatingTimer(clock, interval, callback)


class _HeapTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class _TimerHeap:
    """A heap of timers ordered by due time (shared by the thread and virtual clocks)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _HeapTimer]] = []
        self._seq = itertools.count()

    def push(self, when: float, callback: Callable[[], None]) -> _HeapTimer:
        timer = _HeapTimer(when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        return timer

    def next_due(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[_HeapTimer]:
        due = []
        while self._heap and self._heap[0][0] <= now:
            timer = heapq.heappop(self._heap)[2]
            if not timer.cancelled:
                due.append(timer)
        return due

    def __len__(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled)


class ThreadClock:
    """Real time, with one daemon scheduler thread for all timers."""

    def __init__(self) -> None:
        self._heap = _TimerHeap()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    monotonic = staticmethod(time.monotonic)

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        with self._cond:
            timer = self._heap.push(time.monotonic() + max(0.0, delay), callback)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="actors-timers", daemon=True)
                self._thread.start()
            self._cond.notify()
        return timer

    def _run(self) -> None:
        import logging

        log = logging.getLogger(__name__)
        while True:
            with self._cond:
                due_at = self._heap.next_due()
                now = time.monotonic()
                if due_at is None or due_at > now:
                    self._cond.wait(None if due_at is None else due_at - now)
                    continue
                due = self._heap.pop_due(now)
            for timer in due:
                if timer.cancelled:  # by an earlier callback of the same batch
                    continue
                try:
                    timer.callback()
                except Exception:
                    log.exception("timer callback failed")


class VirtualClock:
    """A clock that stands still until `advance()` moves it; for tests.

    `advance(seconds)` runs every timer that falls due, in due order, in the
    caller's context, moving `monotonic()` to each timer's due time first. A
    callback that raises is logged, as on the real clocks; the others still run.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._heap = _TimerHeap()
        self._lock = threading.RLock()

    def monotonic(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        with self._lock:
            return self._heap.push(self._now + max(0.0, delay), callback)

    def advance(self, seconds: float) -> int:
        """Move time forward by `seconds`, firing due timers; returns how many fired."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        target = self._now + seconds
        fired = 0
        while True:
            with self._lock:
                due_at = self._heap.next_due()
                if due_at is None or due_at > target:
                    break
                self._now = max(self._now, due_at)
                due = self._heap.pop_due(self._now)
            for timer in due:
                if timer.cancelled:  # by an earlier callback of the same batch
                    continue
                try:
                    timer.callback()
                except Exception:
                    logging.getLogger(__name__).exception("timer callback failed")
                fired += 1
        with self._lock:
            self._now = target
        return fired

    def pending(self) -> int:
        """How many timers are scheduled and not cancelled."""
        with self._lock:
            return len(self._heap)

    def next_due_in(self) -> float | None:
        """Seconds until the next timer falls due, or None if none is pending."""
        with self._lock:
            due = self._heap.next_due()
        return None if due is None else max(0.0, due - self._now)
