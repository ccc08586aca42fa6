"""Keys of topic requests are one operation across the cluster (the shared journal).

A keyed request to "any one" service of a topic carries the key scope
`topic:<topic>`. A retry that reaches another host finds the first host's
row: its outcome if finished; if not, OperationInProgress while that host is
up, and a takeover (run here, as crash recovery would) once it is down.
"""

from __future__ import annotations

import asyncio
import random
import threading
from contextlib import contextmanager
from typing import Any

import pytest
import zmq

from actors import HostFenced, OperationInProgress, OperationInterrupted, Service, ServiceConfig
from actors.client import TopicClient
from actors.registry import DatabaseUnavailable, Registry, ServiceRow
from actors.registry.journal import Journal, OperationClaimed
from actors.testing import wait_until
from tests.support import JournaledManager, backend
from transport.protocol import ERROR, Envelope, decode, encode, error_body

JOURNALED = "tests.support:JournaledManager"


@pytest.fixture
def cluster(tmp_path, runtime_name):
    """One live host of topic 'shares' on a shared registry, and the journal beside it."""
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    config = ServiceConfig(
        host="node1",
        runtime=runtime_name,
        topic="shares",
        database_url=url,
        report_interval=1,  # registry rounds: where orphans are adopted
        enabled_backends=["b1"],
        backends={"b1": backend(JOURNALED)},
    )
    service = Service(config).start(timeout=10)
    service.serve("tcp://127.0.0.1:0")
    service.system.handle(service.name).ask("report").result()
    registry = Registry(url, service_down_time=60)
    journal = Journal(registry)
    client = TopicClient(registry, "shares", green=runtime_name == "gevent", timeout=10)
    yield client, journal, registry
    client.close()
    journal.close()
    registry.close()
    assert service.stop(10)


def _left_by(journal: Journal, host: str, method: str, args: dict, key: str):
    """An operation `host` accepted for the topic and never finished (it died)."""
    return journal.accept(f"{host}@b1", method, args, key, scope="topic:shares").result(10)


def _rows(journal: Journal, key: str):
    return [r for r in journal.list(limit=1000) if r.idempotency_key == key]


def test_a_retry_on_another_host_gets_the_first_outcome_and_runs_nothing(cluster):
    client, journal, _ = cluster
    first = client.call("stamp", {"tag": "a"}, key="k-a")
    assert first == {"tag": "a", "by": "node1@b1"}
    assert client.call("stamp", {"tag": "a"}, key="k-a") == first
    (row,) = _rows(journal, "k-a")
    assert (row.key_scope, row.target, row.state) == ("topic:shares", "node1@b1", "succeeded")
    # Sent to one manager, the key has that manager's scope: another operation.
    assert client.call("stamp", {"tag": "a"}, key="k-a", target="node1@b1") == first
    assert {r.key_scope for r in _rows(journal, "k-a")} == {"topic:shares", "node1@b1"}


def test_an_unfinished_operation_of_a_down_host_is_taken_over_and_finished(cluster):
    client, journal, _ = cluster
    left = _left_by(journal, "gone", "stamp", {"tag": "t"}, "k-t")  # 'gone' has no live row
    assert client.call("stamp", {"tag": "t"}, key="k-t") == {"tag": "t", "by": "node1@b1"}
    (row,) = _rows(journal, "k-t")
    assert (row.id, row.target, row.state) == (left.id, "node1@b1", "succeeded")
    # A retry after the takeover gets the recorded outcome.
    assert client.call("stamp", {"tag": "t"}, key="k-t") == {"tag": "t", "by": "node1@b1"}
    assert len(_rows(journal, "k-t")) == 1


