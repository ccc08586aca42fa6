"""A client-side deadline for PostgreSQL statements: a stalled path never hangs a thread.

`statement_timeout` is enforced by the server, and TCP keepalives and
`tcp_user_timeout` by the kernel; none of them ends a wait on a path that
takes the bytes and never answers (a stalled proxy or pooler between us and
the server, a server stopped with SIGSTOP behind one). The watchdog ends such
a wait: a connection that has had a command in progress for `limit` seconds
on end (the server's own limit plus a margin, so that the server always
speaks first when it can) gets its socket shut down. libpq then fails at
once, the pool discards the connection, and the caller gets
DatabaseUnavailable instead of waiting forever.

One native thread samples the connections' state every `INTERVAL` seconds,
so any way of executing (SQLAlchemy, the driver connection, COMMIT) is
covered. A command in progress at two samples is the same command only if
no new one began in between: SQLAlchemy's statements, commits and
rollbacks, and what runs on the driver connection itself (`progress()`,
e.g. the journal's pipeline), count as new ones. Without that, a busy
connection sampled mid-statement every time read as one statement 15 s
long and was cut.
"""

from __future__ import annotations

import _socket
import logging
import os
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from actors._native import native_lock, start_native_thread

__all__ = ["INTERVAL", "progress", "watch_statements"]

log = logging.getLogger(__name__)

INTERVAL = 0.5
"""Seconds between samples of the connections in use."""

_ACTIVE = 1  # libpq's PQTRANS_ACTIVE: a command is in progress

# id(driver connection) -> [driver connection, limit, in progress since or None,
# commands begun (counted by progress()), that count at the last sample]
_watched: dict[Any, list[Any]] = {}
_lock = native_lock()
_started = False


def watch_statements(engine: Engine, limit: float) -> None:
    """End any command on `engine`'s connections that runs `limit` seconds on end.

    Every connection is watched from its opening to its closing, pooled or
    not (the pool's own liveness ping runs before a checkout completes).
    """

    def opened(dbapi_connection: Any, record: Any) -> None:
        with _lock:
            _watched[id(dbapi_connection)] = [dbapi_connection, limit, None, 0, 0]
        _start()

    def began(conn: Any, *rest: Any) -> None:
        if conn.invalidated:  # (its connection is gone; asking for it would raise)
            return
        try:
            dbapi_connection = conn.connection.dbapi_connection
        except Exception:  # closed meanwhile: nothing to count on
            return
        if dbapi_connection is not None:
            progress(dbapi_connection)

    def closed(dbapi_connection: Any, record: Any) -> None:
        with _lock:
            _watched.pop(id(dbapi_connection), None)

    event.listen(engine, "connect", opened)
    event.listen(engine, "before_cursor_execute", began)
    event.listen(engine, "commit", began)
    event.listen(engine, "rollback", began)
    event.listen(engine, "close", closed)
    event.listen(engine, "close_detached", lambda dbapi_connection: closed(dbapi_connection, None))


def progress(dbapi_connection: Any) -> None:
    """A new command begins on `dbapi_connection`: its deadline starts again.

    For code that runs commands on the driver connection itself, which
    SQLAlchemy's events do not see. A plain increment (a lost one under a race
    only delays a cut by a sample).
    """
    entry = _watched.get(id(dbapi_connection))
    if entry is not None:
        entry[3] += 1


def _start() -> None:
    global _started
    with _lock:
        if _started:
            return
        _started = True
    start_native_thread(_watch_forever, "actors-db-watchdog")


def _watch_forever() -> None:
    pause = native_lock()
    pause.acquire()
    while True:
        pause.acquire(timeout=INTERVAL)  # never released: a sleep that no patching changes
        try:
            _sample(time.monotonic())
        except Exception:  # never let the watchdog die of one odd connection
            log.exception("database watchdog: a sample failed")


def _sample(now: float) -> None:
    with _lock:  # a connection closed without the pool's word (dropped) is forgotten here
        for key in [k for k, (c, *_) in _watched.items() if getattr(c, "closed", True)]:
            del _watched[key]
        entries = list(_watched.values())
    for entry in entries:
        connection, limit, since, begun, seen = entry
        entry[4] = begun
        if _status(connection) != _ACTIVE:
            entry[2] = None
        elif since is None or begun != seen:  # a command began since the last sample
            entry[2] = now
        elif now - since >= limit:
            entry[2] = None
            _cut(connection, now - since)


def _status(connection: Any) -> int | None:
    try:
        return int(connection.pgconn.transaction_status)
    except Exception:  # closed, or not a psycopg connection
        return None


def _cut(connection: Any, waited: float) -> None:
    """Shut the connection's socket down: the blocked libpq call fails at once."""
    try:
        fd = connection.pgconn.socket
        duplicate = _socket.socket(fileno=os.dup(fd))  # not gevent's: this is a native thread
    except Exception:
        return  # it closed in the meantime
    try:
        duplicate.shutdown(_socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        duplicate.close()
    log.warning(
        "database statement in progress for %.0fs with no answer: its connection was cut"
        " (a stalled network path or proxy?)",
        waited,
    )
