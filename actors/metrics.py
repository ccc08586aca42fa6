"""Prometheus metrics of a running Service, read when they are scraped.

Nothing is counted on the request path for them: a scrape reads what the
service keeps anyway (each actor's status, readiness, the transport servers'
counters, the journal's queue), so metrics cost nothing between scrapes.

Embedded apps register the collector in their own registry::

    from prometheus_client import REGISTRY
    REGISTRY.register(ServiceCollector(service))

`actorsd` serves them over HTTP when `metrics_bind` is set (`--metrics-bind
127.0.0.1:9464`), at `/metrics`. docs/operations.md lists every metric.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from actors.config import split_host_port

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from actors.service import Service

__all__ = ["MetricsServer", "ServiceCollector", "serve_metrics"]

log = logging.getLogger(__name__)


class ServiceCollector(Collector):
    """Collects one service's metrics at scrape time (labels: `service`, then what varies)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Any]:
        service = self.service
        name = service.name
        actors = service.status()
        up = GaugeMetricFamily(
            "actors_actor_up", "1 while the actor runs", labels=["service", "actor", "kind"]
        )
        mailbox = GaugeMetricFamily(
            "actors_actor_mailbox_messages",
            "messages waiting in the actor's mailbox",
            labels=["service", "actor"],
        )
        capacity = GaugeMetricFamily(
            "actors_actor_mailbox_capacity",
            "the mailbox bound (requests past it are refused with Busy)",
            labels=["service", "actor"],
        )
        restarts = CounterMetricFamily(
            "actors_actor_restarts",
            "restarts of the actor under this name",
            labels=["service", "actor"],
        )
        handling = GaugeMetricFamily(
            "actors_actor_handling_seconds",
            "how long the message being handled has run (0 when idle): a stuck driver grows",
            labels=["service", "actor"],
        )
        for actor in actors:
            who = [name, str(actor["name"])]
            up.add_metric([*who, str(actor.get("kind", ""))], actor.get("state") == "running")
            restarts.add_metric(who, actor.get("restarts") or 0)
            if "mailbox" in actor:
                mailbox.add_metric(who, actor["mailbox"])
                capacity.add_metric(who, actor.get("capacity") or 0)
                handling.add_metric(who, actor.get("current_age") or 0.0)
        yield from (up, mailbox, capacity, restarts, handling)
        yield from self._backends(name)
        yield from self._transport(name)
        yield from self._journal(name)

    def _backends(self, name: str) -> Iterator[Any]:
        service, actor = self.service, self.service.actor
        ready = GaugeMetricFamily(
            "actors_driver_ready",
            "1 when the backend's driver is set up and takes operations",
            labels=["service", "backend"],
        )
        registry_up = GaugeMetricFamily(
            "actors_registry_available",
            "1 while the registry database answers (0 during an outage; absent without one)",
            labels=["service"],
        )
        if actor is not None and service.system is not None:
            for manager in actor.managers():
                ready.add_metric([name, manager], service.system.is_ready(f"{manager}/driver"))
            if service.registry is not None:
                registry_up.add_metric([name], actor.registry_available)
        yield ready
        yield registry_up

    def _transport(self, name: str) -> Iterator[Any]:
        events = CounterMetricFamily(
            "actors_rpc_events",
            "messages a transport server took, by kind, and what it refused or failed, by reason",
            labels=["service", "endpoint", "event"],
        )
        in_flight = GaugeMetricFamily(
            "actors_rpc_in_flight",
            "requests a transport server is answering",
            labels=["service", "endpoint"],
        )
        for server in list(self.service.servers):
            endpoint = server.endpoint
            for event, count in dict(server.stats).items():
                events.add_metric([name, endpoint, str(event)], count)
            in_flight.add_metric([name, endpoint], server.in_flight)
        yield events
        yield in_flight

    def _journal(self, name: str) -> Iterator[Any]:
        operations = self.service.operations
        if operations is None:
            return
        journal = operations.journal
        yield _gauge(
            "actors_journal_operations_in_flight",
            "journaled operations accepted and not yet finished",
            name,
            operations.in_flight,
        )
        yield _gauge(
            "actors_journal_pending_writes",
            "journal writes waiting for the next group commit",
            name,
            journal.pending_writes,
        )
        batches = CounterMetricFamily(
            "actors_journal_commits", "group commits the journal made", labels=["service"]
        )
        batches.add_metric([name], journal.batches)
        yield batches


def _gauge(metric: str, documentation: str, service: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(metric, documentation, labels=["service"])
    family.add_metric([service], value)
    return family


class MetricsServer:
    """An HTTP server of one service's metrics at /metrics (prometheus_client's, a thread)."""

    def __init__(self, httpd: WSGIServer, thread: Any) -> None:
        self._httpd, self._thread = httpd, thread
        host, port = str(httpd.server_address[0]), int(httpd.server_address[1])
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket (waits at most `timeout` for the thread)."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout)


def serve_metrics(service: Service, bind: str) -> MetricsServer:
    """Serve `service`'s metrics at http://`bind`/metrics until `stop()`.

    A registry of its own, so only this service's metrics are served (not the
    process-wide default registry's). Port 0 picks a free port (see `url`).
    """
    host, port = split_host_port(bind)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(service))
    httpd, thread = start_http_server(port, addr=host, registry=registry)
    server = MetricsServer(httpd, thread)
    log.info("metrics on %s", server.url)
    return server
