"""A log that says the same kind of thing at most once per interval.

For what a client can cause at will (malformed messages, refused casts):
without a limit, one misbehaving peer could flood the log and the disk.
Public: the transport logs bad peers with it, and the actor layer logs
refused casts with it (one copy of the mechanism).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """At most one record per category per interval, with a count of the rest.

    Categories should come from a bounded set (an actor and a method it
    exposes, a kind of error), never from raw client input.
    """

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self._lock = threading.Lock()

    def warn(self, category: str, message: str, *args: Any, exc_info: bool = False) -> None:
        self.log(logging.WARNING, category, message, *args, exc_info=exc_info)

    def log(
        self, level: int, category: str, message: str, *args: Any, exc_info: bool = False
    ) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(category)
            if last is not None and now - last < self.interval:
                self._suppressed[category] += 1
                return
            self._last[category] = now
            extra = self._suppressed.pop(category, 0)
        suffix = f" ({extra} more since last report)" if extra else ""
        self.logger.log(level, message + suffix, *args, exc_info=exc_info, stacklevel=3)
