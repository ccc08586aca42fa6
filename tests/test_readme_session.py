"""The README's session, command by command, against a real actorsd on the default config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.daemon import ROOT, running_actorsd


def _ctl(endpoint: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bin" / "actorsctl"), "--endpoint", endpoint, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_the_readme_share_session(tmp_path):
    env = {"ACTORS_STATE_DIR": str(tmp_path / "state")}
    with running_actorsd(None, tmp_path / "log", "gevent", env, cwd=tmp_path) as (proc, endpoint):

        def ok(*args: str) -> str:
            done = _ctl(endpoint, tmp_path, *args)
            assert done.returncode == 0, (args, done.stderr)
            return done.stdout

        made = ok(
            "call", "local", "create_share", "--arg", "share_id=projects", "--arg", "size_gb:=10"
        )
        assert "available" in made and "projects" in made
        export = tmp_path / "state" / "shares" / "shares" / "projects"
        (export / "notes.txt").write_text("monday's notes\n")
        snap = ok(
            "call", "local", "create_snapshot", "--arg", "share_id=projects",
            "--arg", "snapshot_id=monday",
        )  # fmt: skip
        assert "monday" in snap and "available" in snap
        ok(
            "call", "local", "allow_access", "--arg", "share_id=projects",
            "--json", '{"rule": {"access_to": "10.0.0.0/24", "access_level": "rw"}}',
        )  # fmt: skip
        listed = ok("call", "local", "list_shares")
        assert listed.splitlines()[0] == "shares:"  # a nested list is a labelled table
        assert listed.splitlines()[1].split()[:4] == ["ID", "BACKEND", "NAME", "SIZE_GB"]
        assert "projects" in listed and "COUNT" not in listed and "count  1" in listed
        shown = json.loads(ok("--output", "json", "call", "local", "get_share", "--arg",
                              "share_id=projects"))  # fmt: skip
        assert [s["id"] for s in shown["snapshots"]] == ["monday"]
        assert shown["access_rules"] == [{"access_to": "10.0.0.0/24", "access_level": "rw"}]
        services = ok("services")
        assert "local" in services and " up " in services
        refused = _ctl(endpoint, tmp_path, "call", "local", "create_share", "--arg",
                       "share_id=huge", "--arg", "size_gb:=500")  # fmt: skip
        assert refused.returncode == 1 and refused.stderr.startswith("QuotaExceeded:")
        exports = (tmp_path / "state" / "shares" / "exports").read_text()
        assert f"{export.resolve()} 10.0.0.0/24(rw,sync,no_subtree_check)" in exports
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
