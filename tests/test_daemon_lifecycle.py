"""A real actorsd: SIGTERM drains in-flight work, a second signal cuts it, sd_notify."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from actors.registry import Registry, sqlite_url_for
from tests.daemon import ROOT, start_actorsd, wait_for
from transport.client import RpcClient
from transport.errors import ServerDraining

RUNTIMES = ["gevent", "threading"]


def _config(tmp_path: Path, grace: float) -> Path:
    config = tmp_path / "service.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            host = "node1"
            state_dir = "{tmp_path / "state"}"
            graceful_shutdown_timeout = {grace}
            enabled_backends = ["slow"]
            [supervision]
            shutdown_timeout = 2.0
            [backends.slow]
            manager = "tests.support:SlowManager"
            driver = "tests.support:SlowDriver"
            options = {{ root = "{tmp_path / "work"}" }}
            driver_supervision = {{ shutdown_timeout = 1.0 }}
            """
        )
    )
    return config


def _running(client: RpcClient) -> bool:
    listed = client.call("$service", "operations", {"state": "running"})["operations"]
    return bool(listed)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_sigterm_lets_the_running_operation_finish_and_refuses_new_work(tmp_path, runtime):
    proc, endpoint = start_actorsd(_config(tmp_path, grace=30), tmp_path / "log", runtime)
    try:
        with RpcClient(endpoint, timeout=20) as client:
            long = client.call_async("slow", "work", {"item": "long", "seconds": 1.5})
            wait_for(lambda: _running(client), "the long operation to run")
            proc.send_signal(signal.SIGTERM)
            wait_for(lambda: "draining" in (tmp_path / "log").read_text(), "the drain to begin")
            with pytest.raises(ServerDraining) as refused:
                client.call("slow", "work", {"item": "late", "seconds": 0.1})
            assert refused.value.retryable
            assert client.ping()["managers"] == ["node1@slow"]  # still answers pings
            assert long.result() == {"item": "long"}  # finished, not cut
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert (tmp_path / "work" / "long").read_text() == "done\n"
    assert not (tmp_path / "work" / "late").exists()
    log = (tmp_path / "log").read_text()
    assert "actorsd: stopped" in log and "work in flight" not in log


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_second_signal_stops_at_once_and_journals_the_cut_operation(tmp_path, runtime):
    proc, endpoint = start_actorsd(_config(tmp_path, grace=60), tmp_path / "log", runtime)
    try:
        with RpcClient(endpoint, timeout=10) as client:
            op_id = client.cast("slow", "work_once", {"item": "endless", "seconds": 30})
            assert op_id is not None
            wait_for(lambda: _running(client), "the operation to run")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "draining" in (tmp_path / "log").read_text(), "the drain to begin")
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert time.monotonic() - started < 20  # not the 60 s grace, nor the 30 s sleep
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "work in flight" in (tmp_path / "log").read_text()
    from actors.registry import Registry, sqlite_url_for
    from actors.registry.journal import Journal

    registry = Registry(sqlite_url_for(tmp_path / "state"))
    try:
        with Journal(registry) as journal:
            record = journal.get(op_id["operation"])
    finally:
        registry.close()
    assert record is not None and record.state == "interrupted", record


def _messages(sock: socket.socket, until: str, deadline: float) -> list[str]:
    seen: list[str] = []
    while not any(until in m for m in seen):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {until!r} from actorsd; got {seen}")
        sock.settimeout(remaining)
        seen.append(sock.recv(4096).decode())
    return seen