def test_a_taken_over_method_that_is_not_idempotent_is_recorded_interrupted(cluster):
    client, journal, _ = cluster
    left = _left_by(journal, "gone", "shaped", {"tag": "s"}, "k-s")
    with pytest.raises(OperationInterrupted):
        client.call("shaped", {"tag": "s"}, key="k-s")
    (row,) = _rows(journal, "k-s")
    assert (row.id, row.target, row.state) == (left.id, "node1@b1", "interrupted")
    with pytest.raises(OperationInterrupted):  # what a retry hears from now on
        client.call("shaped", {"tag": "s"}, key="k-s")


def test_the_operation_of_a_host_still_up_is_left_to_it(cluster):
    client, journal, registry = cluster
    (node2,) = registry.register([ServiceRow("node2", "actorsd", "shares", "b1", None, "1.0")])
    registry.heartbeat([node2])  # up, with no endpoint: nothing is routed to it
    left = _left_by(journal, "node2", "stamp", {"tag": "u"}, "k-u")
    with pytest.raises(OperationInProgress) as caught:
        client.call("stamp", {"tag": "u"}, key="k-u", timeout=1.5)
    assert caught.value.details["op_id"] == left.id
    (row,) = _rows(journal, "k-u")
    assert (row.target, row.state) == ("node2@b1", "accepted")


def test_a_stale_claim_loses_to_the_first(cluster):
    _, journal, _ = cluster
    left = _left_by(journal, "gone", "stamp", {"tag": "c"}, "k-c")
    (mine,) = journal.claim_all([left], "node1@b1")
    assert journal.claim_all([left], "node3@b1") == []  # read before the first claim
    assert journal.claim_all([left]) == []  # the owner's recovery, from its stale read
    assert journal.get(left.id).target == mine.target == "node1@b1"


def test_a_down_hosts_acknowledged_cast_is_adopted_without_a_retry(cluster):
    _, journal, registry = cluster
    (gone,) = registry.register([ServiceRow("gone", "actorsd", "shares", "b1", None, "1.0")])
    registry.mark([gone], "stopped")
    left = _left_by(journal, "gone", "stamp", {"tag": "o"}, "k-o")  # acked, then it died
    mine = _left_by(journal, "node1", "stamp", {"tag": "m"}, "k-m")  # this host's: recovery's
    wait_until(lambda: journal.get(left.id).state == "succeeded", timeout=10)
    row = journal.get(left.id)
    assert row.target == "node1@b1" and row.result == {"tag": "o", "by": "node1@b1"}
    assert journal.get(mine.id).target == "node1@b1" and journal.get(mine.id).state == "accepted"


def test_a_disabled_host_keeps_its_operations(cluster):
    """Disabled is out of routing, not dead: nobody takes its work over."""
    client, journal, registry = cluster
    (node2,) = registry.register([ServiceRow("node2", "actorsd", "shares", "b1", None, "1.0")])
    registry.heartbeat([node2])
    registry.set_disabled("node2", "b1", True, "maintenance")
    left = _left_by(journal, "node2", "stamp", {"tag": "d"}, "k-d")
    with pytest.raises(OperationInProgress):
        client.call("stamp", {"tag": "d"}, key="k-d", timeout=1.5)
    assert journal.take_over(left, "node1@b1") is None
    assert journal.get(left.id).target == "node2@b1"


def test_the_old_owner_cannot_write_to_an_operation_taken_over(cluster):
    _, journal, _ = cluster
    left = _left_by(journal, "gone", "stamp", {"tag": "f"}, "k-f")
    journal.claim_all([left], "node1@b1")
    for state, extra in (("running", {}), ("failed", {"release_key": True})):
        with pytest.raises(OperationClaimed):
            journal.set_state(left.id, state, owner="gone@b1", **extra).result(10)
    row = journal.get(left.id)
    assert (row.state, row.idempotency_key, row.target) == ("accepted", "k-f", "node1@b1")
    journal.set_state(left.id, "succeeded", result=1, owner="node1@b1").result(10)


