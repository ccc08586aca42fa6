"""Log output for the daemon (and for apps that embed the framework): formats and a handler.

Three formats, one line per record, each naming the actor a line comes from
(`BaseActor.log` sets the record's `actor`):

- `text`: `2026-01-02 03:04:05,678 INFO share_service.manager [node1@local]: ...`
- `journald`: no timestamp (the journal stamps lines itself) and the level as
  a `<N>` syslog prefix, which journald reads as the entry's priority;
- `json`: one object per line (`ts`, `level`, `logger`, `actor`, `message`,
  `exc`), for log shippers.

`auto` picks `journald` when stderr is the journal's stream (systemd sets
`$JOURNAL_STREAM`), else `text`.

`DrainingHandler` writes from a thread of its own: a greenlet that logs only
appends the record to a bounded deque and wakes that thread with a lock
release, neither of which can block. Under gevent, handlers that lock (all
of `logging`'s) shared by greenlets and native worker threads can hang the
hub: a greenlet waits on a lock a native thread holds, or the reverse,
forever (issue #21). The same thread folds repeated warnings and errors:
the first is written, identical ones within `repeat_window` seconds are
counted, and the count is written once the window closes.
"""

from __future__ import annotations

import atexit
import collections
import copy
import datetime
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any, Literal

from actors._native import native_lock, start_native_thread

__all__ = [
    "FORMATS",
    "DrainingHandler",
    "JournaldFormatter",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "formatter_for",
    "stderr_is_journal",
]

LogFormat = Literal["auto", "text", "json", "journald"]
FORMATS: tuple[str, ...] = ("auto", "text", "json", "journald")

QUIET_LOGGERS = ("alembic",)
"""Libraries whose INFO lines say nothing an operator needs (alembic: ~8 per start)."""


def _actor(record: logging.LogRecord) -> str | None:
    actor = getattr(record, "actor", None)
    return None if actor is None else str(actor)


class TextFormatter(logging.Formatter):
    """`TIME LEVEL logger [actor]: message`, the actor left out when there is none."""

    def __init__(self, *, timestamps: bool = True) -> None:
        super().__init__("%(asctime)s " if timestamps else "")
        self._timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        actor = _actor(record)
        where = f"{record.name} [{actor}]" if actor else record.name
        line = f"{record.levelname} {where}: {record.getMessage()}"
        if self._timestamps:
            line = f"{self.formatTime(record)} {line}"
        extra = self._exception(record)
        return f"{line}\n{extra}" if extra else line

    def _exception(self, record: logging.LogRecord) -> str:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        parts = [p for p in (record.exc_text, record.stack_info) if p]
        return "\n".join(parts)


