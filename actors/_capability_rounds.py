"""`CapabilityRounds`: the ServiceActor's capability publishing (see actors/capabilities.py).

Every `capability_interval` (and at phase 5) each ready driver is asked for
`get_stats()`, and one report per backend is cast to every up service of
`capability_topic`, off the actors. One round at a time, so a receiver slow
to answer holds at most one system-lane worker.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from actors._service_view import ServiceView
from actors.capabilities import publish_reports
from actors.registry import Registry
from actors.runtime import ActorFuture
from transport.security import ClientSecurity

__all__ = ["CapabilityRounds"]


class CapabilityRounds:
    """Collects capability reports from the drivers and publishes them, one round at a time.

    Runs in the ServiceActor's mailbox: the drivers' answers and the
    publishing's outcome come back through `pipe`.
    """

    def __init__(self, service: ServiceView, registry: Registry | None) -> None:
        self._service = service
        self.registry = registry
        self._publishing: ActorFuture[Any] | None = None  # the round under way
        self._publish_next: ActorFuture[Any] | None = None  # ... and the one asked for since

    def publish(self) -> ActorFuture[Any]:
        """Ask every ready driver for get_stats(), then publish the reports off the actors.

        The future completes with {"receivers": n, "failed": m, "reports": k}.
        A driver that does not answer is left out of this round (logged).
        Rounds never overlap: asked while one is under way, the next round
        starts when it ends (asks meanwhile share that next round), and the
        future is that next round's.
        """
        if self._publish_next is not None:  # queued already: share it
            return self._publish_next
        if self._publishing is None or self._publishing.done():
            self._publishing = self._round()
            return self._publishing
        self._publish_next = self._service.runtime.future()
        self._service.pipe(self._publishing, self._queued)
        return self._publish_next

    def _queued(self, _: Any) -> None:  # in the mailbox: the last round ended
        waiting, self._publish_next = self._publish_next, None
        if waiting is not None:
            self._publishing = self._round()
            self._publishing.transfer_to(waiting)

    def _round(self) -> ActorFuture[Any]:
        service = self._service
        names = service.ready_managers()
        stats = {
            name: service.child(f"{name}/driver").ask(
                "get_stats", timeout=service.config.default_timeout
            )
            for name in names
        }
        result = service.runtime.future()
        remaining = len(stats)
        if not stats:
            result.set({"receivers": 0, "failed": 0, "reports": 0})
            return result
        reports: list[dict[str, Any]] = []

        def collected(name: str, done: Any) -> None:
            nonlocal remaining
            remaining -= 1
            error = done.exception()
            try:
                if error is not None:
                    raise error
                reports.append(self._report(name, done.value()))
            except Exception as exc:  # e.g. the backend was reloaded away meanwhile
                service.log.warning("no capabilities from %s this round: %s", name, exc)
            if remaining == 0:
                try:
                    self._send(reports, result)
                except Exception as exc:  # the round must end, or no later one starts
                    service.log.warning("capability round failed: %s", exc)
                    result.try_set({"receivers": 0, "failed": 0, "reports": len(reports)})

        for name, future in stats.items():
            service.pipe(future, functools.partial(collected, name))
        return result

    def _report(self, name: str, capabilities: Any) -> dict[str, Any]:
        """One backend's report, as the receivers get it."""
        config = self._service.config
        plan = self._service.plan(name)
        return {
            "service": name,
            "host": config.host,
            "backend": plan.backend,
            "topic": config.topic,
            "timestamp": time.time(),
            "capabilities": capabilities,
        }

    def _send(self, reports: list[dict[str, Any]], result: ActorFuture[Any]) -> None:
        """Publish the round's reports off the actors; `result` gets the counts."""
        service = self._service
        config = service.config
        if self.registry is None or config.capability_topic is None:  # reloaded away
            result.try_set({"receivers": 0, "failed": 0, "reports": 0})
            return
        key = config.transport.client_secret_key  # this daemon's own keypair, if any
        work = service.runtime.offload(
            publish_reports,
            self.registry,
            config.capability_topic,
            reports,
            min(config.default_timeout, config.capability_interval),
            None if key is None else ClientSecurity(key),
            lane="system",
        )

        def sent(done: Any) -> None:
            error = done.exception()
            if error is not None:
                service.log.warning("capability reports not published: %s", error)
                result.try_set({"receivers": 0, "failed": len(reports), "reports": len(reports)})
                return
            result.try_set({**done.value(), "reports": len(reports)})

        service.pipe(work, sent)
