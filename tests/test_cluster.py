"""Across hosts: three real daemons, each with its own CURVE keys, one shared registry.

Each daemon publishes its endpoint and server key in the registry; clients
take both from there. A topic client spreads calls over the hosts, notices a
host's death from the connection itself, fails what was in flight to it at
once (ConnectionLost) and sends keyed requests to another host.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from actors.client import TopicClient
from actors.registry import Registry
from tests.daemon import ROOT, start_actorsd, wait_for
from transport.errors import AuthenticationFailed, ConnectionLost
from transport.security import ClientSecurity, generate_keypair

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
server_secret_key = "{keys}/{host}-server.key_secret"
client_keys_dir = "{allowed}"
client_secret_key = "{keys}/{host}-client.key_secret"
"""


@dataclass
class Cluster:
    tmp: Path
    url: str
    keys: Path
    registry: Registry
    procs: dict[str, subprocess.Popen[bytes]]

    def config(self, host: str) -> Path:
        return self.tmp / f"{host}.toml"

    def start(self, host: str) -> None:
        proc, _ = start_actorsd(self.config(host), self.tmp / f"{host}.log", "gevent")
        self.procs[host] = proc

    def kill(self, host: str) -> float:
        """SIGKILL `host`; the time it was sent (monotonic)."""
        self.procs[host].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        self.procs[host].wait(10)
        return killed

    def client(self, **options: object) -> TopicClient:
        operator = ClientSecurity(self.keys / "operator.key_secret")
        return TopicClient(
            self.registry, "cluster", security=operator, timeout=10, heartbeat=0.5, **options
        )

    def wait_napping(self, host: str) -> None:
        """Until a `nap` call is in flight on `host`."""
        with self.client() as client:
            wait_for(lambda: client.call("naps", target=f"{host}@b1") >= 1, f"a nap on {host}")

    def up(self) -> set[str]:
        return {r.host for r in self.registry.services(topic="cluster") if r.is_up and r.endpoint}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    allowed.mkdir()
    for name in ("operator", *(f"{h}-{kind}" for h in HOSTS for kind in ("server", "client"))):
        public, _ = generate_keypair(keys, name)
        if not name.endswith("-server"):  # the clients every server admits
            (allowed / public.name).write_bytes(public.read_bytes())
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    for host in HOSTS:
        (tmp_path / f"{host}.toml").write_text(
            CONFIG.format(host=host, url=url, state=tmp_path / host, keys=keys, allowed=allowed)
        )
    registry = Registry(url, service_down_time=4)
    cluster = Cluster(tmp_path, url, keys, registry, {})
    try:
        for host in HOSTS:
            cluster.start(host)
        wait_for(lambda: cluster.up() == set(HOSTS), "all three hosts up in the registry")
        yield cluster
    except BaseException:
        for host in HOSTS:
            log = tmp_path / f"{host}.log"
            if log.exists():
                print(f"--- {host} ---\n" + "\n".join(log.read_text().splitlines()[-60:]))
        raise
    finally:
        for proc in cluster.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        registry.close()


def test_hosts_publish_their_keys_calls_spread_and_reports_arrive(cluster: Cluster) -> None:
    rows = [r for r in cluster.registry.services(topic="cluster")]
    assert len({r.server_key for r in rows}) == 3 and all(r.server_key for r in rows)
    assert all(r.endpoint and r.endpoint.startswith("tcp://127.0.0.1:") for r in rows)
    assert {r.down_after for r in rows} == {4.0}
    with cluster.client() as client:
        names = {client.call("ping")["name"] for _ in range(30)}
        assert names == {f"{h}@b1" for h in HOSTS}
        # Capability reports (gevent, CURVE, the daemons' own client keys) reach every host.
        for host in HOSTS:
            wait_for(
                lambda host=host: (
                    set(client.call("capabilities", target=f"{host}@b1")["reports"])
                    == {f"{h}@b1" for h in HOSTS}
                ),
                f"capability reports from all hosts at {host}",
            )


