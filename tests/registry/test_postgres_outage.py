"""A real PostgreSQL outage: the test stops the registry's server, then starts it again.

The module starts a throw-away PostgreSQL cluster of its own (initdb in a
temporary directory, trust auth, listening on a free port of 127.0.0.1 only),
so the registry database really becomes unreachable: connections in the pool
die, new ones are refused. It is skipped when the PostgreSQL binaries are
missing or the server cannot be started here.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from actors.registry import Registry
from actors.registry.api import DatabaseUnavailable
from actors.testing import ServiceHarness, wait_until
from tests.support import backend

psycopg = pytest.importorskip("psycopg", reason="psycopg (PostgreSQL driver) is not installed")

JOURNALED = backend("tests.support:JournaledManager")
REPORT_INTERVAL = 10
SERVICE_DOWN_TIME = 30
PG_CTL_WAIT = 30  # seconds pg_ctl waits for the server to start or stop
SUBPROCESS_TIMEOUT = 60  # backstop for every command we run
OUTAGE = "registry unavailable (RPC service goes on)"
BACK = "registry available again"


# -- a PostgreSQL server of our own -----------------------------------------------------------


def _bindir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin holding initdb, pg_ctl and postgres."""

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    for pg_ctl in sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=version, reverse=True):
        bindir = Path(pg_ctl).parent
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, run as the `postgres` user when root."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="actors-pg-"))
        self.data = self.root / "data"
        self.server_log = self.root / "server.log"
        self.commands_log = self.root / "commands.log"
        self.port = 0
        try:
            self._prefix = self._user_prefix()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _user_prefix(self) -> Callable[[list[str]], list[str]]:
        """How to run a command as a user initdb accepts (it refuses root)."""
        if os.geteuid() != 0:
            return lambda argv: argv
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root and there is no 'postgres' user") from None
        os.chown(self.root, user.pw_uid, user.pw_gid)
        runuser, su = shutil.which("runuser"), shutil.which("su")
        if runuser:
            return lambda argv: [runuser, "-u", "postgres", "--", *argv]
        if su:
            return lambda argv: [su, "postgres", "-s", "/bin/sh", "-c", shlex.join(argv)]
        raise RuntimeError("running as root and neither runuser nor su is available")

    def _run(self, tool: str, *args: str, check: bool = True) -> int:
        argv = self._prefix([str(self.bindir / tool), *args])
        with self.commands_log.open("a") as out:
            out.write(f"$ {shlex.join(argv)}\n")
            out.flush()
            # Output to a file, never a pipe: the postmaster pg_ctl forks must
            # not hold our pipe open.
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                timeout=SUBPROCESS_TIMEOUT,
                check=False,
            )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{tool} failed with exit status {done.returncode} ({self.diagnostics()})"
            )
        return done.returncode

    def diagnostics(self, lines: int = 4) -> str:
        """The last lines of the server's log, else of the commands' output, on one line."""
        for path in (self.server_log, self.commands_log):
            with contextlib.suppress(OSError):
                tail = [line for line in path.read_text(errors="replace").splitlines() if line]
                if tail:
                    return f"{path.name}: " + " | ".join(tail[-lines:])
        return "no output"

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )

    def configure(self, port: int) -> None:
        """Listen on 127.0.0.1:`port` only; sockets in our directory; no fsync."""
        self.port = port
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{self.root}'",
            # Safe while the OS does not crash. Not synchronous_commit=off: an
            # immediate stop would lose the last commits (the journal's, too).
            "fsync": "off",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# actors outage test\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.server_log),
            "-w",
            "-t",
            str(PG_CTL_WAIT),
            "start",
        )

    def stop(self, *, check: bool = True) -> int:
        """Stop at once (as a crash would: `-m immediate`) and wait until it is gone."""
        return self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-m",
            "immediate",
            "-w",
            "-t",
            str(PG_CTL_WAIT),
            "stop",
            check=check,
        )

    def is_running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False) == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres", *, timeout: int = 5) -> Any:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname=database,
            connect_timeout=timeout,
            autocommit=True,
        )

    def create_database(self) -> str:
        name = f"actors_outage_{uuid.uuid4().hex[:12]}"
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def destroy(self) -> None:
        """Stop the server (killing the postmaster if pg_ctl cannot) and delete the cluster."""
        try:
            stopped = not self.data.exists() or self.stop(check=False) == 0
        except (OSError, subprocess.SubprocessError):
            stopped = False
        if not stopped:
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
                os.kill(pid, signal.SIGKILL)  # the postmaster this fixture started
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server started for this module; stopped and deleted after it."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin")
    try:
        server = PostgresServer(bindir)
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"cannot run a PostgreSQL server of our own: {exc}")
    try:
        try:
            server.init()
            for attempt in range(3):  # the free port may be taken before the server binds it
                server.configure(_free_port())
                try:
                    server.start()
                    break
                except RuntimeError:
                    server.stop(check=False)
                    if attempt == 2:
                        raise
            with server.connect() as conn:
                conn.execute("SELECT 1")
        except (RuntimeError, OSError, subprocess.SubprocessError, psycopg.Error) as exc:
            pytest.skip(f"cannot start a PostgreSQL server of our own: {exc}")
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg(pg_server: PostgresServer) -> Iterator[PostgresServer]:
    """The module's server, running at the start of the test and again after it."""
    if not pg_server.is_running():
        pg_server.start()
    yield pg_server
    if not pg_server.is_running():
        pg_server.start()


