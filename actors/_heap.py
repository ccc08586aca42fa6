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


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(None)
        mallinfo2, malloc_trim = libc.mallinfo2, libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (or older than 2.33)
        return None
    mallinfo2.restype = _MallInfo2
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    return libc


_LIBC = _libc()


def free_heap_bytes() -> int | None:
    """Bytes malloc holds free in its heap (None where it cannot be told)."""
    if _LIBC is None:
        return None
    return int(_LIBC.mallinfo2().fordblks)


def trim_heap(above: int = TRIM_ABOVE) -> bool | None:
    """`malloc_trim(0)` if more than `above` bytes are free; whether memory went back.

    False when there was too little free to bother (or nothing could be
    returned), None where unsupported. Takes a few milliseconds on a heap of
    a few hundred MB: run it off the actors.
    """
    free = free_heap_bytes()
    if free is None or _LIBC is None:
        return None
    if free <= above:
        return False
    released = bool(_LIBC.malloc_trim(0))
    log.debug("malloc_trim with %d free heap bytes: %s", free, released)
    return released