def test_actorsctl_takes_each_hosts_key_from_the_registry(cluster: Cluster) -> None:
    def actorsctl(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, str(ROOT / "bin" / "actorsctl"), "--timeout", "10", "--db",
             cluster.url, "--client-key", str(cluster.keys / "operator.key_secret"),
             "--output", "json", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout

    listed = json.loads(actorsctl("services", "--topic", "cluster"))
    assert sorted((r["host"], r["status"]) for r in listed) == [(h, "up") for h in HOSTS]
    assert json.loads(actorsctl("call", "--topic", "cluster", "h2@b1", "ping"))["name"] == "h2@b1"
    ack = json.loads(
        actorsctl("cast", "--topic", "cluster", "--key", "c-1", "any", "shaped", '{"tag": "t"}')
    )
    assert set(ack) == {"operation"}
    report = {"service": "x@y", "timestamp": 1.0, "capabilities": {}}
    sent = json.loads(
        actorsctl("fanout", "cluster", "update_capabilities", json.dumps({"report": report}))
    )
    assert len(sent) == 3 and {r["result"] for r in sent} == {"accepted"}


def test_a_wrong_or_missing_key_is_an_immediate_error(cluster: Cluster) -> None:
    row = next(r for r in cluster.registry.services(topic="cluster") if r.host == "h1")
    assert row.endpoint is not None
    from transport.client import RpcClient

    wrong = ClientSecurity(cluster.keys / "operator.key_secret").for_server(
        next(r.server_key for r in cluster.registry.services() if r.host == "h2") or ""
    )
    started = time.monotonic()
    with (
        RpcClient(row.endpoint, security=wrong, timeout=30, green=False) as client,
        pytest.raises(AuthenticationFailed, match="server public key"),
    ):
        client.call("h1@b1", "ping")
    assert time.monotonic() - started < 5
    stranger = ClientSecurity(cluster.keys / "h1-server.key_secret").for_server(
        row.server_key or ""
    )  # a keypair no server admits
    started = time.monotonic()
    with (
        RpcClient(row.endpoint, security=stranger, timeout=30, green=False) as client,
        pytest.raises(AuthenticationFailed, match="refused this client's key"),
    ):
        client.call("h1@b1", "ping")
    assert time.monotonic() - started < 5
    with (
        TopicClient(cluster.registry, "cluster", timeout=30) as keyless,
        pytest.raises(AuthenticationFailed, match="no keypair"),
    ):
        keyless.call("ping")


def test_sigkill_under_keyed_calls_fails_none_and_in_flight_calls_learn_at_once(
    cluster: Cluster,
) -> None:
    failures: list[BaseException] = []
    done: list[str] = []
    stop = threading.Event()

    def keyed_stream() -> None:
        with cluster.client() as client:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    # Idempotent: one h3 accepted and never ran is taken over and run.
                    result = client.call("stamp", {"tag": f"r{n}"}, key=f"stream-{n}", timeout=10)
                    done.append(result["tag"])
                except BaseException as exc:
                    failures.append(exc)

    lost: list[tuple[BaseException, float]] = []

    def held_call() -> None:  # an unkeyed call in flight on h3
        with cluster.client() as client:
            try:
                client.call("nap", {"seconds": 20}, target="h3@b1", timeout=30)
            except BaseException as exc:
                lost.append((exc, time.monotonic()))

    stream = threading.Thread(target=keyed_stream)
    holder = threading.Thread(target=held_call)
    stream.start()
    wait_for(lambda: len(done) >= 30 or failures, "the stream under way")
    assert failures == []
    holder.start()
    cluster.wait_napping("h3")
    killed = cluster.kill("h3")
    holder.join(10)
    count = len(done)
    wait_for(lambda: len(done) >= count + 30 or failures, "the stream goes on without h3")
    stop.set()
    stream.join(15)
    assert failures == []
    ((error, when),) = lost
    assert isinstance(error, ConnectionLost) and when - killed < 2.0, (error, when - killed)

    # h3 restarts and rejoins: calls reach it again.
    cluster.start("h3")
    with cluster.client() as client:
        wait_for(
            lambda: "h3@b1" in {client.call("ping")["name"] for _ in range(9)},
            "h3 back in the topic's routing",
        )


def test_the_asyncio_topic_client_fails_over_the_same_way(cluster: Cluster) -> None:
    """AsyncTopicClient: per-host keys from the registry, keyed calls go on across a
    SIGKILL, an unkeyed call in flight on the killed host gets ConnectionLost at once."""
    import asyncio

    from actors.aio import AsyncTopicClient

    operator = ClientSecurity(cluster.keys / "operator.key_secret")

    def client() -> AsyncTopicClient:
        return AsyncTopicClient(
            cluster.registry, "cluster", security=operator, timeout=10, heartbeat=0.5
        )

    async def main() -> tuple[int, list[str], list[BaseException], BaseException, float, float]:
        done: list[str] = []
        failures: list[BaseException] = []
        stop = asyncio.Event()

        async def keyed_stream(shaped: AsyncTopicClient) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    result = await shaped.call("stamp", {"tag": f"a{n}"}, key=f"async-{n}")
                    done.append(result["tag"])
                except Exception as exc:
                    failures.append(exc)

        async with client() as shaped, client() as holder:
            names = {(await shaped.call("ping"))["name"] for _ in range(30)}
            assert names == {f"{h}@b1" for h in HOSTS}  # every host, each with its own key
            stream = asyncio.create_task(keyed_stream(shaped))
            held = asyncio.create_task(
                holder.call("nap", {"seconds": 20}, target="h3@b1", timeout=30)
            )
            await asyncio.to_thread(cluster.wait_napping, "h3")
            count = len(done)
            killed = await asyncio.to_thread(cluster.kill, "h3")
            try:
                await held
                raise AssertionError("the call in flight on h3 was answered")
            except ConnectionLost as exc:
                error, when = exc, time.monotonic()
            loop = asyncio.get_running_loop()
            end = loop.time() + 30
            while len(done) < count + 30 and not failures and loop.time() < end:
                await asyncio.sleep(0.05)
            stop.set()
            await stream
            return count, done, failures, error, when, killed

    count, done, failures, error, when, killed = asyncio.run(main())
    assert failures == []
    assert isinstance(error, ConnectionLost) and when - killed < 2.0, when - killed
    assert len(done) >= count + 30  # the stream went on without h3


def test_a_silent_host_is_routed_around_within_its_heartbeat_timeout(cluster: Cluster) -> None:
    """SIGSTOP: the host's connections stay open but nothing answers (a cut link)."""
    lost: list[tuple[BaseException, float]] = []

    def held_call() -> None:
        with cluster.client() as client:
            try:
                client.call("nap", {"seconds": 20}, target="h2@b1", timeout=30)
            except BaseException as exc:
                lost.append((exc, time.monotonic()))

    with cluster.client() as client:
        assert client.call("ping", target="h2@b1")["name"] == "h2@b1"
        holder = threading.Thread(target=held_call)
        holder.start()
        cluster.wait_napping("h2")
        cluster.procs["h2"].send_signal(signal.SIGSTOP)
        silenced = time.monotonic()
        try:
            holder.join(10)
            ((error, when),) = lost
            # heartbeat 0.5 s: the connection is dropped after three unanswered intervals
            assert isinstance(error, ConnectionLost) and when - silenced < 2.0, when - silenced
            wait_for(
                lambda: client.routable() and all(r.host != "h2" for r, _ in client.routable()),
                "h2 out of the routing",
            )
            keyed = [
                client.call("stamp", {"tag": f"s{n}"}, key=f"silent-{n}")["tag"] for n in range(20)
            ]
            assert len(keyed) == 20
        finally:
            cluster.procs["h2"].send_signal(signal.SIGCONT)
        wait_for(
            lambda: "h2@b1" in {client.call("ping")["name"] for _ in range(9)},
            "h2 back in the routing once it answers again",
        )


def test_a_wildcard_bind_needs_advertise_which_goes_into_the_registry(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "bin" / "actorsd"), "--runtime", "threading"]
    refused = subprocess.run(
        [*command, "--bind", "tcp://0.0.0.0:0", "--insecure"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    reasons = [line for line in refused.stderr.splitlines() if line.startswith("actorsd:")]
    assert refused.returncode == 2 and len(reasons) == 1, refused.stderr
    assert "listens on every interface: set transport.advertise" in reasons[0]
    assert not (tmp_path / "state").exists()  # refused before anything started

    proc, bound = start_actorsd(
        None, tmp_path / "actorsd.log", "threading", cwd=tmp_path,
        bind="tcp://0.0.0.0:0", extra=("--insecure", "--advertise", "tcp://127.0.0.1"),
    )  # fmt: skip
    try:
        port = bound.rsplit(":", 1)[1]
        with Registry(f"sqlite:///{tmp_path / 'state' / 'registry.sqlite'}") as registry:
            wait_for(
                lambda: {r.endpoint for r in registry.services()} == {f"tcp://127.0.0.1:{port}"},
                "the advertised endpoint in the registry",
            )
    finally:
        proc.kill()
        proc.wait(10)
