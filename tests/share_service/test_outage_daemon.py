"""A registry outage under load, on a real daemon: recorded as documented, logged once."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

from actors.errors import ActorsError
from actors.registry import Registry, sqlite_url_for
from actors.registry.journal import Journal
from actors.testing._outage import sqlite_outage
from tests.daemon import start_actorsd, wait_for
from tests.share_service.scale import write_config
from transport.client import RpcClient
from transport.errors import TransportError


def _load(endpoint: str, stop: threading.Event, answers: list[str], name: str) -> None:
    with RpcClient(endpoint, timeout=10) as client:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                client.call("local", "create_share", {"share_id": f"{name}-{n}", "size_gb": 1})
                answers.append("ok")
            except (ActorsError, TransportError) as exc:
                answers.append(type(exc).__name__)


@pytest.mark.parametrize("runtime", ["gevent", "threading"])
def test_an_outage_under_load_records_nothing_refused_and_logs_once(tmp_path, runtime):
    config = write_config(tmp_path)
    log = tmp_path / "actorsd.log"
    proc, endpoint = start_actorsd(config, log, runtime)
    stop, answers = threading.Event(), []
    loads = [
        threading.Thread(target=_load, args=(endpoint, stop, answers, f"w{i}"), daemon=True)
        for i in range(4)
    ]
    try:
        for load in loads:
            load.start()
        wait_for(lambda: answers.count("ok") >= 20, "requests before the outage")
        with sqlite_outage(Path(sqlite_url_for(tmp_path / "state").removeprefix("sqlite:///"))):
            refused = len(answers)
            wait_for(lambda: len(answers) - refused >= 50, "requests during the outage")
            wait_for(lambda: "registry unavailable" in log.read_text(), "a heartbeat round")
        back = answers.count("ok")
        wait_for(lambda: answers.count("ok") >= back + 20, "requests after the outage")
        stop.set()
        for load in loads:
            load.join(15)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "DatabaseUnavailable" in answers  # refused during the outage, retryable
    text = log.read_text()
    # Logged once when it starts and once when it ends; no traceback per failed write.
    assert "Traceback" not in text
    assert text.count("registry unavailable") == 1
    assert text.count("journal writes fail") <= 1
    assert "could not record operation" not in text and "not recorded" not in text
    registry = Registry(sqlite_url_for(tmp_path / "state"))
    try:
        with Journal(registry) as journal:
            records = journal.list(limit=100_000)
    finally:
        registry.close()
    # A request refused at once left no row. One accepted just before the outage,
    # whose own database work then failed, is 'failed' with DatabaseUnavailable and
    # its key free (docs/operations.md); nothing ran for it: no share directory.
    shares = {p.name for p in (tmp_path / "root" / "shares").iterdir()}
    for record in records:
        assert record.state in ("succeeded", "failed"), record
        if record.state == "failed":
            assert record.error is not None
            assert record.error["type"] == "DatabaseUnavailable", record
            assert record.args["share_id"] not in shares
    # Every "ok" is a succeeded row; a call that timed out may have succeeded too
    # (a timeout never says the work did not happen), nothing else did.
    succeeded = sum(r.state == "succeeded" for r in records)
    timed_out = answers.count("DeadlineExceeded") + answers.count("RequestTimeout")
    assert answers.count("ok") <= succeeded <= answers.count("ok") + timed_out, answers
