"""systemd's notify protocol (sd_notify(3)) for `Type=notify` units, without libsystemd.

systemd passes a datagram socket in `$NOTIFY_SOCKET` (a path, or an abstract
name starting with '@'), and with `WatchdogSec=` the interval in
`$WATCHDOG_USEC` (for the process in `$WATCHDOG_PID`, when set). The daemon
sends `READY=1` once it serves, `RELOADING=1` (with `MONOTONIC_USEC`) when
SIGHUP makes it re-read its configuration, `WATCHDOG=1` at half the interval while it is
healthy, `STATUS=...` for `systemctl status`, and `STOPPING=1` when it begins
to stop. Outside systemd every call is a no-op. A failed send is logged once
and never stops the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["SystemdNotifier"]

log = logging.getLogger("actorsd.systemd")


class SystemdNotifier:
    """Sends sd_notify messages to the socket systemd gave this process (if any)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        if address is not None and address.startswith("@"):
            address = "\0" + address[1:]  # Linux abstract namespace
        self.address = address
        self.watchdog_interval: float | None = None
        usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
        ours = not pid or (pid.isdigit() and int(pid) == os.getpid())
        if address and usec and usec.isdigit() and int(usec) > 0 and ours:
            self.watchdog_interval = int(usec) / 1e6 / 2  # ping at half the limit
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send `fields` ("READY=1", "STATUS=...") as one message; False if not sent."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(1.0)
                sock.sendto(message, self.address)
        except OSError as exc:
            if not self._failed:
                log.error("sd_notify to %r failed (logged once): %s", self.address, exc)
                self._failed = True
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def reloading(self) -> bool:
        """RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC now), which systemd >= 253
        needs to match the reload with the READY=1 that ends it."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str) -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.watchdog_interval is not None and self.notify("WATCHDOG=1")
