"""Calls by topic: the registry says which services are up and where they listen."""

from __future__ import annotations

import pytest

from actors import NotFound, Service, ServiceConfig
from actors.client import TopicClient
from actors.registry import Registry
from tests.support import backend


@pytest.fixture
def two_hosts(tmp_path, runtime_name):
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"  # one registry for both "hosts"
    services = []
    for host in ("node1", "node2"):
        config = ServiceConfig(
            host=host,
            runtime=runtime_name,
            topic="shares",
            database_url=url,
            enabled_backends=["b1"],
            backends={"b1": backend()},
        )
        service = Service(config).start(timeout=10)
        service.serve("tcp://127.0.0.1:0")
        services.append(service)
    for service in services:  # wait for the rounds after serve() (endpoint registered)
        service.system.handle(service.name).ask("report").result()
    registry = Registry(url, service_down_time=60)
    yield services, registry
    registry.close()
    for service in services:
        assert service.stop(10)


def test_call_any_or_one_up_service_of_a_topic(two_hosts, runtime_name):
    _, registry = two_hosts
    with TopicClient(registry, "shares", green=runtime_name == "gevent", timeout=10) as client:
        assert client.call("ping", target="node2@b1")["name"] == "node2@b1"
        names = {client.call("ping")["name"] for _ in range(20)}
        assert names <= {"node1@b1", "node2@b1"} and names
        registry.set_disabled("node1", "b1", True, "maintenance")
        assert {client.call("ping")["name"] for _ in range(10)} == {"node2@b1"}
        with pytest.raises(NotFound, match=r"no service node1@b1 \(of topic 'shares'\) is up"):
            client.call("ping", target="node1@b1")
        with pytest.raises(NotFound, match="no service of topic 'nothing-here' is up") as caught:
            TopicClient(registry, "nothing-here").call("ping")
        assert caught.value.target == "nothing-here"
