"""Prometheus metrics: read from the service when scraped, served over real HTTP."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors import ActorCrashed, ConfigError, load_config
from actors.metrics import MetricsServer, serve_metrics
from actors.testing import FakeController
from tests.support import backend
from transport import RpcClient


def _scrape(server: MetricsServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(server.url, timeout=10) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]  # type: ignore[no-any-return]


@pytest.fixture
def metrics_of() -> Iterator:
    servers: list[MetricsServer] = []

    def start(service) -> MetricsServer:
        server = serve_metrics(service, "127.0.0.1:0")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_a_scrape_reads_actors_drivers_transport_and_journal(
    make_service, metrics_of, runtime, clock
):
    service = make_service(clock=clock, mailbox_capacity=50)
    server = service.serve("tcp://127.0.0.1:0")
    with RpcClient(server.endpoint, green=runtime.name == "gevent", timeout=10) as client:
        for i in range(3):
            client.call("b1", "create", {"resource_id": f"r{i}"})
        fake = FakeController.for_backend("h@b1")
        fake.hang("create")
        stuck = client.call_async("b1", "create", {"resource_id": "stuck"})
        fake.wait_until(lambda c: c.in_flight == 1, runtime)
        clock.advance(42.0)  # the driver has been on this one operation for 42 s
        samples = _scrape(metrics_of(service))
        fake.release()
        assert stuck.result()["id"] == "stuck"
    who = {"service": service.name}
    for actor, kind in (("h@b1", "ResourceManager"), ("h@b1/driver", "FakeDriver")):
        assert _value(samples, "actors_actor_up", **who, actor=actor, kind=kind) == 1
        assert _value(samples, "actors_actor_mailbox_capacity", **who, actor=actor) == 50
        assert _value(samples, "actors_actor_restarts_total", **who, actor=actor) == 0
    assert _value(samples, "actors_actor_handling_seconds", **who, actor="h@b1/driver") == 42.0
    assert _value(samples, "actors_actor_handling_seconds", **who, actor="h@b1") == 0.0
    assert _value(samples, "actors_driver_ready", **who, backend="h@b1") == 1
    assert _value(samples, "actors_registry_available", **who) == 1
    endpoint = {**who, "endpoint": server.endpoint}
    assert _value(samples, "actors_rpc_events_total", **endpoint, event="call") == 4
    assert _value(samples, "actors_rpc_in_flight", **endpoint) == 1  # the stuck one
    assert ("actors_journal_pending_writes", frozenset(who.items())) in samples
    assert _value(samples, "actors_journal_commits_total", **who) >= 0


def test_a_driver_that_is_not_ready_and_a_restart_show(make_service, metrics_of):
    FakeController.for_backend("h@b2").fail_setup(OSError("disk not mounted"), times=100)
    policy = {"strategy": "one_for_one", "backoff": {"initial": 0, "jitter": 0}}
    service = make_service({"b1": backend(), "b2": backend()}, registry=False, supervision=policy)
    server = metrics_of(service)
    who = {"service": service.name}
    samples = _scrape(server)
    assert _value(samples, "actors_driver_ready", **who, backend="h@b1") == 1
    assert _value(samples, "actors_driver_ready", **who, backend="h@b2") == 0
    assert ("actors_registry_available", frozenset(who.items())) not in samples  # no registry
    assert not any(name.startswith("actors_journal") for name, _ in samples)
    cell = service.system.directory.entry("h@b1").cell
    with pytest.raises(ActorCrashed):
        service.call("b1", "crash", timeout=5)
    assert cell.exited.wait(5)
    service.system.directory.wait_for("h@b1", "running", timeout=5)
    after = _scrape(server)
    assert _value(after, "actors_actor_restarts_total", **who, actor="h@b1") == 1
    assert _value(after, "actors_actor_up", **who, actor="h@b1", kind="ResourceManager") == 1


@pytest.mark.parametrize("bind", ["nonsense", "127.0.0.1", "host:99999", ":80"])
def test_a_bad_metrics_bind_is_a_config_error(bind):
    with pytest.raises(ConfigError, match="metrics_bind must be host:port"):
        load_config(None, metrics_bind=bind)
    assert load_config(None, metrics_bind="[::1]:9464").metrics_bind == "[::1]:9464"