_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournaldFormatter(TextFormatter):
    """`<N>logger [actor]: message`: journald takes N as the priority and adds the time.

    A traceback's lines follow on the same entry's continuation lines, each
    with the same prefix so journald files them at the record's priority.
    """

    def __init__(self) -> None:
        super().__init__(timestamps=False)

    def format(self, record: logging.LogRecord) -> str:
        priority = _SYSLOG_PRIORITY.get(record.levelno)
        if priority is None:
            priority = 7 if record.levelno < logging.INFO else 4
        text = super().format(record).removeprefix(f"{record.levelname} ")
        return "\n".join(f"<{priority}>{line}" for line in text.split("\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        data: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "actor": _actor(record),
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exc"] = record.exc_text
        repeated = getattr(record, "repeated", None)
        if repeated is not None:
            data["repeated"] = repeated
        return json.dumps(data, default=str)


def stderr_is_journal(stream: IO[str] | None = None) -> bool:
    """True when `stream` (stderr) is connected to the journal (`$JOURNAL_STREAM`, see
    systemd.exec(5)): its device and inode are the ones systemd put there."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = expected.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        stat = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (stat.st_dev, stat.st_ino) == (int(device), int(inode))


def formatter_for(fmt: str, stream: IO[str] | None = None) -> logging.Formatter:
    """The formatter of a format name (`auto` resolved against `stream`)."""
    if fmt == "auto":
        fmt = "journald" if stderr_is_journal(stream) else "text"
    if fmt == "json":
        return JsonFormatter()
    if fmt == "journald":
        return JournaldFormatter()
    if fmt == "text":
        return TextFormatter()
    raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")


class DrainingHandler(logging.Handler):
    """Hands records to a native thread that writes them; `handle` never blocks.

    `capacity` bounds the records waiting; past it, records are dropped and
    the drop count is written when there is room again. `flush()` and
    `close()` write what is waiting (`close` also ends the thread).
    """

    def __init__(
        self,
        target: logging.Handler,
        *,
        capacity: int = 10_000,
        repeat_window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.target = target
        self.capacity = capacity
        self.repeat_window = repeat_window
        self._clock = clock
        self._records: collections.deque[logging.LogRecord] = collections.deque()
        self._dropped = 0
        self._closed = False
        # key -> [first seen, suppressed count, level record], in the writer thread only
        self._repeats: dict[tuple[str, int, str], list[Any]] = {}
        self._wake = native_lock()  # released = "records wait"; released from any thread
        self._wake.acquire()
        self._done = native_lock()
        self._done.acquire()
        start_native_thread(self._write_forever, "actors-log-writer")
        atexit.register(self.close)

    def createLock(self) -> None:  # logging's name for it
        self.lock = None  # handle() takes no lock: emit is an append

    def emit(self, record: logging.LogRecord) -> None:
        if self._closed:
            return
        if len(self._records) >= self.capacity:
            self._dropped += 1  # approximate under races; only ever reported
            return
        try:  # its arguments may change once the caller goes on: the text now
            record.msg, record.args = record.getMessage(), None
        except Exception:  # a format that does not fit its arguments: logging's report
            self.handleError(record)
            return
        self._records.append(record)  # atomic: no lock
        self._signal()

    def _signal(self) -> None:
        try:
            self._wake.release()
        except RuntimeError:  # already released: the writer will look anyway
            pass

    def flush(self) -> None:
        """Write what waits now (in the calling thread if the writer has stopped)."""
        if self._closed:
            self._drain(final=True)
        else:
            self._signal()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._signal()
        if not self._done.acquire(timeout=5.0):  # the writer is stuck: write from here
            self._drain(final=True)
        self.target.close()
        super().close()

    # -- the writer thread ------------------------------------------------------------------
    def _write_forever(self) -> None:
        try:
            while not self._closed:
                self._wake.acquire(timeout=min(self.repeat_window, 1.0))
                self._drain(final=False)
            self._drain(final=True)
        finally:
            self._done.release()

    def _drain(self, *, final: bool) -> None:
        while self._records:
            record = self._records.popleft()
            if not self._folded(record):
                self._write(record)
        dropped, self._dropped = self._dropped, 0
        if dropped:
            self._write(self._note(f"{dropped} log record(s) dropped: the log could not keep up"))
        self._report_repeats(final)

    def _folded(self, record: logging.LogRecord) -> bool:
        """True if `record` repeats a warning or error written within the window."""
        if record.levelno < logging.WARNING:
            return False
        key = (record.name, record.levelno, record.getMessage())
        now = self._clock()
        seen = self._repeats.get(key)
        if seen is None:
            self._repeats[key] = [now, 0, record]
            return False
        seen[1] += 1
        seen[2] = record
        return True

    def _report_repeats(self, final: bool) -> None:
        now = self._clock()
        for key, (first, count, record) in list(self._repeats.items()):
            if not final and now - first < self.repeat_window:
                continue
            del self._repeats[key]
            if count:
                summary = copy.copy(record)
                summary.msg = f"{key[2]} (repeated {count} more time(s) in {now - first:.0f}s)"
                summary.repeated = count
                summary.exc_info, summary.exc_text, summary.stack_info = None, None, None
                self._write(summary)
                if not final:  # still repeating: count the next window from now
                    self._repeats[key] = [now, 0, record]

    def _note(self, message: str) -> logging.LogRecord:
        return logging.LogRecord("actors.logs", logging.WARNING, __file__, 0, message, None, None)

    def _write(self, record: logging.LogRecord) -> None:
        try:
            if record.levelno >= self.target.level:
                self.target.handle(record)
        except Exception:  # a broken stream must not end the writer
            self.target.handleError(record)


def configure_logging(
    level: str | int = "INFO",
    fmt: str = "auto",
    *,
    stream: IO[str] | None = None,
    repeat_window: float = 60.0,
) -> DrainingHandler:
    """Send the root logger's records to `stream` (stderr) in `fmt`, through a DrainingHandler.

    Replaces the root logger's handlers; quiets QUIET_LOGGERS to WARNING
    unless `level` is DEBUG. Returns the handler (close it to stop its thread).
    """
    stream = stream or sys.stderr
    target = logging.StreamHandler(stream)
    target.setFormatter(formatter_for(fmt, stream))
    handler = DrainingHandler(target, repeat_window=repeat_window)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    quiet_libraries(root.level)
    return handler


def quiet_libraries(level: int) -> None:
    """Libraries' INFO chatter off, unless the level asks for DEBUG."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(
            logging.NOTSET if level <= logging.DEBUG else logging.WARNING
        )
