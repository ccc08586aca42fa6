"""Under gevent's monkey-patching (as in actorsd) the journal never blocks the hub."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    from gevent import monkey; monkey.patch_all()
    import json, subprocess, sys, time
    import gevent
    from actors.registry import Registry, sqlite_url_for
    from actors.registry.journal import Journal

    registry = Registry(sqlite_url_for(sys.argv[1]))
    registry.upgrade()
    journal = Journal(registry)
    path = registry.url.removeprefix("sqlite:///")
    # Another process holds the database's write lock for a while.
    locker = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
         "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(1.5);"
         "c.execute('COMMIT')", path],
        stdout=subprocess.PIPE,
    )
    locker.stdout.readline()
    ticks = []
    def ticker():
        while not done.done():
            gevent.sleep(0.01)
            ticks.append(time.monotonic())
    done = journal.accept("h@b1", "m", {"x": 1})
    started = time.monotonic()
    gevent.spawn(ticker).join(timeout=30)
    record = done.result(timeout=30)
    waited = time.monotonic() - started
    locker.wait(30)
    journal.close()
    registry.close()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])] or [waited]
    print(json.dumps({"state": record.state, "waited": waited, "ticks": len(ticks),
                      "max_gap": max(gaps)}))
    """
)


def test_a_lock_wait_in_the_journal_leaves_the_hub_running(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["state"] == "accepted"
    assert result["waited"] > 1.0  # the accept really waited for the other process's lock
    # ...and meanwhile other greenlets kept running: no stall anywhere near that wait.
    assert result["ticks"] > 20 and result["max_gap"] < result["waited"] / 2
