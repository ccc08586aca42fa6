"""Three hosts as Linux network namespaces on one bridge, sharing PostgreSQL.

Each host is a namespace with a veth into a bridge the test makes (addresses
only inside a 10.x.y.0/24 of its own), running one real `actorsd` with its
own CURVE keys, bound to its own address. PostgreSQL (127.0.0.1:5432 in the
root namespace) is reached through a TCP forwarder the test runs on the
bridge's address. The test's own clients run in the root namespace.

Skipped, with the reason, unless run as root with `ip` and network
namespaces available and ACTORS_TEST_POSTGRES_URL set.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.client import TopicClient
from actors.registry import Registry
from actors.registry.api import DatabaseUnavailable
from actors.registry.journal import Journal
from tests.daemon import ROOT, wait_for
from transport.errors import ConnectionLost
from transport.security import ClientSecurity, generate_keypair

POSTGRES_URL = os.environ.get("ACTORS_TEST_POSTGRES_URL")
HOSTS = ("h1", "h2", "h3")
CONFIG = """
host = "{host}"
topic = "cluster"
database_url = "{url}"
report_interval = 1
service_down_time = 4
capability_topic = "cluster"
capability_interval = 1
state_dir = "{state}"
enabled_backends = ["b1"]

[backends.b1]
manager = "tests.support:ClusterManager"
driver = "actors.drivers.fake:FakeDriver"

[transport]
bind = "tcp://{address}:5555"
server_secret_key = "{keys}/{host}-server.key_secret"
client_keys_dir = "{allowed}"
client_secret_key = "{keys}/{host}-client.key_secret"
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _why_not() -> str | None:
    if not POSTGRES_URL:
        return "ACTORS_TEST_POSTGRES_URL is not set"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"probe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"cannot make a network namespace: {exc}"
    _ip("netns", "del", probe)
    return None


class Forwarder:
    """A TCP forwarder: accepts on (host, any port), relays to `target`. Threads, bounded."""

    def __init__(self, host: str, target: tuple[str, int], max_connections: int = 64) -> None:
        self.target = target
        self.listener = socket.create_server((host, 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._slots = threading.Semaphore(max_connections)
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(timeout=5):
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                self._slots.release()
                continue
            self._sockets += [client, upstream]
            done = threading.Event()
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b, done), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, done: threading.Event) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            if done.is_set():
                self._slots.release()
            done.set()
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._thread.join(5)
        for s in self._sockets:
            s.close()


