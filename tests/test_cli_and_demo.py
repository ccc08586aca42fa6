"""The commands a newcomer runs: the demo, actorsd and actorsctl."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.daemon import start_actorsd

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


def _start_actorsd(config: Path, runtime: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bin" / "actorsd"),
            "--config",
            str(config),
            "--runtime",
            runtime,
            "--bind",
            "tcp://127.0.0.1:0",
            *extra,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "listening on" in line:
            endpoint = line.split("listening on ", 1)[1].split(";")[0].split(" ")[0]
            return proc, endpoint
    proc.wait(10)
    raise AssertionError(f"actorsd exited {proc.returncode} before listening")


def _ctl(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "bin" / "actorsctl"),
            "--endpoint",
            endpoint,
            "--timeout",
            "10",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )


@pytest.mark.parametrize("runtime", ["gevent", "threading"])
def test_actorsd_serves_actorsctl_until_sigterm(tmp_path, runtime):
    config = _config(tmp_path, GOOD.replace("ROOT", str(tmp_path / "root")))
    proc, endpoint = _start_actorsd(config, runtime)
    try:
        ping = _ctl(endpoint, "--output", "json", "ping")
        assert ping.returncode == 0, ping.stderr
        assert '"node1@files"' in ping.stdout
        made = _ctl(
            endpoint, "call", "files", "create", "--arg", "name=alpha", "--arg", "content=hi"
        )
        assert made.returncode == 0, made.stderr
        assert "kilobytes" in made.stdout  # a readable table by default
        assert (tmp_path / "root" / "alpha" / "README").read_text() == "hi"
        positional = _ctl(
            endpoint, "call", "files", "create", '{"name": "gamma"}', "--arg", "content=g"
        )
        assert positional.returncode == 0, positional.stderr  # ARGS as JSON, plus --arg
        assert (tmp_path / "root" / "gamma" / "README").read_text() == "g"
        listed = _ctl(endpoint, "--output", "json", "call", "node1@files", "list_items")
        assert '"count": 2' in listed.stdout
        refused = _ctl(endpoint, "call", "files", "create", "--json", '{"name": "../x"}')
        assert refused.returncode == 1
        assert "UnsafeName" in refused.stderr or "RemoteError" in refused.stderr
        missing = _ctl(endpoint, "call", "files", "no_such_method")
        assert missing.returncode == 1 and "MethodNotAllowed" in missing.stderr
        cast = _ctl(endpoint, "--output", "json", "cast", "files", "create", "--arg", "name=beta")
        assert cast.returncode == 0, cast.stderr
        op_id = json.loads(cast.stdout)["operation"]  # create is journaled
        shown = _ctl(endpoint, "--config", str(config), "--output", "json", "op", op_id)
        assert shown.returncode == 0, shown.stderr
        record = json.loads(shown.stdout)
        assert record["method"] == "create" and record["args"] == {"name": "beta"}
        assert record["state"] in ("accepted", "running", "succeeded")
        failed = _ctl(endpoint, "--config", str(config), "ops", "--state", "failed")
        assert failed.returncode == 0, failed.stderr
        assert "UnsafeName" in failed.stdout or "unsafe name" in failed.stdout
        assert "STATE" in failed.stdout and "node1@files" in failed.stdout
        unknown = _ctl(endpoint, "--config", str(config), "op", "no-such-op")
        assert unknown.returncode == 1 and "OperationNotFound" in unknown.stderr
        status = _ctl(endpoint, "status")
        assert status.returncode == 0, status.stderr
        assert "node1@files/driver" in status.stdout and "running" in status.stdout
        proc.send_signal(signal.SIGUSR1)  # the same dump, in the daemon's log
        listed = _ctl(endpoint, "--config", str(config), "--output", "json", "services")
        assert listed.returncode == 0, listed.stderr
        assert '"status": "up"' in listed.stdout and '"backend": "files"' in listed.stdout
        assert endpoint in listed.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        log = proc.stderr.read()
        assert "actorsd: stopped" in log and "status {'name': 'node1@files'" in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_actorsd_port_in_use_exits_2_with_one_line(tmp_path):
    import zmq

    ctx = zmq.Context()
    holder = ctx.socket(zmq.ROUTER)
    port = holder.bind_to_random_port("tcp://127.0.0.1")
    try:
        config = _config(tmp_path, GOOD.replace("ROOT", str(tmp_path / "root")))
        out = subprocess.run(
            [
                sys.executable,
                str(ROOT / "bin" / "actorsd"),
                "--config",
                str(config),
                "--bind",
                f"tcp://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
        assert out.returncode == 2
        reasons = [line for line in out.stderr.splitlines() if line.startswith("actorsd:")]
        assert len(reasons) == 1, out.stderr
        assert "BindError" in reasons[0] and "in use" in reasons[0]
    finally:
        holder.close(0)
        ctx.term()


def test_actorsd_refuses_non_loopback_without_curve(tmp_path):
    config = _config(tmp_path, GOOD.replace("ROOT", str(tmp_path / "root")))
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bin" / "actorsd"),
            "--config",
            str(config),
            "--bind",
            "tcp://0.0.0.0:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert out.returncode == 2
    reasons = [line for line in out.stderr.splitlines() if line.startswith("actorsd:")]
    assert len(reasons) == 1 and "InsecureBind" in reasons[0], out.stderr
    # Refused before anything started: no driver set up, no registry made.
    assert not (tmp_path / "root").exists()
    assert not list(tmp_path.rglob("*.db")) and not list(tmp_path.rglob("*.sqlite*"))


def test_curve_end_to_end_with_generated_keys(tmp_path):
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    for name in ("server", "operator"):
        out = subprocess.run(
            [
                sys.executable,
                str(ROOT / "bin" / "actorsctl"),
                "keys",
                "generate",
                str(keys),
                "--name",
                name,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
        assert out.returncode == 0, out.stderr
    allowed.mkdir()
    (allowed / "operator.key").write_text((keys / "operator.key").read_text())
    body = GOOD.replace("ROOT", str(tmp_path / "root")) + textwrap.dedent(f"""
        [transport]
        server_secret_key = "{keys / "server.key_secret"}"
        client_keys_dir = "{allowed}"
    """)
    proc, endpoint = _start_actorsd(_config(tmp_path, body), "gevent")
    try:
        curve = (
            "--client-key",
            str(keys / "operator.key_secret"),
            "--server-key",
            str(keys / "server.key"),
        )
        ok = _ctl(endpoint, *curve, "call", "files", "list_items")
        assert ok.returncode == 0, ok.stderr
        plain = subprocess.run(
            [
                sys.executable,
                str(ROOT / "bin" / "actorsctl"),
                "--endpoint",
                endpoint,
                "--timeout",
                "1",
                "ping",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
        assert plain.returncode == 75 and "DeadlineExceeded" in plain.stderr  # retryable
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_actorsd_patches_gevent_only_for_the_gevent_runtime(tmp_path, monkeypatch):
    from actors.cli.actorsd import _runtime_from

    config = tmp_path / "service.toml"
    config.write_text('runtime = "threading"\n')
    monkeypatch.delenv("ACTORS_RUNTIME", raising=False)
    assert _runtime_from(["--config", str(config)]) == "threading"
    assert _runtime_from([f"--config={config}", "--runtime", "gevent"]) == "gevent"
    assert _runtime_from([]) is None  # the default: gevent
    monkeypatch.setenv("ACTORS_RUNTIME", "threading")
    assert _runtime_from(["--config", str(config)]) == "threading"
    config.write_text("not toml [")
    monkeypatch.delenv("ACTORS_RUNTIME")
    assert _runtime_from(["--config", str(config)]) is None  # reported later, properly


def _actorsctl(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bin" / "actorsctl"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**_env(), **(env or {})},
        cwd=cwd,
    )


def test_actorsctl_db_upgrade_and_backup(tmp_path, monkeypatch):
    from actors.registry import Journal, Registry
    from actors.registry import journal as journal_module

    monkeypatch.setattr(journal_module, "_IDLE_RELEASE", 3600.0)  # the WAL stays

    db = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    upgraded = _actorsctl("--db", db, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    # A journal that is busy: its commits are still in the WAL, which a plain
    # copy of registry.sqlite would miss.
    registry = Registry(db)
    journal = Journal(registry)
    try:
        ids = {journal.accept("h@b", "create", {"n": i}).result(10).id for i in range(3)}
        plain = tmp_path / "plain.sqlite"
        plain.write_bytes((tmp_path / "registry.sqlite").read_bytes())
        copy = tmp_path / "copy.sqlite"
        backup = _actorsctl("--db", db, "db", "backup", str(copy))
        assert backup.returncode == 0, backup.stderr
        assert str(copy) in backup.stdout
    finally:
        journal.close(10)
        registry.close()
    listed = _actorsctl("--db", f"sqlite:///{copy}", "--output", "json", "ops")
    assert listed.returncode == 0, listed.stderr
    assert {op["id"] for op in json.loads(listed.stdout)} == ids
    missed = _actorsctl("--db", f"sqlite:///{plain}", "--output", "json", "ops")
    assert json.loads(missed.stdout) == []  # what a plain copy of the busy file misses
    again = _actorsctl("--db", db, "db", "backup", str(copy))
    assert again.returncode == 1
    assert "RegistryError" in again.stderr and "exists already" in again.stderr
    assert "Traceback" not in again.stderr


def test_actorsctl_reaches_where_the_config_binds(tmp_path):
    from actors.cli.actorsctl import connect_address

    assert connect_address("tcp://*:5555") == "tcp://127.0.0.1:5555"
    assert connect_address("tcp://0.0.0.0:7000") == "tcp://127.0.0.1:7000"
    assert connect_address("tcp://10.0.0.5:5555") == "tcp://10.0.0.5:5555"
    assert connect_address("tcp://[::]:5555") == "tcp://[::1]:5555"
    assert connect_address("tcp://127.0.0.1:0") is None  # picked at bind time
    assert connect_address("ipc:///run/actors.sock") == "ipc:///run/actors.sock"
    assert connect_address("inproc://service") is None  # only inside the serving process
    bad = _config(tmp_path, "host = 3\n")
    refused = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "actorsctl"), "--config", str(bad), "ping"],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in _env().items() if k != "ACTORS_ENDPOINT"},
    )  # fmt: skip
    assert refused.returncode != 0 and "ConfigError" in refused.stderr
    assert "Traceback" not in refused.stderr
    import socket

    with socket.socket() as probe:  # a free port for the daemon's fixed bind
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    body = (
        GOOD.replace("ROOT", str(tmp_path / "root"))
        + f'\n[transport]\nbind = "tcp://*:{port}"\nadvertise = "tcp://127.0.0.1"\n'
    )
    config = _config(tmp_path, body)
    proc, _ = start_actorsd(
        config, tmp_path / "actorsd.log", "gevent", bind=None, extra=("--insecure",)
    )
    try:
        env = {k: v for k, v in _env().items() if k != "ACTORS_ENDPOINT"}
        ping = subprocess.run(  # no --endpoint: the config's bind (a wildcard: this machine)
            [sys.executable, str(ROOT / "bin" / "actorsctl"), "--timeout", "10",
             "--config", str(config), "--output", "json", "ping"],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert ping.returncode == 0, ping.stderr
        assert '"node1@files"' in ping.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (['{"a": 1}', "--json", '{"b": 2}'], "give the JSON arguments once"),
        (["[1, 2]"], "Invalid value for ARGS: must be a JSON object"),
        (["{nope"], "Invalid value for ARGS: not valid JSON"),
        (["--json", "3"], "Invalid value for --json: must be a JSON object"),
        (["--arg", "novalue"], "expected name=text or name:=json"),
        (["--arg", "size:=ten"], "size:= takes a JSON value"),
    ],
)
def test_actorsctl_refuses_bad_arguments_before_connecting(args, error):
    from click.testing import CliRunner

    from actors.cli.actorsctl import cli

    # An endpoint nothing listens on: the refusal must come before any call.
    done = CliRunner().invoke(cli, ["--endpoint", "tcp://127.0.0.1:9", "call", "files", "m", *args])
    assert done.exit_code == 2, done.output
    assert error in done.output


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--endpoint", "garbage", "ping"], "ZMQError: Invalid argument"),
        (["--db", "garbage", "services"], "RegistryError: invalid registry database URL"),
        (["--client-key", "/nonexistent", "--server-key", "/nonexistent", "ping"], "KeyFileError"),
        (["keys", "generate", "/proc/no/such/dir", "--name", "x"], "FileNotFoundError"),
    ],
)
def test_actorsctl_ordinary_mistakes_are_one_line_not_a_traceback(args, error):
    done = _actorsctl(*args)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(error) and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_actorsctl_refuses_what_it_could_only_get_wrong(tmp_path):
    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return _actorsctl(*args, env={"ACTORS_STATE_DIR": str(tmp_path / "state")}, cwd=tmp_path)

    zero = ctl("--timeout", "0", "ping")
    assert zero.returncode == 2 and "--timeout" in zero.stderr
    # No registry where it looks: said so, and no empty database made there.
    nothing = ctl("services")
    assert nothing.returncode == 2 and "no registry at" in nothing.stderr
    assert not (tmp_path / "state" / "registry.sqlite").exists()


@pytest.mark.parametrize("retryable", [False, True])
def test_actorsctl_shows_a_service_error_it_has_no_class_for_by_its_own_name(capsys, retryable):
    """actorsctl imports no service: such an error arrives as RemoteError, and is
    printed as the service named it, its retryability from the wire's flag."""
    from actors.cli import actorsctl
    from transport.errors import RemoteError, error_from_wire

    message = "h@b quota of 100 GB exceeded: 10 GB used, 500 GB more asked"
    wire = {
        "type": "VolumeQuotaExceeded",  # no class of that name anywhere
        "message": message,
        "details": {"backend": "h@b", "quota_gb": 100},
        "retryable": retryable,
    }
    error = error_from_wire(wire)
    assert isinstance(error, RemoteError)
    assert actorsctl.describe_error(error) == ("VolumeQuotaExceeded", message, retryable)

    def call() -> None:
        raise error

    with pytest.raises(SystemExit) as exited:
        actorsctl._run(call)
    assert exited.value.code == (75 if retryable else 1)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"VolumeQuotaExceeded: {message}"
    assert lines[1:] == (["(retryable: the same request may succeed later)"] if retryable else [])


def test_actorsctl_db_upgrade_migrates_the_applications_of_the_config(tmp_path):
    """--db alone: the framework's tables; with --config, those of its managers too."""
    import sqlite3

    db = tmp_path / "registry.sqlite"
    assert _actorsctl("--db", f"sqlite:///{db}", "db", "upgrade").returncode == 0
    tables = {row[0] for row in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert "services" in tables and "shares" not in tables
    config = _config(
        tmp_path,
        f"""
        enabled_backends = ["local"]
        [backends.local]
        manager = "share_service.manager:ShareManager"
        driver = "share_service.drivers.local:LocalShareDriver"
        options = {{ root = "{tmp_path / "shares"}" }}
        """,
    )
    upgraded = _actorsctl("--db", f"sqlite:///{db}", "--config", str(config), "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    tables = {row[0] for row in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert {"shares", "share_snapshots", "share_service_alembic_version"} <= tables
