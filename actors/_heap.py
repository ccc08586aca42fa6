"""Give memory that malloc keeps free back to the OS (glibc only).

A daemon's resident memory follows the most clients ever connected at once:
each peer holds about 64 KB of libzmq state, and glibc's malloc keeps the
freed heap for reuse after the peer leaves (docs/architecture.md, known
limits). `trim_heap()` returns that free memory with `malloc_trim(0)` when
there is enough of it to matter. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

from actors.runtime import ActorFuture, Runtime

__all__ = ["HeapTrimmer", "free_heap_bytes", "trim_heap"]

log = logging.getLogger(__name__)

TRIM_ABOVE = 32 << 20
"""Free heap bytes below which trimming is not worth a pass over the heap."""


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> tuple[Any, Any]:
    """glibc's malloc_trim and mallinfo2 (None for what is missing)."""
    try:
        libc = ctypes.CDLL(None)
        malloc_trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc
        return None, None
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    mallinfo2 = getattr(libc, "mallinfo2", None)  # glibc >= 2.33
    if mallinfo2 is not None:
        mallinfo2.restype = _MallInfo2
    return malloc_trim, mallinfo2


_MALLOC_TRIM, _MALLINFO2 = _libc()


def free_heap_bytes() -> int | None:
    """Bytes malloc holds free in its heap (None where it cannot be told)."""
    if _MALLINFO2 is None:
        return None
    return int(_MALLINFO2().fordblks)


def trim_heap(above: int = TRIM_ABOVE) -> bool | None:
    """`malloc_trim(0)` if more than `above` bytes are free; whether memory went back.

    False when there was too little free to bother (or nothing could be
    returned), None where unsupported (not glibc). On a glibc without
    mallinfo2 (< 2.33) it trims without looking first. Takes a few
    milliseconds on a heap of a few hundred MB: run it off the actors.
    """
    if _MALLOC_TRIM is None:
        return None
    free = free_heap_bytes()
    if free is not None and free <= above:
        return False
    released = bool(_MALLOC_TRIM(0))
    log.debug("malloc_trim with %s free heap bytes: %s", free, released)
    return released


class HeapTrimmer:
    """The ServiceActor's periodic heap trim: one at a time, off the actors.

    Connection churn leaves libzmq's freed per-peer buffers in malloc's heap;
    without a trim now and then, resident memory stays at its high-water
    mark. Called in the ServiceActor's mailbox every `memory_trim_interval`.
    """

    def __init__(self) -> None:
        self._trimming: ActorFuture[Any] | None = None  # the trim under way

    def trim(self, runtime: Runtime) -> ActorFuture[Any]:
        """Run `trim_heap` on the system lane; asked while one runs, that one's future."""
        if self._trimming is not None and not self._trimming.done():
            return self._trimming  # one trim at a time, whatever the interval
        self._trimming = runtime.offload(trim_heap, lane="system")
        return self._trimming
