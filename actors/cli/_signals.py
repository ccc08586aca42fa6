"""Signals that arrive while `actorsd` is still starting.

`actorsd` installs these handlers first thing, before its slow imports, and
the daemon body (`_daemon.py`) reads what they recorded once it serves. A
module of its own so that neither of the two imports the other.
"""

from __future__ import annotations

import signal

EARLY_STOP: list[int] = []
"""SIGTERM/SIGINT received while starting: the daemon stops once it serves."""


def hold_signals_while_starting() -> None:
    """First thing, before the slow imports: no signal kills a starting daemon.

    SIGHUP and SIGUSR1 would terminate it (their default action) and SIGINT
    would raise KeyboardInterrupt anywhere; they are ignored, or for
    SIGTERM/SIGINT remembered, until the daemon's own handlers replace these.
    """
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, _frame: EARLY_STOP.append(received))
    for signum in (signal.SIGHUP, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)
