"""`Heartbeat`: the ServiceActor's registry rounds, which keep the process's rows alive.

Every round registers the rows if needed (get-or-create) and then sends ONE
heartbeat for every ready manager, in one transaction, off the actors (lane
"system"). Rounds never overlap. An outage is logged once when it starts and
once when it ends, and never stops RPC service.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from actors._service_view import ServiceView
from actors.config import FENCE_SHARE
from actors.errors import ActorsError, HostFenced
from actors.registry import DatabaseUnavailable, Registry, RegistryError, ServiceRow
from actors.runtime import ActorFuture

__all__ = ["Heartbeat"]


log = logging.getLogger(__name__)


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
        try:
            registry.upgrade()  # the tables again, should the database have lost them
        except DatabaseUnavailable:
            raise
        except RegistryError as exc:
            # A schema newer than this version's (another host upgraded it while
            # this one ran): the rows are the same; registering and heartbeating
            # go on, or the cluster would see a host that serves as down.
            log.warning("registry schema not upgraded (going on with it): %s", exc)
        names = list(rows)
        ids = dict(zip(names, registry.register([rows[n] for n in names]), strict=True))
    touched = registry.heartbeat([ids[name] for name in ready])
    return ids if touched == len(ready) else None


class Heartbeat:
    """Registers the service's rows and heartbeats its ready managers, one round at a time.

    Runs in the ServiceActor's mailbox (its rounds' outcomes come back through
    `pipe`). A manager whose driver is not ready, or that failed a start
    phase, does not heartbeat, so others see it down. `on_reached` runs after
    each round that reached the database (the journal's recovery waits for it).
    """

    def __init__(
        self, service: ServiceView, registry: Registry, on_reached: Callable[[], None]
    ) -> None:
        self._service = service
        self.registry = registry
        self._on_reached = on_reached
        self.endpoint: str | None = None
        self.server_key: str | None = None  # the CURVE public key of the server at endpoint
        self.ids: dict[str, int] | None = None  # the rows' ids; None: register next round
        self._reporting = False
        self._report_again = False
        self._generation = 0  # bumped when the rows must be registered again
        self._round_generation = 0
        self.round_in_flight: ActorFuture[Any] | None = None
        """The offloaded work of the current round (Service.stop waits for it)."""
        self._round_waiters: list[ActorFuture[Any]] = []
        self._next_waiters: list[ActorFuture[Any]] = []
        self._outage_since: float | None = None
        self._round_started = 0.0  # when the current round began (an outage began by then)
        self._rows_to_stop: list[int] = []  # rows of removed backends, for the next round
        # name -> row id, as last registered: kept through an outage (when `ids`
        # is None, to register again), so a backend removed then is still marked.
        self._known: dict[str, int] = {}
        self._round_stopped: list[int] = []
        self.last_reached: float | None = None
        """When the last round that succeeded began (monotonic): its heartbeat is
        no older than that. None until one has."""
        self._first_round: float | None = None  # when the first round began

    def fenced(self) -> HostFenced | None:
        """The error that keeps this host from starting topic operations, if it must.

        Other hosts take this host's topic operations over once its heartbeat
        is `service_down_time` old (by their clocks). So from half that on,
        this host starts none it accepted (the other half is room for clock
        skew between hosts and for a round in flight): without a fresh
        heartbeat it cannot be sure that no other host runs them too. Read
        from any thread (the managers'); a float is read whole. A host that has
        not reached the registry since it started counts from its start: it
        may have accepted work that other hosts see as a down host's.
        """
        last = self.last_reached if self.last_reached is not None else self._first_round
        if last is None:
            return None  # starting: the first round has not begun
        limit = self._service.config.service_down_time * FENCE_SHARE
        stale = self._service.clock.monotonic() - last
        return HostFenced(self._service.config.host, stale, limit) if stale > limit else None

    @property
    def available(self) -> bool:
        """False from the round that found the registry unreachable until one reaches it."""
        return self._outage_since is None

    def register_now(self) -> None:
        """Phase 1, in the caller's thread before the actors start: get-or-create the rows.

        A database that does not answer is not fatal: the registry rounds
        register once it does (the outage is logged by them).
        """
        try:
            self.registry.upgrade()
            rows = self._rows()
            names = list(rows)
            ids = self.registry.register([rows[n] for n in names])
            self.ids = dict(zip(names, ids, strict=True))
            self._known.update(self.ids)
        except ActorsError as exc:
            log.debug("registering at start failed (rounds retry): %s", exc)

    def set_endpoint(self, endpoint: str, server_key: str | None = None) -> None:
        """Where the transport is reached (and its CURVE key); re-registers the rows with it."""
        self.endpoint = endpoint
        self.server_key = server_key
        self.ids = None
        self._generation += 1
        self.report()

    def backends_changed(self, stopped: list[str]) -> None:
        """A reload added or removed backends: register the new set, mark removed rows stopped."""
        # Marked by the next round, in order with every heartbeat.
        self._rows_to_stop += [self._known.pop(n) for n in stopped if n in self._known]
        self.ids = None  # register the new set of rows in the next round
        self._generation += 1
        self.report()

    def report(self) -> ActorFuture[Any]:
        """Ask for a registry round (register if needed, one heartbeat), off the actors.

        Rounds never overlap: asked while one runs, the next starts when it
        ends. The future completes when a round that started after this call
        has finished (whatever its outcome: failures are logged, not raised).
        """
        waiter = self._service.runtime.future()
        self._next_waiters.append(waiter)
        if self._reporting:
            self._report_again = True
        else:
            self._start_round()
        return waiter

    def _start_round(self) -> None:
        service = self._service
        self._reporting = True
        self._round_started = service.clock.monotonic()
        if self._first_round is None:
            self._first_round = self._round_started
        self._round_generation = self._generation
        self._round_waiters, self._next_waiters = self._next_waiters, []
        rows = self._rows()
        ids = dict(self.ids) if self.ids is not None else None
        ready = service.ready_managers() if service.serving else []  # none before phase 5
        stopped, self._rows_to_stop = self._rows_to_stop, []
        work = service.runtime.offload(
            _report_once, self.registry, rows, ids, ready, stopped, lane="system"
        )
        self._round_stopped = stopped
        self.round_in_flight = work
        service.pipe(work, self._reported)

    def _rows(self) -> dict[str, ServiceRow]:
        config = self._service.config
        return {
            p.name: ServiceRow(
                host=config.host,
                binary=config.binary,
                topic=config.topic,
                backend=p.backend,
                endpoint=self.endpoint,
                rpc_version=p.manager_class.RPC_API_VERSION,
                server_key=self.server_key,
                down_after=config.service_down_time,
            )
            for p in self._service.plans
        }

    def _reported(self, done: Any) -> None:
        """A round ended (in the mailbox): follow the outage, wake the waiters, maybe go again."""
        service = self._service
        self._reporting = False
        error = done.exception()
        if error is not None:
            self._rows_to_stop += self._round_stopped  # not marked yet: the next round does
            self.ids = None  # the database may come back empty: register again
            if self._outage_since is None:  # counted from the round that found it, not
                self._outage_since = self._round_started  # from when that round gave up
                service.log.error(
                    "registry unavailable (RPC service goes on): %s (found %.1fs after the"
                    " round that met it began)",
                    error,
                    service.clock.monotonic() - self._round_started,
                )
        else:
            self.last_reached = self._round_started
            if self._round_generation == self._generation:  # else: re-register next round
                self.ids = done.value()
                self._known.update(self.ids or {})
            if self._outage_since is not None:
                service.log.warning(
                    "registry available again after %.0fs",
                    service.clock.monotonic() - self._outage_since,
                )
                self._outage_since = None
            self._on_reached()
        for waiter in self._round_waiters:
            waiter.try_set(None)
        self._round_waiters = []
        if self._report_again:
            self._report_again = False
            self._start_round()
