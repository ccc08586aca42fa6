"""The client-side statement deadline: it cuts a command that stalls, not a busy connection."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from actors.registry import _watchdog as watchdog


def _connection() -> Any:
    """What the watchdog reads of a psycopg connection: a command in progress."""
    return SimpleNamespace(closed=False, pgconn=SimpleNamespace(transaction_status=1))


def test_a_connection_busy_with_one_short_command_after_another_is_not_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sampled mid-command every time, a busy connection used to read as one command
    as long as all of them together, and was cut after the limit (15 s)."""
    busy, stalled = _connection(), _connection()
    cut: list[Any] = []
    monkeypatch.setattr(watchdog, "_cut", lambda connection, waited: cut.append(connection))
    monkeypatch.setattr(
        watchdog,
        "_watched",
        {id(c): [c, 10.0, None, 0, 0] for c in (busy, stalled)},
    )
    for second in range(30):
        watchdog.progress(busy)  # a new command began since the last sample
        watchdog._sample(float(second))
    assert cut == [stalled, stalled]  # at 10 s, and again 10 s after that
    watchdog.progress(object())  # a connection it does not watch: nothing to count