@pytest.fixture
def pg_url(pg: PostgresServer) -> str:
    """A fresh, empty database on the module's server."""
    return pg.url(pg.create_database())


# -- helpers -------------------------------------------------------------------------------------


def _start(actors_service: Any, clock: Any, url: str) -> ServiceHarness:
    return actors_service(  # type: ignore[no-any-return]
        {"b1": JOURNALED},
        host=f"h{uuid.uuid4().hex[:8]}",
        clock=clock,
        database_url=url,
        report_interval=REPORT_INTERVAL,
        service_down_time=SERVICE_DOWN_TIME,
    )


def _round(h: ServiceHarness) -> BaseException | None:
    """Run a registry round that starts now, wait until it was handled; its error or None."""
    h.run_in(h.service.name, lambda actor: actor.report())
    # In a tuple: a future returned by run_in's function would be waited for, not returned.
    (work,) = h.run_in(h.service.name, lambda actor: (actor.round_in_flight,))
    assert work is not None and work.done()
    return work.exception()  # type: ignore[no-any-return]


def _timer_round(h: ServiceHarness, clock: Any) -> None:
    """Let the interval timer (not the test) start a round, and wait until it was handled."""
    with h.waiting_for(h.service.name, "_reported", kind="continuation"):
        clock.advance(REPORT_INTERVAL)


def _messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def _records(url: str, host: str) -> list[Any]:
    """The service rows of `host`, read with a registry of our own (not the service's pool)."""
    with Registry(url, service_down_time=SERVICE_DOWN_TIME) as reader:
        return reader.services(host=host)


def _assert_unreachable(pg: PostgresServer) -> None:
    with pytest.raises(psycopg.OperationalError):
        pg.connect(timeout=2).close()


# -- the tests -------------------------------------------------------------------------------------


