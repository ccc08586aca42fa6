"""`ServiceActor`: one per process; starts, supervises and routes to managers.

It is built from a `ServiceConfig`: for each enabled backend it loads the
manager and driver classes by import path, validates the driver's options, and
starts a ManagerActor named `host@backend`. It supervises them with the
configured strategy. Routing is a table it owns (target name to manager name);
callers route through it without a hop through its mailbox, so the service is
never a bottleneck for requests.

Its other jobs are each a collaborator of its own, a plain object it owns
that runs in its mailbox and that it schedules: `Heartbeat` (registry rows
and heartbeats), `Recovery` (crash recovery of the journal), `JournalUpkeep`
(pruning, stranded operations), `CapabilityRounds` (capability reports) and
`HeapTrimmer` (malloc_trim).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors._backends import BackendPlan, plan_backends
from actors._capability_rounds import CapabilityRounds
from actors._heap import HeapTrimmer
from actors._heartbeat import Heartbeat
from actors._journal_upkeep import STRANDED_AFTER, JournalUpkeep
from actors._operations import Operations
from actors._recovery import Recovery
from actors.actor import BaseActor
from actors.config import ServiceConfig
from actors.errors import NotFound
from actors.manager_actor import ManagerActor
from actors.registry import Registry
from actors.runtime import ActorFuture, configure_offload
from actors.supervision import ChildSpec, SupervisionPolicy

__all__ = ["BackendPlan", "ServiceActor", "plan_backends"]


class ServiceActor(BaseActor):
    """The front door of a process: supervises one ManagerActor per backend.

    With a registry it also keeps the process's rows alive: every
    `report_interval` one transaction heartbeats every ready manager (a manager
    whose driver is not ready does not heartbeat, so others see it down). The
    database work runs off the actors; an outage is logged once when it starts
    and once when it ends, and never stops RPC service.
    """

    def __init__(
        self,
        config: ServiceConfig,
        plans: list[BackendPlan],
        registry: Registry | None = None,
        operations: Operations | None = None,
    ) -> None:
        self.config = config
        self.plans = plans
        self.registry = registry
        self.operations = operations
        self.started_at = registry.now() if registry is not None else None
        self.serving = False  # phase 5 reached: restarted managers start serving at once
        self.failed_backends: dict[str, str] = {}  # failed a start phase: never heartbeat
        self._timers: list[Any] = []
        self.routes: dict[str, str] = {}
        for plan in plans:
            self.routes[plan.name] = plan.name
            self.routes[plan.backend] = plan.name
        # The collaborators: each job but supervision and routing, run in this mailbox.
        self._recovery = (
            Recovery(self, operations, self.started_at) if operations is not None else None
        )
        self._upkeep = (
            JournalUpkeep(self, operations, registry, self.started_at)
            if operations is not None
            else None
        )
        self._heartbeat = (
            Heartbeat(self, registry, self._registry_reached) if registry is not None else None
        )
        if operations is not None and self._heartbeat is not None:
            operations.fence = self._heartbeat.fenced
        self._capabilities = CapabilityRounds(self, registry)
        self._heap = HeapTrimmer()

    def child_specs(self) -> list[ChildSpec]:
        return [self._child_spec(self.config, plan) for plan in self.plans]

    def _child_spec(self, config: ServiceConfig, plan: BackendPlan) -> ChildSpec:
        return ChildSpec(
            plan.name,
            _manager_factory(config, plan, self.operations, lambda: self.serving, self.registry),
            mailbox_capacity=plan.config.mailbox_capacity,
        )

    def supervision_policy(self) -> SupervisionPolicy:
        return self.config.supervision

    def on_start(self) -> None:
        self._configure_offload()
        self.system.add_ready_listener(self._on_ready)
        self.log.info(
            "service %s on %s started backends: %s",
            self.config.binary,
            self.config.host,
            ", ".join(p.backend for p in self.plans) or "none",
        )

    def on_stop(self) -> None:
        self.system.remove_ready_listener(self._on_ready)

    def on_crash(self, reason: str) -> None:
        self.system.remove_ready_listener(self._on_ready)

    def _on_ready(self, name: str) -> None:
        """A driver finished setup (in its own context): heartbeat now, not an interval later.

        Only posts a request to this actor; refused (mailbox full) it is
        dropped, and the next periodic round heartbeats instead. An incarnation
        that ended without its stop hooks (abandoned: its thread would not stop)
        takes itself off the listeners here, at the first event it hears.
        """
        if self._cell._stopping:
            self.system.remove_ready_listener(self._on_ready)
            return
        if self.serving and name.endswith("/driver"):
            self.system.handle(self.name).ask("report")

    def _configure_offload(self) -> None:
        """Size the process's offload lanes from the configuration (again on reload)."""
        config = self.config
        configure_offload(
            workers=config.offload_workers,
            queue=config.offload_queue,
            system_workers=config.offload_system_workers,
            changes_workers=config.offload_changes_workers,
            changes_backlog=config.offload_changes_backlog,
        )

    # -- start phases and timers -------------------------------------------------------
    def register_now(self) -> None:
        """Phase 1, in the caller's thread before the actors start: get-or-create the rows."""
        assert self._heartbeat is not None
        self._heartbeat.register_now()

    def begin_serving(self, failed_backends: dict[str, str]) -> None:
        """Phase 5: managers restarted from now on serve at once; failed ones never heartbeat."""
        self.failed_backends = dict(failed_backends)
        self.serving = True

    def begin_reporting(self) -> None:
        """Phase 5: heartbeats (and the journal's upkeep) begin; managers are told too."""
        self.serving = True
        if self.registry is not None:
            self.report()  # the first heartbeat now, not an interval later
        if self.config.capability_topic and self.registry is not None:
            self.publish_capabilities()
        self._schedule()

    def _schedule(self) -> None:
        """(Re)start the service's timers from the current configuration."""
        for timer in self._timers:
            timer.cancel()
        config, timers = self.config, []
        if self.registry is not None:
            timers.append(self.call_repeatedly(config.report_interval, self.report))
        if self.operations is not None:
            timers.append(self.call_repeatedly(config.journal_prune_interval, self.prune))
        if config.capability_topic and self.registry is not None:
            timers.append(
                self.call_repeatedly(config.capability_interval, self.publish_capabilities)
            )
        if config.memory_trim_interval > 0:
            timers.append(self.call_repeatedly(config.memory_trim_interval, self.trim_memory))
        self._timers = timers

    # -- reload (SIGHUP) -------------------------------------------------------------------
    def reconfigure(self, config: ServiceConfig, plans: list[BackendPlan]) -> dict[str, Any]:
        """Apply a new configuration in the mailbox: intervals, added and removed backends.

        New backends start (init_host, then, the service being up, at once
        init_host_with_rpc and periodic tasks); removed ones stop gracefully
        (their deadline applies; what they cut is journaled) and their rows
        are marked stopped. The caller decided what needs a restart instead.
        """
        old = {p.name: p for p in self.plans}
        new = {p.name: p for p in plans}
        started = [name for name in new if name not in old]
        stopped = [name for name in old if name not in new]
        for name in stopped:
            self.remove_child(name, "removed from the configuration")
            self.routes = {t: m for t, m in self.routes.items() if m != name}
            self.failed_backends.pop(name, None)
            if self._recovery is not None:
                self._recovery.forget(name)
        self.config = config
        self._configure_offload()
        self.plans = [old.get(p.name, p) for p in plans]
        for name in started:
            plan = new[name]
            self.routes[plan.name] = plan.name
            self.routes[plan.backend] = plan.name
            if self._recovery is not None:
                self._recovery.expect(name)
            self.add_child(self._child_spec(config, plan))
        if self.serving:
            self._schedule()
        if self._heartbeat is not None and (started or stopped):
            self._heartbeat.backends_changed(stopped)
        return {"started": started, "stopped": stopped}

    # -- the collaborators' jobs, as requests and timers name them ---------------------------
    def ready_managers(self) -> list[str]:
        """Managers whose driver finished setup and that started (the ones that heartbeat)."""
        return [
            p.name
            for p in self.plans
            if p.name not in self.failed_backends and self.system.is_ready(f"{p.name}/driver")
        ]

    def set_endpoint(self, endpoint: str, server_key: str | None = None) -> None:
        """Where the transport is reached (and its CURVE key); re-registers the rows with it."""
        if self._heartbeat is not None:
            self._heartbeat.set_endpoint(endpoint, server_key)

    def report(self) -> ActorFuture[Any]:
        """Ask for a registry round (register if needed, one heartbeat): see `Heartbeat`.

        The future completes when a round that started after this call has
        finished (at once without a registry).
        """
        if self._heartbeat is None:
            waiter = self.runtime.future()
            waiter.set(None)
            return waiter
        return self._heartbeat.report()

    @property
    def registry_available(self) -> bool:
        """False from the round that found the registry unreachable until one reaches it."""
        return self._heartbeat is None or self._heartbeat.available

    @property
    def round_in_flight(self) -> ActorFuture[Any] | None:
        """The offloaded work of the current registry round (Service.stop waits for it)."""
        return self._heartbeat.round_in_flight if self._heartbeat is not None else None

    @property
    def unrecovered(self) -> set[str]:
        """Managers whose operations from before this process have not been recovered."""
        return self._recovery.unrecovered if self._recovery is not None else set()

    def _registry_reached(self) -> None:
        """A registry round succeeded: the journal's recovery may go on, and what
        hosts now down left unfinished on the topic is adopted."""
        if self._recovery is not None:
            self._recovery.registry_reached()
        if self._upkeep is not None:
            self._upkeep.adopt_orphans()

    def publish_capabilities(self) -> ActorFuture[Any]:
        """Publish every ready backend's capability report: see `CapabilityRounds.publish`."""
        return self._capabilities.publish()

    def trim_memory(self) -> ActorFuture[Any]:
        """Give free heap memory back to the OS, off the actors (see actors/_heap.py)."""
        return self._heap.trim(self.runtime)

    def sweep_stranded(self, older_than: float = STRANDED_AFTER) -> ActorFuture[Any]:
        """Hand to recovery what this process accepted but never ran: see `JournalUpkeep`."""
        assert self._upkeep is not None and self.registry is not None
        return self._upkeep.sweep_stranded(older_than)

    def prune(self) -> ActorFuture[Any]:
        """Delete finished operations past `journal_retention`; sweep stranded ones too."""
        assert self._upkeep is not None
        return self._upkeep.prune()

    # -- routing ------------------------------------------------------------------------------
    def route(self, target: str) -> str:
        """The manager name for `target` (`host@backend` or `backend`)."""
        name = self.routes.get(target)
        if name is None:
            raise NotFound(target)
        return name

    def plan(self, name: str) -> BackendPlan:
        """The plan of the manager named `name`."""
        for plan in self.plans:
            if plan.name == name:
                return plan
        raise NotFound(name)

    def managers(self) -> list[str]:
        return [plan.name for plan in self.plans]


def _manager_factory(
    config: ServiceConfig,
    plan: BackendPlan,
    operations: Operations | None,
    serving: Callable[[], bool],
    registry: Registry | None = None,
) -> Any:
    def make() -> ManagerActor:
        manager = plan.manager_class(
            host=config.host,
            backend=plan.backend,
            driver_class=plan.driver_class,
            driver_options=plan.driver_options,
            config=plan.config,
        )
        manager.operations = operations
        manager.registry = registry
        manager._serving = serving
        return manager

    return make