class Net:
    """The bridge, the namespaces and their daemons."""

    def __init__(self, tmp: Path, keys: Path) -> None:
        tag = secrets.token_hex(2)
        self.tmp, self.keys = tmp, keys
        self.bridge = f"brc{tag}"
        self.subnet = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(250) + 1}"
        self.gateway = f"{self.subnet}.1"
        self.ns = {h: f"c{tag}{h}" for h in HOSTS}
        self.veth = {h: f"vc{tag}{h}" for h in HOSTS}  # the root namespace's end
        self.address = {h: f"{self.subnet}.{11 + i}" for i, h in enumerate(HOSTS)}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.db_url = ""  # the registry as the hosts reach it (through the forwarder)
        self.made: list[tuple[str, ...]] = []

    def build(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", "del", self.bridge))
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for host in HOSTS:
            ns, veth, inner = self.ns[host], self.veth[host], f"pc{host}"
            _ip("netns", "add", ns)
            self.made.append(("netns", "del", ns))
            _ip("link", "add", veth, "type", "veth", "peer", "name", inner, "netns", ns)
            _ip("link", "set", veth, "master", self.bridge, "up")
            _ip("-n", ns, "addr", "add", f"{self.address[host]}/24", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def start(self, host: str) -> None:
        log = self.tmp / f"{host}.log"
        with log.open("ab") as out:
            self.procs[host] = subprocess.Popen(
                ["ip", "netns", "exec", self.ns[host], sys.executable,
                 str(ROOT / "bin" / "actorsd"), "--config", str(self.tmp / f"{host}.toml")],
                stderr=out, env={**os.environ, "PYTHONPATH": str(ROOT)},
            )  # fmt: skip

    def cut(self, host: str, up: bool = False) -> None:
        _ip("link", "set", self.veth[host], "up" if up else "down")

    def teardown(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for args in reversed(self.made):
            try:
                _ip(*args)
            except subprocess.CalledProcessError:
                pass


@pytest.fixture
def netns_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Net, Registry]]:
    reason = _why_not()
    if reason is not None:
        pytest.skip(reason)
    from sqlalchemy import make_url

    # A scratch database of this test (tests/conftest.py), reached through the forwarder.
    base = make_url(request.getfixturevalue("postgres_url")).set(drivername="postgresql+psycopg")
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    allowed.mkdir()
    for who in ("operator", *(f"{h}-{k}" for h in HOSTS for k in ("server", "client"))):
        public, _ = generate_keypair(keys, who)
        if not who.endswith("-server"):
            (allowed / public.name).write_bytes(public.read_bytes())
    net = Net(tmp_path, keys)
    forwarder: Forwarder | None = None
    registry: Registry | None = None
    try:
        net.build()
        forwarder = Forwarder(net.gateway, (base.host or "127.0.0.1", base.port or 5432))
        inside = base.set(host=net.gateway, port=forwarder.port).render_as_string(
            hide_password=False
        )
        net.db_url = inside
        for host in HOSTS:
            (tmp_path / f"{host}.toml").write_text(
                CONFIG.format(
                    host=host,
                    url=inside,
                    state=tmp_path / host,
                    address=net.address[host],
                    keys=keys,
                    allowed=allowed,
                )
            )
        registry = Registry(base.render_as_string(hide_password=False), service_down_time=4)
        for host in HOSTS:
            net.start(host)

        def all_up() -> bool:
            try:
                records = registry.services(topic="cluster")  # type: ignore[union-attr]
            except DatabaseUnavailable:
                return False
            return {r.host for r in records if r.is_up and r.endpoint} == set(HOSTS)

        wait_for(all_up, "three namespaced hosts up", timeout=60)
        yield net, registry
    except BaseException:
        for host in HOSTS:
            log = tmp_path / f"{host}.log"
            if log.exists():
                print(f"--- {host} ---\n" + "\n".join(log.read_text().splitlines()[-40:]))
        raise
    finally:
        net.teardown()
        if forwarder is not None:
            forwarder.close()
        if registry is not None:
            registry.close()


def _client(net: Net, registry: Registry) -> TopicClient:
    operator = ClientSecurity(net.keys / "operator.key_secret")
    return TopicClient(registry, "cluster", security=operator, timeout=10, heartbeat=0.5)


def _in_flight_call(net: Net, registry: Registry, host: str, lost: list[tuple[object, float]]):
    """An unkeyed long call running on `host` (returns once it has reached it)."""
    target = f"{host}@b1"
    with _client(net, registry) as client:
        before = client.call("naps", target=target)

        def run() -> None:
            with _client(net, registry) as caller:
                try:
                    caller.call("nap", {"seconds": 20}, target=target, timeout=30)
                except BaseException as exc:
                    lost.append((exc, time.monotonic()))

        thread = threading.Thread(target=run)
        thread.start()
        wait_for(lambda: client.call("naps", target=target) > before, f"a nap on {host}")
    return thread


def _keyed_stream(net: Net, registry: Registry, tag: str):
    """Keyed journaled calls and casts to any one host of the topic, one after another."""
    done: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def run() -> None:
        with _client(net, registry) as client:
            n = 0
            while not stop.is_set():
                n += 1
                request = client.cast if n % 2 else client.call
                try:
                    request("stamp", {"tag": f"{tag}{n}"}, key=f"{tag}-{n}")
                    done.append(f"{tag}-{n}")
                except BaseException as exc:
                    failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, stop, done, failures


def test_three_namespaced_hosts_route_around_a_kill_and_a_cut_link(netns_cluster) -> None:
    net, registry = netns_cluster
    rows = registry.services(topic="cluster")
    assert {r.endpoint for r in rows} == {f"tcp://{net.address[h]}:5555" for h in HOSTS}
    assert len({r.server_key for r in rows}) == 3
    for host in HOSTS:  # `actorsctl services`, run on every host, lists the three up
        out = subprocess.run(
            ["ip", "netns", "exec", net.ns[host], sys.executable, str(ROOT / "bin" / "actorsctl"),
             "--db", net.db_url, "--output", "json", "services", "--topic", "cluster"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        listed = sorted((r["host"], r["status"]) for r in json.loads(out.stdout))
        assert listed == [(h, "up") for h in HOSTS], (host, listed)
    with _client(net, registry) as client:
        assert {client.call("ping")["name"] for _ in range(30)} == {f"{h}@b1" for h in HOSTS}
        for host in HOSTS:  # capability reports cross the bridge (gevent, CURVE)
            wait_for(
                lambda host=host: (
                    set(client.call("capabilities", target=f"{host}@b1")["reports"])
                    == {f"{h}@b1" for h in HOSTS}
                ),
                f"capability reports from every host at {host}",
            )

    # SIGKILL h3 under a keyed stream, with an unkeyed call in flight on it.
    stream, stop, done, failures = _keyed_stream(net, registry, "kill")
    wait_for(lambda: len(done) >= 20 or failures, "the stream under way")
    lost: list[tuple[object, float]] = []
    holder = _in_flight_call(net, registry, "h3", lost)
    net.procs["h3"].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    net.procs["h3"].wait(10)
    holder.join(10)
    count = len(done)
    wait_for(lambda: len(done) >= count + 20 or failures, "the stream goes on without h3")
    stop.set()
    stream.join(15)
    assert failures == []
    ((error, when),) = lost
    assert isinstance(error, ConnectionLost) and when - killed < 2.0, (error, when - killed)
    answered = list(done)

    # Cut h2's link under a keyed stream, with an unkeyed call in flight on it.
    stream, stop, done, failures = _keyed_stream(net, registry, "cut")
    wait_for(lambda: len(done) >= 20 or failures, "the stream under way")
    lost = []
    holder = _in_flight_call(net, registry, "h2", lost)
    net.cut("h2")
    cut = time.monotonic()
    try:
        holder.join(10)
        count = len(done)
        wait_for(lambda: len(done) >= count + 20 or failures, "the stream goes on without h2")
    finally:
        net.cut("h2", up=True)
    stop.set()
    stream.join(15)
    assert failures == []
    ((error, when),) = lost
    assert isinstance(error, ConnectionLost) and when - cut < 2.0, (error, when - cut)
    answered += done

    # h3 restarts and rejoins; h2 answers again over its restored link.
    net.start("h3")
    with _client(net, registry) as client:
        wait_for(
            lambda: {client.call("ping")["name"] for _ in range(12)} == {f"{h}@b1" for h in HOSTS},
            "all three hosts in the routing again",
            timeout=60,
        )

    # Every keyed call and cast answered across the kill and the cut is one
    # journal row of the topic, ended 'succeeded' (casts h3 acknowledged
    # before it died are finished by its recovery) by the host that ran it.
    with Journal(registry) as journal:

        def rows() -> dict[str, list[Any]]:
            by_key: dict[str, list[Any]] = {}
            for row in journal.list(limit=100_000):
                if row.idempotency_key is not None:
                    by_key.setdefault(row.idempotency_key, []).append(row)
            return by_key

        wait_for(
            lambda: all(
                [row.state for row in rows().get(key, [])] == ["succeeded"] for key in answered
            ),
            "every answered request ended once",
            timeout=60,
        )
        for key in answered:
            (row,) = rows()[key]
            assert row.key_scope == "topic:cluster" and row.result["by"] == row.target, row