def test_sd_notify_ready_watchdog_and_stopping(tmp_path):
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        env: dict[str, Any] = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "300000"}
        proc, _ = start_actorsd(_config(tmp_path, grace=5), tmp_path / "log", "gevent", env)
        try:
            deadline = time.monotonic() + 30
            ready = _messages(sock, "READY=1", deadline)[-1].split("\n")
            assert f"MAINPID={proc.pid}" in ready
            assert any(f.startswith("STATUS=serving 1 backend") for f in ready)
            pings = []
            while len(pings) < 3:  # WATCHDOG_USEC/2 = 0.15 s between pings
                pings += [m for m in _messages(sock, "WATCHDOG=1", deadline) if "WATCHDOG" in m]
            proc.send_signal(signal.SIGTERM)
            stopping = _messages(sock, "STOPPING=1", deadline)
            assert any("STOPPING=1" in m for m in stopping)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_a_second_daemon_on_the_same_state_or_port_refuses_before_touching_anything(tmp_path):
    """Exit 2 with a one-line reason; the running daemon's rows and files are untouched."""
    first_dir = tmp_path / "first"
    first_dir.mkdir()
    proc, endpoint = start_actorsd(None, tmp_path / "first.log", "gevent", cwd=first_dir)
    try:
        client = RpcClient(endpoint, timeout=10)
        try:
            client.call("local", "create_share", {"share_id": "s1", "size_gb": 1})

            def second(cwd: Path, bind: str) -> subprocess.CompletedProcess[str]:
                cwd.mkdir(exist_ok=True)
                return subprocess.run(
                    [sys.executable, str(ROOT / "bin" / "actorsd"), "--bind", bind],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    cwd=cwd,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )

            # The same state directory (the same service identity): refused at once.
            same_state = second(first_dir, "tcp://127.0.0.1:0")
            assert same_state.returncode == 2, same_state.stderr
            assert f"held by process {proc.pid}" in same_state.stderr
            assert "driver ready" not in same_state.stderr
            # The same port from elsewhere: refused before its state is created.
            port = endpoint.rsplit(":", 1)[1]
            elsewhere = tmp_path / "elsewhere"
            same_port = second(elsewhere, f"tcp://127.0.0.1:{port}")
            assert same_port.returncode == 2, same_port.stderr
            assert "BindError" in same_port.stderr
            assert not (elsewhere / "state").exists()
            # The first daemon serves on, its share and its registry row intact.
            shares = client.call("local", "list_shares", {})
            assert [s["id"] for s in shares["shares"]] == ["s1"]
            assert (first_dir / "state" / "shares" / "shares" / "s1").is_dir()
            registry = Registry(sqlite_url_for(first_dir / "state"))
            try:
                # Its row is its own: up (heartbeats may still be starting), its endpoint.
                [row] = wait_for(
                    lambda: [r for r in registry.services() if r.is_up], "the first row up"
                )
                assert row.endpoint == endpoint and len(registry.services()) == 1
            finally:
                registry.close()
        finally:
            client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_actorsd_serves_metrics_and_refuses_a_taken_metrics_port(tmp_path, runtime):
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    log = tmp_path / "log"
    extra = ("--metrics-bind", "127.0.0.1:0")
    proc, endpoint = start_actorsd(None, log, runtime, cwd=tmp_path, extra=extra)
    try:
        [url] = [line.split("metrics on ")[1] for line in log.read_text().splitlines()
                 if " actorsd: " in line and "metrics on " in line]  # fmt: skip
        with RpcClient(endpoint, timeout=10) as client:
            client.call("local", "create_share", {"share_id": "s1", "size_gb": 1})
        with urllib.request.urlopen(url, timeout=10) as reply:
            families = {f.name: f for f in text_string_to_metric_families(reply.read().decode())}
        [driver] = [s for s in families["actors_driver_ready"].samples]
        assert driver.labels["backend"].endswith("@local") and driver.value == 1
        calls = [s for s in families["actors_rpc_events"].samples if s.labels["event"] == "call"]
        assert [s.value for s in calls] == [1.0]
        assert {s.labels["actor"] for s in families["actors_actor_up"].samples} >= {
            driver.labels["backend"],
            driver.labels["backend"] + "/driver",
        }
        # A second daemon asking for the same metrics port: refused before it starts.
        port = url.rsplit(":", 1)[1].split("/")[0]
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        taken = subprocess.run(
            [sys.executable, str(ROOT / "bin" / "actorsd"), "--bind", "tcp://127.0.0.1:0",
             "--metrics-bind", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, cwd=elsewhere,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert taken.returncode == 2, taken.stderr
        assert f"cannot serve metrics on 127.0.0.1:{port}" in taken.stderr
        assert len(taken.stderr.strip().splitlines()) == 1
        assert not (elsewhere / "state").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
