"""The interpreter's own threads and locks, even after gevent's monkey-patching.

A thread that must run beside the hub (offload workers, the log writer, the
database watchdog) is started here, so that it is a real OS thread, and its
locks come from here, so that waiting on one never parks a greenlet.
"""

from __future__ import annotations

import _thread
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["native_lock", "start_native_thread"]


def _patched_originals() -> tuple[Callable[..., Any], Callable[[], Any]] | None:
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        start, allocate = monkey.get_original("_thread", ["start_new_thread", "allocate_lock"])
        return start, allocate
    return None


def start_native_thread(target: Callable[[], None], name: str) -> None:
    """Run `target` in a new daemon OS thread (named `name` where threading names it)."""
    originals = _patched_originals()
    if originals is not None:
        originals[0](target, ())
    else:
        threading.Thread(target=target, name=name, daemon=True).start()


def native_lock() -> Any:
    """A lock of the OS, never gevent's (a native thread may release it)."""
    originals = _patched_originals()
    return originals[1]() if originals is not None else _thread.allocate_lock()