def test_a_takeover_the_manager_could_not_take_is_given_back_and_taken_again(cluster, monkeypatch):
    client, journal, _ = cluster
    real = JournaledManager.recover_operations
    handed: list[object] = []

    def once_unavailable(self, records):  # e.g. the manager restarting
        handed.append(records)
        if len(handed) == 1:
            raise RuntimeError("not now")
        return real(self, records)

    monkeypatch.setattr(JournaledManager, "recover_operations", once_unavailable)
    left = _left_by(journal, "gone", "stamp", {"tag": "g"}, "k-g")
    assert client.call("stamp", {"tag": "g"}, key="k-g") == {"tag": "g", "by": "node1@b1"}
    assert len(handed) == 2
    row = journal.get(left.id)
    assert (row.target, row.state) == ("node1@b1", "succeeded")


class _Falling(random.Random):
    """Chance that always ranks the later of equal services first (rank_routable's
    tie-break), so that the test knows which host a request reaches first."""

    def __init__(self) -> None:
        super().__init__()
        self._next = 1.0

    def random(self) -> float:
        self._next /= 2
        return self._next


@contextmanager
def _refusing_host(registry: Registry, host: str, error: Exception):
    """A live service of topic 'shares' that refuses every request with `error`,
    as a host that lost the registry (HostFenced) or its journal's database
    (DatabaseUnavailable) does; yields what it was sent."""
    context = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    seen: list[Any] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if not sock.poll(50):
                continue
            identity, body = sock.recv_multipart()
            envelope = decode(body)
            seen.append(envelope)
            refusal = Envelope(ERROR, envelope.id, error=error_body(error))
            sock.send_multipart([identity, encode(refusal)])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    endpoint = f"tcp://127.0.0.1:{port}"
    (row,) = registry.register([ServiceRow(host, "actorsd", "shares", "b1", endpoint, "1.0")])
    registry.heartbeat([row])
    try:
        yield seen
    finally:
        registry.mark([row], "stopped")
        stop.set()
        thread.join(5)
        sock.close()
        context.term()


@pytest.mark.parametrize(
    "error",
    [HostFenced("cut", 20.0, 15.0), DatabaseUnavailable("sqlite:///gone", "no disk")],
    ids=["fenced", "no database"],
)
def test_a_keyed_request_a_host_refused_unrun_goes_on_to_another_host(cluster, error):
    client, _, registry = cluster
    client._rng = _Falling()  # of two connected hosts, the refusing one is tried first
    with _refusing_host(registry, "cut", error) as seen:
        for i in range(5):
            tag = f"r{i}"
            assert client.call("stamp", {"tag": tag}, key=f"k-{tag}") == {
                "tag": tag,
                "by": "node1@b1",
            }
        assert seen and all(e.scope == "topic:shares" for e in seen)
        assert client.failovers >= len(seen)
        # Without a key (nothing says it is one operation) the refusal is the answer.
        with pytest.raises(type(error)):
            for i in range(5):
                client.call("stamp", {"tag": f"u{i}"})


@pytest.mark.parametrize(
    "error",
    [HostFenced("cut", 20.0, 15.0), DatabaseUnavailable("sqlite:///gone", "no disk")],
    ids=["fenced", "no database"],
)
def test_the_async_topic_client_goes_on_to_another_host_too(cluster, error, runtime_name):
    if runtime_name == "gevent":
        pytest.skip("the service's hub runs in this thread: asyncio would hold it up")
    from actors.aio import AsyncTopicClient

    _, _, registry = cluster

    async def main() -> None:
        async with AsyncTopicClient(registry, "shares", timeout=10) as client:
            client._rng = _Falling()
            with _refusing_host(registry, "cut", error) as seen:
                for i in range(5):
                    reply = await client.call("stamp", {"tag": f"a{i}"}, key=f"k-a{i}")
                    assert reply == {"tag": f"a{i}", "by": "node1@b1"}
                assert seen and client.failovers >= len(seen)

    asyncio.run(main())
