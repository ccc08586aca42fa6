"""Daemon logs: each line names its actor, three formats, repeats folded, and a handler
that never blocks the code that logs (issue #21: the gevent logging-lock hang)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.logs import (
    DrainingHandler,
    JournaldFormatter,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    formatter_for,
)

ROOT = Path(__file__).resolve().parent.parent


class _Lines(logging.Handler):
    """Formats into a list, and can be held shut to play a stuck output."""

    def __init__(self, formatter: logging.Formatter | None = None) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.open = threading.Event()
        self.open.set()
        self.setFormatter(formatter or TextFormatter(timestamps=False))

    def emit(self, record: logging.LogRecord) -> None:
        assert self.open.wait(30), "the test never reopened the output"
        self.lines.append(self.format(record))


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("tests.logs")
    log.propagate, log.level = False, logging.DEBUG
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    log.propagate = True


def _actor_record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    record = logging.LogRecord("share_service.drivers.local", level, __file__, 1, message, (), None)
    record.actor = "node1@local/driver"
    return record


def test_every_format_names_the_actor():
    record = _actor_record("driver ready after 1 setup attempt(s)")
    text = TextFormatter().format(record)
    assert text.endswith(
        "INFO share_service.drivers.local [node1@local/driver]: "
        "driver ready after 1 setup attempt(s)"
    )
    assert text[:4].isdigit()  # the time first
    journald = JournaldFormatter().format(record)
    assert journald == (
        "<6>share_service.drivers.local [node1@local/driver]: driver ready after 1 setup attempt(s)"
    )  # the priority journald files it under, and no second timestamp
    data = json.loads(JsonFormatter().format(record))
    assert data["actor"] == "node1@local/driver" and data["level"] == "INFO"
    assert data["message"].startswith("driver ready") and data["ts"].endswith("Z")


def test_a_line_from_no_actor_has_no_brackets_and_errors_keep_their_priority():
    record = logging.LogRecord("actorsd", logging.ERROR, __file__, 1, "backend b failed", (), None)
    assert TextFormatter(timestamps=False).format(record) == "ERROR actorsd: backend b failed"
    assert JournaldFormatter().format(record) == "<3>actorsd: backend b failed"
    assert json.loads(JsonFormatter().format(record))["actor"] is None


def test_auto_is_journald_only_when_stderr_is_the_journal(tmp_path, monkeypatch):
    stream = (tmp_path / "err").open("w")
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert type(formatter_for("auto", stream)) is TextFormatter
    stat = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
    assert type(formatter_for("auto", stream)) is JournaldFormatter
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino + 1}")  # another stream
    assert type(formatter_for("auto", stream)) is TextFormatter
    stream.close()


def test_an_actor_logger_names_its_actor_in_json(tmp_path):
    """Through the real BaseActor.log adapter, as the daemon writes it."""
    from actors.actor import BaseActor

    class Named(BaseActor):
        name = "h@b"

    stream = io.StringIO()
    handler = configure_logging("INFO", "json", stream=stream)
    try:
        Named.log.fget(Named()).info("ready")  # type: ignore[attr-defined]
    finally:
        handler.close()
    [line] = [json.loads(x) for x in stream.getvalue().splitlines() if '"ready"' in x]
    assert line["actor"] == "h@b" and line["logger"] == __name__


def test_logging_never_waits_for_a_stuck_output(logger):
    """A blocked writer (a full pipe, a stalled journal) never blocks the caller."""
    output = _Lines()
    handler = DrainingHandler(output, capacity=50)
    logger.addHandler(handler)
    output.open.clear()
    done = threading.Event()

    def log_a_lot() -> None:
        for n in range(500):
            logger.info("line %d", n)
        done.set()

    threading.Thread(target=log_a_lot, daemon=True).start()
    assert done.wait(10), "logging blocked on the output"
    output.open.set()
    handler.close()
    assert output.lines[0] == "INFO tests.logs: line 0"
    assert any("log record(s) dropped" in line for line in output.lines)  # said, not silent
    assert len(output.lines) < 500


def test_a_repeated_error_is_written_once_then_with_a_count(logger):
    now = [0.0]
    output = _Lines()
    handler = DrainingHandler(output, repeat_window=60.0, clock=lambda: now[0])
    logger.addHandler(handler)
    for _ in range(5):
        logger.error("registry unavailable: database is locked")
    logger.info("an info line is never folded")
    logger.info("an info line is never folded")
    now[0] = 61.0
    handler.close()  # the count is written at the latest when the handler closes
    assert output.lines.count("ERROR tests.logs: registry unavailable: database is locked") == 1
    assert output.lines.count("INFO tests.logs: an info line is never folded") == 2
    [summary] = [line for line in output.lines if "repeated" in line]
    assert summary.startswith("ERROR tests.logs: registry unavailable: database is locked")
    assert "(repeated 4 more time(s) in " in summary


def test_gevent_starts_never_hang_while_worker_threads_log(tmp_path):
    """Issue #21: dozens of service starts under gevent, alembic logging at DEBUG from the
    registry's worker thread and two native threads logging all along: no start hangs.

    (With logging.basicConfig's StreamHandler instead, the same script hung at
    the 10th of 30 starts when this was written.)
    """
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "logs_startup_stress.py"), str(tmp_path), "24"],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome["starts"] == 24 and outcome["hangs"] == 0
    log = (tmp_path / "log.txt").read_text()
    assert "alembic" in log and "stress.native" in log


def test_a_bad_format_is_reported_as_logging_does_and_never_raises(monkeypatch):
    reported: list[logging.LogRecord] = []
    output = _Lines()
    handler = DrainingHandler(output)
    monkeypatch.setattr(handler, "handleError", reported.append)
    bad = logging.LogRecord("tests.logs", logging.INFO, __file__, 1, "%d apples", ("three",), None)
    good = logging.LogRecord("tests.logs", logging.INFO, __file__, 1, "fine", (), None)
    handler.handle(bad)  # returns: the caller goes on
    handler.handle(good)
    handler.close()
    assert [r.msg for r in reported] == ["%d apples"]
    assert output.lines == ["INFO tests.logs: fine"]
