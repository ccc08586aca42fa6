"""Capability reports: what each backend can do, published to a topic (e.g. a scheduler).

With `capability_topic` set, the ServiceActor asks every ready driver for
`get_stats()` at start (phase 5) and every `capability_interval`, and casts
one report per backend to every up service of that topic (found in the
registry), method `update_capabilities`, argument `report`:

    {"service": "node1@fast", "host": "node1", "backend": "fast",
     "topic": "shares", "timestamp": 1795000000.123, "capabilities": {...}}

Reports can arrive out of order (several processes, retries). A receiver
keeps the newest per service and drops older ones; `CapabilityStore` does
that for a manager:

    class SchedulerManager(ManagerActor):
        def init_host(self) -> None:
            self.capabilities = CapabilityStore()

        @rpc
        def update_capabilities(self, report: dict[str, Any]) -> bool:
            return self.capabilities.update(report)
"""

from __future__ import annotations

import logging
from typing import Any

from actors.client import client_security_for
from actors.registry import Registry, ServiceRecord
from transport.client import RpcClient
from transport.errors import TransportError
from transport.protocol import CAST
from transport.security import ClientSecurity

__all__ = ["CapabilityStore", "publish_reports"]

log = logging.getLogger(__name__)

METHOD = "update_capabilities"


class CapabilityStore:
    """The newest capability report of each service; older ones are dropped.

    Bounded: at most `max_services` services are kept. A report from one more
    service evicts the service whose newest report is the oldest (most likely
    one that is gone), so whoever can send reports cannot grow it without end.
    """

    def __init__(self, max_services: int = 4096) -> None:
        if max_services < 1:
            raise ValueError("max_services must be at least 1")
        self.max_services = max_services
        self.reports: dict[str, dict[str, Any]] = {}
        self.dropped = 0
        self.evicted = 0

    def update(self, report: dict[str, Any]) -> bool:
        """Keep `report` unless one at least as new is already here; True if kept."""
        service, stamp = report.get("service"), report.get("timestamp")
        if not isinstance(service, str) or not isinstance(stamp, int | float):
            raise ValueError("a capability report needs 'service' (str) and 'timestamp' (number)")
        current = self.reports.get(service)
        if current is not None and current["timestamp"] >= stamp:
            self.dropped += 1
            return False
        if current is None and len(self.reports) >= self.max_services:
            stalest = min(self.reports, key=lambda name: self.reports[name]["timestamp"])
            if self.reports[stalest]["timestamp"] >= stamp:  # older than all kept: not kept
                self.dropped += 1
                return False
            del self.reports[stalest]
            self.evicted += 1
        self.reports[service] = report
        return True

    def get(self, service: str) -> dict[str, Any] | None:
        return self.reports.get(service)


def publish_reports(
    registry: Registry,
    topic: str,
    reports: list[dict[str, Any]],
    timeout: float,
    security: ClientSecurity | None = None,
) -> dict[str, int]:
    """Cast each report to every up service of `topic`; blocking (run it off the actors).

    Each receiver is reached with the CURVE key its registry row publishes
    and `security` (this daemon's client keypair). Returns {"receivers": n,
    "failed": m}: casts refused or unanswered are counted and logged, never
    raised (the next interval publishes again). Every wait ends by `timeout`.
    """
    receivers: dict[str, ServiceRecord] = {}
    for record in registry.services(topic=topic):
        if record.is_up and record.endpoint:
            receivers.setdefault(record.endpoint, record)
    failed = 0
    clients: dict[str, RpcClient] = {}
    try:
        for endpoint, record in sorted(receivers.items()):
            try:
                clients[endpoint] = RpcClient(
                    endpoint,
                    timeout=timeout,
                    green=False,
                    security=client_security_for(security, record),
                )
            except Exception as exc:  # no keypair for a CURVE server, a malformed address
                failed += len(reports)
                log.warning("capability reports to %s not sent: %s", endpoint, exc)
        for report in reports:
            futures = {
                endpoint: client.call_async(
                    topic, METHOD, {"report": report}, timeout=timeout, _kind=CAST
                )
                for endpoint, client in clients.items()
            }
            for endpoint, future in futures.items():
                try:
                    future.result()
                except TransportError as exc:
                    failed += 1
                    log.warning("capability report to %s failed: %s", endpoint, exc)
    finally:
        for client in clients.values():
            client.close()
    return {"receivers": len(receivers), "failed": failed}
