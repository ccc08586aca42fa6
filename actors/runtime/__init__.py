"""Concurrency backends: `gevent` (daemon default) and `threading` (embedding).

Choose one by name with `get_runtime("gevent" | "threading")`, or pass a
`Runtime` instance. Both give the same actor semantics; the test suite runs on
both.

Blocking work (database I/O) runs through `Runtime.offload` in three
process-wide lanes of native threads: "client" (bounded: refused with
`Overloaded` when full), "changes" (the steps of admitted changes, bounded
at admission by `check_admission`) and "system" (the process's upkeep, never
refused); `configure_offload` sizes them.
"""

from __future__ import annotations

from actors.errors import ConfigError
from actors.runtime._base import Event, MailboxClosed, MailboxFull, Runtime
from actors.runtime._clock import Clock, TimerHandle, VirtualClock, call_repeatedly
from actors.runtime._future import ERROR, PENDING, VALUE, ActorFuture, Completion, Request
from actors.runtime._offload import (
    DEFAULT_CHANGES_BACKLOG,
    DEFAULT_CHANGES_WORKERS,
    DEFAULT_QUEUE,
    DEFAULT_SYSTEM_WORKERS,
    DEFAULT_WORKERS,
    OffloadLane,
    check_admission,
    configure_offload,
    offload_status,
)

RUNTIME_NAMES = ("gevent", "threading")

__all__ = [
    "DEFAULT_CHANGES_BACKLOG",
    "DEFAULT_CHANGES_WORKERS",
    "DEFAULT_QUEUE",
    "DEFAULT_SYSTEM_WORKERS",
    "DEFAULT_WORKERS",
    "ERROR",
    "PENDING",
    "RUNTIME_NAMES",
    "VALUE",
    "ActorFuture",
    "Clock",
    "Completion",
    "Event",
    "MailboxClosed",
    "MailboxFull",
    "OffloadLane",
    "Request",
    "Runtime",
    "TimerHandle",
    "VirtualClock",
    "call_repeatedly",
    "check_admission",
    "configure_offload",
    "get_runtime",
    "offload_status",
]


def get_runtime(runtime: str | Runtime = "gevent", *, clock: Clock | None = None) -> Runtime:
    """Return a runtime by name (a Runtime instance is returned unchanged)."""
    if isinstance(runtime, Runtime):
        return runtime
    if runtime == "gevent":
        from actors.runtime._gevent import GeventRuntime

        return GeventRuntime(clock)
    if runtime == "threading":
        from actors.runtime._threading import ThreadingRuntime

        return ThreadingRuntime(clock)
    raise ConfigError(
        f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIME_NAMES)}", key="runtime"
    )
