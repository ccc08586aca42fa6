"""The commands a newcomer runs: the demo, actorsd and actorsctl."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_demo_performs_real_operations(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "actors.examples.demo", str(tmp_path / "root")],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "create alpha" in out.stdout and "refused: UnsafeName" in out.stdout
    assert "stopped cleanly" in out.stdout
    assert (tmp_path / "root" / "alpha" / "README").read_text() == "hello alpha\n"
    assert not (tmp_path / "root" / "beta").exists()


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "service.toml"
    path.write_text(textwrap.dedent(body))
    return path


GOOD = """
    host = "node1"
    enabled_backends = ["files"]
    [backends.files]
    manager = "actors.examples.files:DirectoryManager"
    driver = "actors.examples.files:DirectoryDriver"
    options = { root = "ROOT" }
"""


def test_actorsctl_check_config(tmp_path):
    good = _config(tmp_path, GOOD.replace("ROOT", str(tmp_path)))
    ok = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "actorsctl"), "check-config", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert ok.returncode == 0, ok.stderr
    assert '"backends": ["node1@files"]' in ok.stdout
    bad = _config(tmp_path, GOOD.replace('options = { root = "ROOT" }', "options = {}"))
    out = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "actorsctl"), "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert out.returncode == 1
    assert "ConfigError" in out.stderr and "backends.files.options.root" in out.stderr


def test_actorsd_bad_config_exits_2_with_one_line_reason(tmp_path):
    bad = _config(tmp_path, "mailbox_capacity = -1\n")
    out = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "actorsd"), "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "mailbox_capacity" in out.stderr


@pytest.mark.parametrize("runtime", ["gevent", "threading"])
def test_actorsd_runs_until_sigterm_and_exits_0(tmp_path, runtime):
    config = _config(tmp_path, GOOD.replace("ROOT", str(tmp_path / "root")))
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bin" / "actorsd"),
            "--config",
            str(config),
            "--runtime",
            runtime,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert proc.stderr is not None
        line = ""
        for line in proc.stderr:
            if "running backends" in line:
                break
        assert "node1@files" in line
        assert (tmp_path / "root").is_dir()  # driver setup ran
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "actorsd: stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
