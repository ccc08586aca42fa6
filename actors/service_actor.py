"""`ServiceActor`: one per process; starts, supervises and routes to managers.

It is built from a `ServiceConfig`: for each enabled backend it loads the
manager and driver classes by import path, validates the driver's options, and
starts a ManagerActor named `host@backend`. It supervises them with the
configured strategy. Routing is a table it owns (target name to manager name);
callers route through it without a hop through its mailbox, so the service is
never a bottleneck for requests.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from actors._heap import trim_heap
from actors._operations import Operations
from actors.actor import BaseActor
from actors.capabilities import publish_reports
from actors.config import BackendConfig, ServiceConfig
from actors.drivers.base import DriverActor, DriverOptions
from actors.errors import ActorsError, LoadError, NotFound
from actors.loading import load_object
from actors.manager_actor import ManagerActor
from actors.registry import Registry, ServiceRow
from actors.registry.journal import OperationRecord
from actors.runtime import ActorFuture, configure_offload
from actors.supervision import ChildSpec, SupervisionPolicy

__all__ = ["BackendPlan", "ServiceActor", "plan_backends"]

# An operation accepted by this process and unfinished this long, with nothing
# here running it, is stranded (sweep_stranded): far beyond the moment between
# a commit and the hand-over to the manager.
STRANDED_AFTER = 60.0

# Unfinished operations read per query during crash recovery.
RECOVERY_PAGE = 500


@dataclass(frozen=True)
class BackendPlan:
    """A backend whose classes loaded and whose options validated."""

    backend: str
    name: str
    manager_class: type[ManagerActor]
    driver_class: type[DriverActor]
    driver_options: DriverOptions
    config: BackendConfig


def _load(path: str, kind: type[Any], where: str) -> Any:
    """load_object, its LoadError saying where the path was configured."""
    try:
        return load_object(path, kind=kind)
    except LoadError as exc:
        exc.message = f"{where}: {exc.message}"
        exc.args = (exc.message,)
        raise


def plan_backends(config: ServiceConfig, *, file: str | None = None) -> list[BackendPlan]:
    """Load and validate every enabled backend; raise LoadError/ConfigError."""
    plans = []
    for backend in config.enabled_backends:
        bc = config.backends[backend]
        where = f"{file}: backends.{backend}" if file else f"backends.{backend}"
        manager_class = _load(bc.manager, ManagerActor, f"{where}.manager")
        driver_class: type[DriverActor] = _load(bc.driver, DriverActor, f"{where}.driver")  # type: ignore[type-abstract]
        options = driver_class.validate_options(
            bc.options, key=f"backends.{backend}.options", file=file
        )
        manager_class.validate_options(
            bc.manager_options, key=f"backends.{backend}.manager_options", file=file
        )
        plans.append(
            BackendPlan(
                backend, config.manager_name(backend), manager_class, driver_class, options, bc
            )
        )
    return plans


def _report_once(
    registry: Registry,
    rows: dict[str, ServiceRow],
    ids: dict[str, int] | None,
    ready: list[str],
    stopped: list[int],
) -> dict[str, int] | None:
    """One registry round, in a worker thread: register if needed, then ONE heartbeat.

    Rows of backends removed since the last round (`stopped`) are marked
    stopped first: rounds never overlap, so no earlier round can heartbeat
    them back up afterwards. Returns the ids, or None when the heartbeat
    missed rows (deleted, or a database that was reset): the next round
    registers again.
    """
    if stopped:
        registry.mark(stopped, "stopped")
    if ids is None:
        registry.upgrade()
        names = list(rows)
        ids = dict(zip(names, registry.register([rows[n] for n in names]), strict=True))
    touched = registry.heartbeat([ids[name] for name in ready])
    return ids if touched == len(ready) else None


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
        self.started_at = registry._clock() if registry is not None else None
        # Managers whose operations from before this process have not been recovered.
        self.unrecovered: set[str] = {p.name for p in plans} if operations is not None else set()
        self._recovering = 0  # reads and hand-offs of recovery in progress
        self._recovery_targets: list[str] = []  # the managers of the current pass
        self._recovery_failed: set[str] = set()  # ... whose operations wait for the next
        self._recovery_next: tuple[datetime, str] | None = None  # cursor of the next page
        self._orphans_checked = False  # unfinished work of backends not run here, logged once
        self.endpoint: str | None = None
        self.registry_ids: dict[str, int] | None = None
        self._reporting = False
        self._report_again = False
        self._publishing: ActorFuture[Any] | None = None  # the capability round under way
        self._publish_next: ActorFuture[Any] | None = None  # ... and the one asked for since
        self._trimming: ActorFuture[Any] | None = None  # the heap trim under way
        self._generation = 0  # bumped when the rows must be registered again
        self._round_generation = 0
        self.round_in_flight: ActorFuture[Any] | None = None
        """The offloaded work of the current round (Service.stop waits for it)."""
        self._round_waiters: list[ActorFuture[Any]] = []
        self._next_waiters: list[ActorFuture[Any]] = []
        self._outage_since: float | None = None
        self.serving = False  # phase 5 reached: restarted managers start serving at once
        self._timers: list[Any] = []
        self._rows_to_stop: list[int] = []  # rows of removed backends, for the next round
        self._round_stopped: list[int] = []
        self.failed_backends: dict[str, str] = {}  # failed a start phase: never heartbeat
        self.routes: dict[str, str] = {}
        for plan in plans:
            self.routes[plan.name] = plan.name
            self.routes[plan.backend] = plan.name

    def child_specs(self) -> list[ChildSpec]:
        return [
            ChildSpec(
                plan.name,
                _manager_factory(
                    self.config, plan, self.operations, lambda: self.serving, self.registry
                ),
                mailbox_capacity=plan.config.mailbox_capacity,
            )
            for plan in self.plans
        ]

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

    def register_now(self) -> None:
        """Phase 1, in the caller's thread before the actors start: get-or-create the rows.

        A database that does not answer is not fatal: the registry rounds
        register once it does (the outage is logged by them).
        """
        assert self.registry is not None
        try:
            self.registry.upgrade()
            rows = self._rows()
            names = list(rows)
            ids = self.registry.register([rows[n] for n in names])
            self.registry_ids = dict(zip(names, ids, strict=True))
        except ActorsError as exc:
            logging.getLogger(__name__).debug("registering at start failed (rounds retry): %s", exc)

    @property
    def registry_available(self) -> bool:
        """False from the round that found the registry unreachable until one reaches it."""
        return self._outage_since is None

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
            self.unrecovered.discard(name)
        self.config = config
        self._configure_offload()
        self.plans = [old.get(p.name, p) for p in plans]
        for name in started:
            plan = new[name]
            self.routes[plan.name] = plan.name
            self.routes[plan.backend] = plan.name
            if self.operations is not None:
                self.unrecovered.add(name)
            self.add_child(
                ChildSpec(
                    plan.name,
                    _manager_factory(
                        config, plan, self.operations, lambda: self.serving, self.registry
                    ),
                    mailbox_capacity=plan.config.mailbox_capacity,
                )
            )
        if self.serving:
            self._schedule()
        if self.registry is not None and (started or stopped):
            if stopped and self.registry_ids is not None:
                # Marked by the next round, in order with every heartbeat.
                self._rows_to_stop += [
                    self.registry_ids[n] for n in stopped if n in self.registry_ids
                ]
            self.registry_ids = None  # register the new set of rows in the next round
            self._generation += 1
            self.report()
        return {"started": started, "stopped": stopped}

    # -- capability reports (actors/capabilities.py) -------------------------------------
    def publish_capabilities(self) -> ActorFuture[Any]:
        """Ask every ready driver for get_stats(), then publish the reports off the actors.

        The future completes with {"receivers": n, "failed": m, "reports": k}.
        A driver that does not answer is left out of this round (logged).
        Rounds never overlap, so a receiver slow to answer holds at most one
        system-lane worker: asked while one is under way, the next round
        starts when it ends (asks meanwhile share that next round), and the
        future is that next round's.
        """
        if self._publish_next is not None:  # queued already: share it
            return self._publish_next
        if self._publishing is None or self._publishing.done():
            self._publishing = self._publish_round()
            return self._publishing
        self._publish_next = self.runtime.future()
        self.pipe(self._publishing, self._publish_queued)
        return self._publish_next

    def _publish_queued(self, _: Any) -> None:  # in the mailbox: the last round ended
        waiting, self._publish_next = self._publish_next, None
        if waiting is not None:
            self._publishing = self._publish_round()
            self._publishing.transfer_to(waiting)

    def _publish_round(self) -> ActorFuture[Any]:
        names = self.ready_managers()
        stats = {
            name: self.child(f"{name}/driver").ask("get_stats", timeout=self.config.default_timeout)
            for name in names
        }
        result = self.runtime.future()
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
                self.log.warning("no capabilities from %s this round: %s", name, exc)
            if remaining == 0:
                try:
                    self._send_reports(reports, result)
                except Exception as exc:  # the round must end, or no later one starts
                    self.log.warning("capability round failed: %s", exc)
                    result.try_set({"receivers": 0, "failed": 0, "reports": len(reports)})

        for name, future in stats.items():
            self.pipe(future, functools.partial(collected, name))
        return result

    def _report(self, name: str, capabilities: Any) -> dict[str, Any]:
        plan = self.plan(name)
        return {
            "service": name,
            "host": self.config.host,
            "backend": plan.backend,
            "topic": self.config.topic,
            "timestamp": time.time(),
            "capabilities": capabilities,
        }

    def _send_reports(self, reports: list[dict[str, Any]], result: ActorFuture[Any]) -> None:
        if self.registry is None or self.config.capability_topic is None:  # reloaded away
            result.try_set({"receivers": 0, "failed": 0, "reports": 0})
            return
        work = self.runtime.offload(
            publish_reports,
            self.registry,
            self.config.capability_topic,
            reports,
            self.config.default_timeout,
            lane="system",
        )

        def sent(done: Any) -> None:
            error = done.exception()
            if error is not None:
                self.log.warning("capability reports not published: %s", error)
                result.try_set({"receivers": 0, "failed": len(reports), "reports": len(reports)})
                return
            result.try_set({**done.value(), "reports": len(reports)})

        self.pipe(work, sent)

    # -- registry --------------------------------------------------------------------
    def ready_managers(self) -> list[str]:
        """Managers whose driver finished setup and that started (the ones that heartbeat)."""
        return [
            p.name
            for p in self.plans
            if p.name not in self.failed_backends and self.system.is_ready(f"{p.name}/driver")
        ]

    def set_endpoint(self, endpoint: str) -> None:
        """Where the transport listens; re-registers the rows with it."""
        self.endpoint = endpoint
        self.registry_ids = None
        self._generation += 1
        self.report()

    def report(self) -> ActorFuture[Any]:
        """Ask for a registry round (register if needed, one heartbeat), off the actors.

        Rounds never overlap: asked while one runs, the next starts when it
        ends. The future completes when a round that started after this call
        has finished (whatever its outcome: failures are logged, not raised).
        """
        waiter = self.runtime.future()
        if self.registry is None:
            waiter.set(None)
            return waiter
        self._next_waiters.append(waiter)
        if self._reporting:
            self._report_again = True
        else:
            self._start_round()
        return waiter

    def _start_round(self) -> None:
        assert self.registry is not None
        self._reporting = True
        self._round_generation = self._generation
        self._round_waiters, self._next_waiters = self._next_waiters, []
        rows = self._rows()
        ids = dict(self.registry_ids) if self.registry_ids is not None else None
        ready = self.ready_managers() if self.serving else []  # no heartbeat before phase 5
        stopped, self._rows_to_stop = self._rows_to_stop, []
        work = self.runtime.offload(
            _report_once, self.registry, rows, ids, ready, stopped, lane="system"
        )
        self._round_stopped = stopped
        self.round_in_flight = work
        self.pipe(work, self._reported)

    def _rows(self) -> dict[str, ServiceRow]:
        return {
            p.name: ServiceRow(
                host=self.config.host,
                binary=self.config.binary,
                topic=self.config.topic,
                backend=p.backend,
                endpoint=self.endpoint,
                rpc_version=p.manager_class.RPC_API_VERSION,
            )
            for p in self.plans
        }

    def _reported(self, done: Any) -> None:
        self._reporting = False
        error = done.exception()
        if error is not None:
            self._rows_to_stop += self._round_stopped  # not marked yet: the next round does
            self.registry_ids = None  # the database may come back empty: register again
            if self._outage_since is None:
                self._outage_since = self.clock.monotonic()
                self.log.error("registry unavailable (RPC service goes on): %s", error)
        else:
            if self._round_generation == self._generation:  # else: re-register next round
                self.registry_ids = done.value()
            if self._outage_since is not None:
                self.log.warning(
                    "registry available again after %.0fs",
                    self.clock.monotonic() - self._outage_since,
                )
                self._outage_since = None
            if self.operations is not None:
                # Outcomes kept through an outage go in first, so that recovery
                # does not read them as unfinished.
                self.operations.write_unrecorded()
            if self.unrecovered and self._recovering == 0:
                self._recover()
        for waiter in self._round_waiters:
            waiter.try_set(None)
        self._round_waiters = []
        if self._report_again:
            self._report_again = False
            self._start_round()

    # -- the operation journal ---------------------------------------------------------
    def _recover(self, after: tuple[datetime, str] | None = None) -> None:
        """Find what an earlier process left unfinished and hand it to each manager.

        Runs after a registry round succeeded (the database answers and the
        schema is there), until every manager has taken its operations. Reads
        only this service's managers' operations, `RECOVERY_PAGE` at a time;
        the next page is read once every manager took its part of this one.
        """
        assert self.operations is not None
        if after is None:
            self._recovery_failed = set()
            self._recovery_targets = sorted(self.unrecovered)
        self._recovering += 1
        self._recovery_next = None
        work = self.runtime.offload(
            functools.partial(
                self.operations.journal.unfinished,
                self.started_at,
                targets=self._recovery_targets,
                after=after,
                limit=RECOVERY_PAGE,
            ),
            lane="system",
        )
        self.pipe(work, self._recovered)

    def _recovered(self, done: Any) -> None:
        self._recovering -= 1
        error = done.exception()
        if error is not None:
            self.log.error("could not read unfinished operations (will retry): %s", error)
            self._recovery_failed.update(self._recovery_targets)
            self._recovery_step()
            return
        records: list[OperationRecord] = done.value()
        by_target: dict[str, list[OperationRecord]] = {}
        for record in records:
            by_target.setdefault(record.target, []).append(record)
        if len(records) >= RECOVERY_PAGE:
            last = records[-1]
            self._recovery_next = (last.created_at, last.id)
        for name, mine in sorted(by_target.items()):
            if name not in self.unrecovered:
                # Removed from the configuration meanwhile: if it comes back,
                # these were never handed over, so it is not done.
                self._recovery_failed.add(name)
                continue
            self.log.warning("%s: %d unfinished operation(s) to recover", name, len(mine))
            self._recovering += 1
            handed = self.child(name).ask("recover_operations", (mine,), accepted=True)
            self.pipe(handed, functools.partial(self._handed, name))
        self._recovery_step()

    def _handed(self, name: str, done: Any) -> None:
        """A manager took (or failed to take) its operations to recover."""
        self._recovering -= 1
        error = done.exception()
        if error is None:
            self.log.info("%s recovered operations: %s", name, done.value())
        else:  # restarting, crashed: the next successful round tries again
            self._recovery_failed.add(name)
            self.log.warning("recovery of %s waits (will retry): %s", name, error)
        self._recovery_step()

    def _recovery_step(self) -> None:
        """Once a page is handed over: read the next, or end the pass.

        At the end of a pass, the managers that took everything are done; the
        others (a read or a hand-off failed, or they were away) wait for the
        next successful registry round, which starts a new pass.
        """
        if self._recovering:
            return
        after, self._recovery_next = self._recovery_next, None
        if after is not None:
            self._recover(after)
            return
        for name in self._recovery_targets:
            if name not in self._recovery_failed:
                self.unrecovered.discard(name)
        if not self._orphans_checked and not self._recovery_failed:
            assert self.operations is not None
            self._orphans_checked = True
            journal = self.operations.journal
            work = self.runtime.offload(journal.unfinished_counts, self.started_at, lane="system")
            self.pipe(work, self._orphans_found)

    def _orphans_found(self, done: Any) -> None:
        """Warn about unfinished operations of this host's backends that no manager runs."""
        error = done.exception()
        if error is not None:
            self.log.warning("could not look for orphaned operations: %s", error)
            return
        prefix = f"{self.config.host}@"
        served = {plan.name for plan in self.plans}
        for target, count in sorted(done.value().items()):
            if target.startswith(prefix) and target not in served:
                self.log.warning(
                    "%d unfinished operation(s) of %s, a backend this service does not run: "
                    "they wait for a service that runs it (actorsctl ops --target %s)",
                    count,
                    target,
                    target,
                )

    def trim_memory(self) -> ActorFuture[Any]:
        """Give free heap memory back to the OS, off the actors (see actors/_heap.py).

        Connection churn leaves libzmq's freed per-peer buffers in malloc's
        heap; without this, resident memory stays at its high-water mark.
        """
        if self._trimming is not None and not self._trimming.done():
            return self._trimming  # one trim at a time, whatever the interval
        self._trimming = self.runtime.offload(trim_heap, lane="system")
        return self._trimming

    def sweep_stranded(self, older_than: float = STRANDED_AFTER) -> ActorFuture[Any]:
        """Hand to recovery what this process accepted but never ran (a lost commit ack).

        Unfinished operations of this service's managers, accepted since this
        process started and more than `older_than` seconds ago, that no manager
        here runs and whose outcome is not known here. The manager's
        `recover_operation` decides, as after a crash (re-run or interrupted).
        Runs with each prune (`journal_prune_interval`).
        """
        assert self.operations is not None and self.registry is not None
        operations, plans = self.operations, [plan.name for plan in self.plans]
        cutoff = self.registry._clock() - timedelta(seconds=older_than)
        work = self.runtime.offload(
            functools.partial(
                operations.journal.unfinished,
                cutoff,
                created_after=self.started_at,
                targets=plans,
                limit=RECOVERY_PAGE,
            ),
            lane="system",
        )

        def found(done: Any) -> int:
            error = done.exception()
            if error is not None:
                self.log.warning("could not look for stranded operations: %s", error)
                return 0
            stranded = operations.stranded(done.value())
            by_target: dict[str, list[OperationRecord]] = {}
            for record in stranded:
                by_target.setdefault(record.target, []).append(record)
            for name, mine in sorted(by_target.items()):
                self.log.warning(
                    "%s: %d operation(s) accepted but never run (a commit whose"
                    " acknowledgement was lost?): handed to recovery",
                    name,
                    len(mine),
                )
                handed = self.child(name).ask("recover_operations", (mine,), accepted=True)
                self.pipe(handed, functools.partial(self._swept, name))
            return len(stranded)

        return self.pipe(work, found)

    def _swept(self, name: str, done: Any) -> None:
        error = done.exception()
        if error is not None:  # restarting: the next sweep finds them again
            self.log.warning("stranded operations of %s wait for the next sweep: %s", name, error)
        else:
            self.log.info("%s recovered stranded operations: %s", name, done.value())

    def prune(self) -> ActorFuture[Any]:
        """Delete finished operations older than `journal_retention`, off the actors.

        Stranded operations are looked for at the same time (`sweep_stranded`).
        """
        assert self.operations is not None
        if self.registry is not None and self.started_at is not None:
            self.sweep_stranded()
        retention = timedelta(seconds=self.config.journal_retention)
        work = self.runtime.offload(self.operations.journal.prune, retention, lane="system")

        def pruned(done: Any) -> int:
            error = done.exception()
            if error is not None:
                self.log.warning("pruning the operation journal failed: %s", error)
                return 0
            if done.value():
                self.log.info("pruned %d finished operation(s)", done.value())
            return int(done.value())

        return self.pipe(work, pruned)

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
