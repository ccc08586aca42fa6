"""Socket loops: the only code that touches a server's or a green client's ZeroMQ socket.

A ZeroMQ socket must be used by one thread (and under gevent, by one hub). A
`SocketLoop` owns one socket and offers `send(frames)`; incoming messages go
to a callback.

- `GreenSocketLoop` (`_green_loop.py`): a plain socket waited on through
  gevent's hub, one reader greenlet and batched writes.
- `ThreadSocketLoop` (`_thread_loop.py`): one I/O thread that polls the socket
  and a wake-up pipe; other threads queue frames and poke the pipe.

A threaded client does without either: its callers use the socket themselves
(`_direct.py`).
"""

from __future__ import annotations

from typing import Any

from transport._green_loop import GreenSocketLoop
from transport._loop import (
    MONITORED,
    OnFrames,
    OnOversized,
    Shape,
    SocketFactory,
    SocketLoop,
    recv_message,
)
from transport._parked import Parked
from transport._thread_loop import ThreadSocketLoop

__all__ = [
    "MONITORED",
    "GreenSocketLoop",
    "OnFrames",
    "Parked",
    "Shape",
    "SocketFactory",
    "SocketLoop",
    "ThreadSocketLoop",
    "make_loop",
    "recv_message",
    "running_under_gevent",
]


def make_loop(
    green: bool,
    factory: SocketFactory,
    on_frames: OnFrames,
    name: str,
    context: Any = None,
    shape: Shape | None = None,
    on_oversized: OnOversized | None = None,
) -> SocketLoop:
    """The loop for the caller's concurrency model (sharing `context` if given)."""
    if green:
        return GreenSocketLoop(factory, on_frames, name, context, shape, on_oversized)
    return ThreadSocketLoop(factory, on_frames, name, context, shape, on_oversized)


def running_under_gevent() -> bool:
    """True when gevent has monkey-patched sockets (the daemon's setting)."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return bool(monkey.is_module_patched("socket"))
