"""Bounded thread pools for blocking work (database I/O), shared by both runtimes.

`Runtime.offload(fn, *args, lane=...)` runs `fn` in one of three lanes, each
a small set of native worker threads taking calls in the order they came:

- `"client"` (the default): work done for a request that may be refused,
  such as listings read for clients. At most `workers` calls run at once and
  `queue` more wait; beyond that a call is refused at once (`Overloaded`,
  retryable) instead of queueing without bound. Few workers on purpose: on
  gevent each one competes with the hub (every actor and the transport) for
  the GIL.
- `"changes"`: the blocking steps of changes already admitted (a
  manager's database writes for a change under way). A call is never
  refused once made, since the change may be half done; the bound is at
  admission instead: `check_admission()` refuses a new request with
  `Overloaded` while `backlog` calls are running or waiting here, before
  anything of it runs (the journal checks it before accepting a change;
  without a journal, changes are bounded only by the mailboxes).
- `"system"`: the process's own upkeep, which it depends on (registry
  heartbeats, capability reports, journal recovery and pruning). Never
  refused and never queued behind clients' reads or changes' writes, so
  a flood of either cannot delay heartbeats. Fed one round at a time.

The lanes are process-wide, like gevent's hub thread pool and the threading
runtime's pool before them: every service and runtime in the process shares
them, and `configure_offload` (called by the ServiceActor from its
configuration) sizes them. Threads start on demand and are native even under
gevent's monkey-patching.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from actors._native import native_lock, start_native_thread
from actors.errors import Overloaded

__all__ = [
    "DEFAULT_CHANGES_BACKLOG",
    "DEFAULT_CHANGES_WORKERS",
    "DEFAULT_QUEUE",
    "DEFAULT_SYSTEM_WORKERS",
    "DEFAULT_WORKERS",
    "OffloadLane",
    "OffloadPool",
    "check_admission",
    "configure_offload",
    "lane_pool",
    "offload_status",
]

log = logging.getLogger("actors.offload")

OffloadLane = Literal["client", "changes", "system"]
"""Which pool an offloaded call runs in: "client" (bounded), "changes" (bounded at
admission) or "system" (the process's upkeep, never refused)."""

DEFAULT_WORKERS = 2
DEFAULT_QUEUE = 128
DEFAULT_SYSTEM_WORKERS = 2
DEFAULT_CHANGES_WORKERS = 2
DEFAULT_CHANGES_BACKLOG = 1000

Done = Callable[[bool, Any], None]
"""Called in the worker thread with (True, result) or (False, exception)."""


class OffloadPool:
    """Up to `workers` native threads running queued calls in FIFO order.

    With a `queue` bound, at most `workers + queue` calls are accepted and not
    finished at any time (running or waiting); `submit` refuses the next one.
    `queue=None` never refuses. Thread-safe: submit from any thread or hub.
    """

    def __init__(self, name: str, workers: int, queue: int | None) -> None:
        if workers < 1 or (queue is not None and queue < 0):
            raise ValueError("an offload pool needs workers >= 1 and queue >= 0 (or None)")
        self.name = name
        self.workers = workers
        self.queue = queue
        self.refused = 0  # calls refused since the process started
        self.backlog_limit: int | None = None  # for check_admission (changes lane)
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # no threads survive a fork

    def _reset(self) -> None:
        self._start_thread = start_native_thread  # replaceable in tests
        self._mutex = native_lock()
        self._tasks: deque[tuple[Callable[..., Any], tuple[Any, ...], Done]] = deque()
        self._idle: list[Any] = []  # locks of parked workers: release one to wake it
        self._threads = 0
        self._busy = 0  # workers running a call
        self._started = 0  # for thread names

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], done: Done) -> None:
        """Queue `fn(*args)`; `done` gets its outcome. Raises `Overloaded` if full."""
        wake = None
        number = 0  # of a thread to start
        with self._mutex:
            if self.queue is not None and self.backlog() >= self.workers + self.queue:
                self.refused += 1
                raise Overloaded(self.name, self.workers, self.queue)
            self._tasks.append((fn, args, done))
            if self._idle:
                wake = self._idle.pop()
            elif self._threads < self.workers:
                self._threads += 1
                self._started += 1
                number = self._started
        if wake is not None:
            wake.release()
        elif number:
            self._start_worker(number)

    def resize(self, workers: int, queue: int | None) -> None:
        """New limits; running calls finish, extra threads leave when idle."""
        if workers < 1 or (queue is not None and queue < 0):
            raise ValueError("an offload pool needs workers >= 1 and queue >= 0 (or None)")
        wake: list[Any] = []
        starts: list[int] = []
        with self._mutex:
            self.workers, self.queue = workers, queue
            while self._idle and self._threads - len(wake) > workers:
                wake.append(self._idle.pop())  # woken to find they are too many: they leave
            waiting = len(self._tasks) - len(self._idle)
            while waiting > 0 and self._threads < workers:
                self._threads += 1
                self._started += 1
                starts.append(self._started)
                waiting -= 1
        for lock in wake:
            lock.release()
        for number in starts:
            self._start_worker(number)

    def _start_worker(self, number: int) -> None:
        """Start worker `number` (already counted); undo the count if it cannot start.

        Out of threads, the calls that no worker is left to run fail now
        rather than wait for none.
        """
        try:
            self._start_thread(self._work, f"actors-offload-{self.name}-{number}")
        except Exception as exc:
            log.error("offload lane %s: could not start a worker: %s", self.name, exc)
            self._lose_worker(exc)

    def _lose_worker(self, exc: BaseException) -> None:
        """Uncount a worker that will not run; with none left, what waits fails with `exc`."""
        wake = None
        with self._mutex:
            self._threads -= 1
            stranded = list(self._tasks) if self._threads == 0 else []
            if stranded:
                self._tasks.clear()
            elif self._tasks and self._idle:
                wake = self._idle.pop()  # it may have been woken for them: another takes over
        if wake is not None:
            wake.release()
        for _, _, failed in stranded:
            failed(False, exc)

    def backlog(self) -> int:
        """Calls running or waiting (read without the lock: a snapshot)."""
        return self._busy + len(self._tasks)

    def status(self) -> dict[str, Any]:
        """Limits and current load, for `$service.status`."""
        with self._mutex:
            status = {
                "workers": self.workers,
                "queue": self.queue,
                "running": self._busy,
                "waiting": len(self._tasks),
                "threads": self._threads,
                "refused": self.refused,
            }
        if self.backlog_limit is not None:
            status["backlog_limit"] = self.backlog_limit
        return status

    def _work(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # the count must follow the threads, or calls wait for none
            log.exception("offload lane %s: a worker died", self.name)
            self._lose_worker(exc)
            raise

    def _serve(self) -> None:
        parked = native_lock()
        parked.acquire()
        mutex = self._mutex
        while True:
            # `with`: whatever raises in here (a MemoryError) leaves the mutex
            # free for _work's _lose_worker, instead of deadlocking the lane.
            with mutex:
                if self._threads > self.workers:  # shrunk by resize()
                    self._threads -= 1
                    return
                task = self._tasks.popleft() if self._tasks else None
                if task is None:
                    self._idle.append(parked)
                else:
                    self._busy += 1
            if task is None:
                parked.acquire()  # until submit() or resize() releases it
                continue
            fn, args, done = task
            del task
            try:
                outcome = (True, fn(*args))
            except BaseException as exc:  # delivered to the caller's future, worker lives on
                outcome = (False, exc)
            del fn, args
            with mutex:
                self._busy -= 1
            try:
                done(*outcome)
            except Exception:
                log.exception("delivering an offloaded call's outcome failed")
            del done, outcome


_lanes: dict[str, OffloadPool] = {}
_lanes_lock = threading.Lock()


def lane_pool(lane: OffloadLane) -> OffloadPool:
    """The process's pool for `lane` (made on first use with the current limits)."""
    pool = _lanes.get(lane)
    if pool is not None:
        return pool
    with _lanes_lock:
        if not _lanes:
            _lanes["client"] = OffloadPool("client", DEFAULT_WORKERS, DEFAULT_QUEUE)
            _lanes["changes"] = OffloadPool("changes", DEFAULT_CHANGES_WORKERS, None)
            _lanes["changes"].backlog_limit = DEFAULT_CHANGES_BACKLOG
            _lanes["system"] = OffloadPool("system", DEFAULT_SYSTEM_WORKERS, None)
    try:
        return _lanes[lane]
    except KeyError:
        raise ValueError(
            f"unknown offload lane {lane!r}: 'client', 'changes' or 'system'"
        ) from None


def check_admission() -> None:
    """Refuse a new change (Overloaded) while the changes lane has `backlog` calls.

    Called before anything of the change runs: by the journal's submit before
    it accepts. Never inside a journaled method: that runs after acceptance
    (and again in crash recovery), where a refusal would fail accepted work.
    """
    pool = lane_pool("changes")
    limit = pool.backlog_limit
    if limit is not None and pool.backlog() >= limit:
        pool.refused += 1
        raise Overloaded("changes", pool.workers, limit)


def configure_offload(
    *,
    workers: int = DEFAULT_WORKERS,
    queue: int = DEFAULT_QUEUE,
    system_workers: int = DEFAULT_SYSTEM_WORKERS,
    changes_workers: int = DEFAULT_CHANGES_WORKERS,
    changes_backlog: int = DEFAULT_CHANGES_BACKLOG,
) -> None:
    """Size the process's lanes: `workers` and `queue` of the client lane,
    `changes_workers` and the admission `changes_backlog` of the
    changes lane, `system_workers` of the system lane. Process-wide: the
    last call wins."""
    if changes_backlog < 1:
        raise ValueError("changes_backlog must be at least 1")
    lane_pool("client").resize(workers, queue)
    lane_pool("changes").resize(changes_workers, None)
    lane_pool("changes").backlog_limit = changes_backlog
    lane_pool("system").resize(system_workers, None)


def offload_status() -> dict[str, dict[str, Any]]:
    """Each lane's limits and load: workers, queue, running, waiting, threads, refused."""
    return {lane: lane_pool(lane).status() for lane in ("client", "changes", "system")}