def test_rpc_goes_on_through_a_postgres_outage_and_the_registry_comes_back(
    pg: PostgresServer,
    pg_url: str,
    actors_service: Any,
    actors_clock: Any,
    actors_runtime: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = _start(actors_service, actors_clock, pg_url)
    host = h.config.host
    fake = h.fake("b1")
    assert _round(h) is None
    assert _round(h) is None
    [before] = _records(pg_url, host)
    assert before.is_up and before.state == "up"
    assert h.call("b1", "provision", resource_id="r0") == {"id": "r0", "size": 1}

    caplog.set_level(logging.INFO)
    caplog.clear()
    pg.stop()
    _assert_unreachable(pg)

    # Registry rounds fail, each with DatabaseUnavailable, and the service carries on.
    errors = [_round(h) for _ in range(3)]
    assert all(isinstance(e, DatabaseUnavailable) for e in errors), errors
    _timer_round(h, actors_clock)  # the heartbeat timer still runs rounds
    assert isinstance(_round(h), DatabaseUnavailable)

    # RPC service goes on: a method that is not journaled answers.
    assert h.call("b1", "create", resource_id="during") == {"id": "during", "size": 1}
    assert h.call("b1", "ping")["backend"] == "b1"

    # A journaled request is refused, retryably, and nothing runs.
    with pytest.raises(DatabaseUnavailable) as refused:
        h.call("b1", "provision", resource_id="r1")
    assert refused.value.retryable is True
    with pytest.raises(DatabaseUnavailable) as refused_cast:
        h.cast("b1", "provision", resource_id="r2", key="k-r2")
    assert refused_cast.value.retryable is True
    created = [c.args[0] for c in fake.calls if c.op == "create"]
    assert created == ["r0", "during"]
    assert "r1" not in fake.resources and "r2" not in fake.resources

    # The outage is logged once, however many rounds failed.
    outage = _messages(caplog, OUTAGE)
    assert len(outage) == 1, [r.getMessage() for r in caplog.records]
    assert outage[0].levelno == logging.ERROR
    assert "is unavailable" in outage[0].getMessage()
    assert _messages(caplog, BACK) == []
    # ... and nothing else went wrong loudly (e.g. an error that is not DatabaseUnavailable).
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == outage

    # The same server comes back: same data directory, same port.
    pg.start()
    restarted = datetime.now(UTC)
    assert _round(h) is None  # the very next round succeeds
    assert _round(h) is None
    _timer_round(h, actors_clock)
    assert _round(h) is None
    back = _messages(caplog, BACK)
    assert len(back) == 1, [r.getMessage() for r in caplog.records]
    assert len(_messages(caplog, OUTAGE)) == 1

    # The service's row heartbeats again: the same row, up, with fresh heartbeats.
    [after] = _records(pg_url, host)
    assert after.id == before.id
    assert after.is_up and after.state == "up"
    assert after.report_count > before.report_count
    assert after.last_heartbeat is not None and after.last_heartbeat >= restarted

    # Journaled requests work again and are recorded succeeded.
    assert h.call("b1", "provision", resource_id="r1", key="k-r1") == {"id": "r1", "size": 1}
    op_id = h.cast("b1", "provision", resource_id="r2", key="k-r2")
    assert op_id is not None
    assert h.wait_operation(op_id).state == "succeeded"
    assert h.service.operations is not None
    journal = h.service.operations.journal
    recorded = {r.args["resource_id"]: r.state for r in journal.list(target=f"{host}@b1")}
    assert recorded == {"r0": "succeeded", "r1": "succeeded", "r2": "succeeded"}
    assert [c.args[0] for c in fake.calls if c.op == "create"] == ["r0", "during", "r1", "r2"]


def test_a_service_started_during_an_outage_registers_once_postgres_is_back(
    pg: PostgresServer,
    pg_url: str,
    actors_service: Any,
    actors_clock: Any,
    actors_runtime: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    pg.stop()
    _assert_unreachable(pg)

    h = _start(actors_service, actors_clock, pg_url)  # the schema cannot even be created
    host = h.config.host
    assert isinstance(_round(h), DatabaseUnavailable)
    assert isinstance(_round(h), DatabaseUnavailable)
    assert h.call("b1", "create", resource_id="during") == {"id": "during", "size": 1}
    with pytest.raises(DatabaseUnavailable) as refused:
        h.call("b1", "provision", resource_id="r1")
    assert refused.value.retryable is True
    assert [c.args[0] for c in h.fake("b1").calls if c.op == "create"] == ["during"]
    assert len(_messages(caplog, OUTAGE)) == 1

    pg.start()
    assert _round(h) is None  # creates the schema, registers, heartbeats
    assert _round(h) is None
    assert len(_messages(caplog, BACK)) == 1
    [row] = _records(pg_url, host)
    assert row.is_up and row.state == "up" and row.backend == "b1"

    # Crash recovery ran after the first good round: nothing is left to recover.
    wait_until(
        lambda: h.run_in(h.service.name, lambda actor: (set(actor.unrecovered),)) == (set(),),
        interval=0.02,
        message="crash recovery to run",
    )
    assert h.call("b1", "provision", resource_id="r1") == {"id": "r1", "size": 1}
    assert h.service.operations is not None
    [record] = h.service.operations.journal.list(target=f"{host}@b1")
    assert (record.method, record.state, record.result) == (
        "provision",
        "succeeded",
        {"id": "r1", "size": 1},
    )


def test_a_journaled_call_running_when_postgres_goes_away_still_answers(
    pg: PostgresServer,
    pg_url: str,
    actors_service: Any,
    actors_clock: Any,
    actors_runtime: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = _start(actors_service, actors_clock, pg_url)
    assert h.service.system is not None
    fake = h.fake("b1")
    fake.hang("create")
    reply = h.service.ask("b1", "provision", {"resource_id": "r1"}, key="k-r1", timeout=10)
    fake.wait_until(lambda f: f.in_flight == 1, h.service.system.runtime)  # accepted: committed

    caplog.set_level(logging.INFO)
    pg.stop()
    fake.release()
    # Its outcome cannot be recorded, but the caller gets it, without waiting for the database.
    assert reply.result() == {"id": "r1", "size": 1}
    assert [c.args[0] for c in fake.calls if c.op == "create"] == ["r1"]
    assert any("journal writes fail" in r.getMessage() for r in caplog.records)

    pg.start()
    assert _round(h) is None
    assert [r.backend for r in _records(pg_url, h.config.host) if r.is_up] == ["b1"]
    assert h.call("b1", "provision", resource_id="r2") == {"id": "r2", "size": 1}


@contextlib.contextmanager
def _frozen(pg: PostgresServer) -> Iterator[None]:
    """SIGSTOP the server's processes: connections stay open, the kernel takes the
    bytes, nothing answers (a stalled path, which neither TCP keepalives nor
    statement_timeout end). SIGCONT after the block."""
    postmaster = int((pg.data / "postmaster.pid").read_text().splitlines()[0])
    pids = [postmaster]
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:  # its parent: a backend or helper
                pids.append(int(Path(stat).parent.name))
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def test_a_server_that_stops_answering_is_an_outage_not_a_hang(
    pg: PostgresServer, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The client's own deadline (the statement timeout plus a margin) ends a wait
    that the server's statement_timeout and TCP keepalives cannot end."""
    caplog.set_level(logging.WARNING, logger="actors.registry._watchdog")
    with Registry(f"{pg_url}?statement_timeout=1") as registry:
        registry.upgrade()
        assert registry.services() == []  # a pooled connection, then the freeze
        with _frozen(pg):
            with pytest.raises(DatabaseUnavailable):
                registry.services()
            with pytest.raises(DatabaseUnavailable):  # a new connection: refused by its timeout
                registry.services()
        assert any("its connection was cut" in r.getMessage() for r in caplog.records)
        assert registry.services() == []  # answered again once the server is back


def test_a_bad_statement_timeout_in_the_url_is_refused(pg_url: str) -> None:
    from actors.registry.api import RegistryError

    with pytest.raises(RegistryError, match="statement_timeout must be a positive number"):
        Registry(f"{pg_url}?statement_timeout=soon")


def test_a_stalled_path_is_logged_as_an_outage_of_its_real_length(
    pg: PostgresServer, pg_url: str, actors_service: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Real clock: rounds every 0.2 s; the server frozen for 9 s, past the client's
    own deadline (1 s statement timeout + 5 s): the outage is found by that deadline,
    and the time logged when it ends counts from the round that met it."""
    caplog.set_level(logging.INFO)
    h = actors_service(
        {"b1": JOURNALED},
        host=f"h{uuid.uuid4().hex[:8]}",
        database_url=f"{pg_url}?statement_timeout=1",
        report_interval=0.2,
        service_down_time=60,
    )
    assert _round(h) is None
    frozen = time.monotonic()
    with _frozen(pg):
        wait_until(lambda: _messages(caplog, OUTAGE), timeout=30, message="the outage found")
        time.sleep(max(0.0, 9 - (time.monotonic() - frozen)))  # the fault's length, not a wait
    thawed = time.monotonic()
    wait_until(lambda: _messages(caplog, BACK), timeout=30, message="the registry back")
    [back] = _messages(caplog, BACK)
    logged = float(back.getMessage().rsplit("after ", 1)[1].rstrip("s"))
    assert logged >= thawed - frozen - 1, (logged, thawed - frozen)
    assert h.call("b1", "ping")["backend"] == "b1"
