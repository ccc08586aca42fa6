"""`Service`: run a ServiceActor in-process, for apps that embed service-actors.

    with Service.from_file("service.toml", runtime="threading") as service:
        service.call("backend1", "create", {"resource_id": "r1"})

Every call has a deadline; every error is a typed `ActorsError`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pydantic

from actors._advertise import advertised_endpoint
from actors._cell import CellMixin
from actors._dispatch import ServiceDispatcher
from actors._operations import Operations
from actors._statelock import LockFile, service_lock
from actors.config import ServiceConfig, config_error, load_config
from actors.errors import ActorsError, ActorStopped, DeadlineExceeded
from actors.registry import DatabaseUnavailable, Registry, sqlite_url_for
from actors.registry.journal import Journal, OperationRecord
from actors.runtime import ActorFuture, Clock, Event, Runtime
from actors.service_actor import BackendPlan, ServiceActor, plan_backends
from actors.system import ActorHandle, ActorSystem
from transport.protocol import Limits
from transport.security import ServerSecurity
from transport.server import RpcServer

__all__ = ["Service"]

# Settings a running service cannot change: a reload reports them instead.
_RESTART_KEYS = (
    "host",
    "binary",
    "topic",
    "runtime",
    "mailbox_capacity",
    "supervision",
    "state_dir",
    "transport",
    "metrics_bind",
    "registry",
    "database_url",
    "journal",
    "journal_max_pending",
)

log = logging.getLogger(__name__)


def database_connections(config: ServiceConfig) -> int:
    """Connections a service may use at once: each offload worker and the journal's writer.

    Changed offload sizes apply on reload, but the pool keeps the start's
    bound: a reload that raises them needs a restart to widen it.
    """
    workers = (
        config.offload_workers + config.offload_system_workers + config.offload_changes_workers
    )
    return workers + 2  # the journal's writer, and one to spare


class Service:
    """An embedded service: a ServiceActor and its managers in this process."""

    def __init__(
        self,
        config: ServiceConfig | None = None,
        *,
        runtime: str | Runtime | None = None,
        clock: Clock | None = None,
        config_file: str | Path | None = None,
        config_overrides: dict[str, Any] | None = None,
    ) -> None:
        """`config_overrides`: what was given besides `config_file` (actorsd's
        --runtime, --metrics-bind); a reload of the file applies them again."""
        self._config_overrides = dict(config_overrides or {})
        self.config = (
            config if config is not None else load_config(config_file, **self._config_overrides)
        )
        self.config_file = str(config_file) if config_file is not None else None
        self._runtime = runtime if runtime is not None else self.config.runtime
        self._clock = clock
        self.system: ActorSystem | None = None
        self.actor: ServiceActor | None = None
        self.failed: BaseException | None = None
        self.backend_errors: dict[str, ActorsError] = {}
        self._handles: dict[str, ActorHandle] = {}
        self.servers: list[RpcServer] = []
        self.registry: Registry | None = None
        self.operations: Operations | None = None
        self._state_lock: LockFile | None = None

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Service:
        """A service configured from a TOML file (plus ACTORS_* variables)."""
        return cls(load_config(path), config_file=path, **kwargs)

    @property
    def name(self) -> str:
        return f"{self.config.binary}:{self.config.host}"

    # -- lifecycle -----------------------------------------------------------------
    def start(self, timeout: float | None = None, *, defer_ready: bool = False) -> Self:
        """Start every enabled backend and wait until each answered or failed.

        The start phases, in order: (1) the registry rows are got or created;
        (2) each manager's `init_host()` (no request reaches it before); then
        `ready()`: (4) each manager's `init_host_with_rpc()`, (5) heartbeats
        and periodic tasks begin. With `defer_ready=True` it stops after phase
        2, so that the caller can (3) `serve()` and then call `ready()`.

        Raises LoadError/ConfigError for a bad configuration before anything
        starts. A backend that fails its `init_host` is logged and listed in
        `backend_errors`; the others serve.
        """
        if self.system is not None:
            raise RuntimeError("service already started")
        config = self.config
        plans = plan_backends(config, file=self.config_file)
        timeout = config.default_timeout if timeout is None else timeout
        if config.registry and not config.database_url and self.registry is None:
            # One process per service identity on a state directory's registry,
            # taken before anything there is touched.
            self._state_lock = service_lock(config.state_dir, config.binary, config.host).acquire()
        try:
            self._start(plans, timeout)
        except BaseException:
            self._abandon_start()
            raise
        if not defer_ready:
            self.ready(timeout)
        return self

    def _start(self, plans: list[BackendPlan], timeout: float) -> None:
        """Phases 1 and 2 (see `start`)."""
        config = self.config
        self.system = ActorSystem(
            self._runtime,
            clock=self._clock,
            mailbox_capacity=config.mailbox_capacity,
            default_timeout=config.default_timeout,
            supervision=config.supervision,
        )
        self.system.on_root_exit = self._on_root_exit
        if config.registry and self.registry is None:
            url = config.database_url or sqlite_url_for(config.state_dir)
            if config.database_url is None:  # said once: a directory appears where it runs
                log.info("state (registry and journal) in %s", Path(config.state_dir).resolve())
            self.registry = Registry(
                url,
                service_down_time=config.service_down_time,
                max_connections=database_connections(config),
            )
        if self.registry is not None:
            self._add_migrations(plans, upgrade=False)
            # The schema first: the journal writes from the first request on. If the
            # database is down, the registry rounds retry (and log the outage). A
            # schema it cannot upgrade (a newer one, from a host upgraded first)
            # fails the start: this version would run on tables it does not know.
            with contextlib.suppress(DatabaseUnavailable):
                self.registry.upgrade()
        if self.registry is not None and config.journal:
            journal = Journal(self.registry, max_pending=config.journal_max_pending)
            self.operations = Operations(journal, self.system.runtime)
        self.actor = ServiceActor(config, plans, self.registry, self.operations)
        if self.registry is not None:
            self.actor.register_now()  # phase 1
        service = self.system.spawn(self.name, self.actor)  # phase 2: init_host
        try:
            managers = service.ask("managers", timeout=timeout).result()
        except ActorsError as exc:
            self.failed = exc
            raise
        self._each_backend(managers, "ping", timeout, "did not start", rpc=True)

    def _add_migrations(self, plans: list[BackendPlan], *, upgrade: bool) -> None:
        """Have the registry migrate the tables of the applications hosted here, too
        (`ManagerActor.MIGRATIONS`); with `upgrade`, apply those new to it now
        (a reload that brings a new application)."""
        registry = self.registry
        if registry is None:
            return
        known = registry.migrations
        for plan in plans:
            if plan.manager_class.MIGRATIONS is not None:
                registry.add_migrations(plan.manager_class.MIGRATIONS)
        if upgrade and registry.migrations != known:
            # As at start: a database that does not answer is retried by the rounds.
            with contextlib.suppress(ActorsError):
                registry.upgrade()

    def _abandon_start(self) -> None:
        """A start that failed part-way: stop what it started, close what it opened."""
        if self.system is not None:
            self.system.stop(self.config.shutdown_timeout)
        self._close_journal()
        if self.registry is not None:
            self.registry.close()
        self._release_state_lock()

    def _release_state_lock(self) -> None:
        lock, self._state_lock = self._state_lock, None
        if lock is not None:
            lock.release()

    def ready(self, timeout: float | None = None) -> None:
        """Phases 4 and 5: `init_host_with_rpc()` everywhere, then heartbeats and periodic tasks.

        A backend whose `init_host_with_rpc` fails is logged and listed in
        `backend_errors` (it stays down in the registry until it heartbeats);
        the others go on.
        """
        if self.system is None or self.actor is None:
            raise RuntimeError("start the service first")
        if self.actor.serving:
            return
        timeout = self.config.default_timeout if timeout is None else timeout
        managers = [name for name in self.actor.managers() if name not in self.backend_errors]
        self._each_backend(managers, "start_serving", timeout, "init_host_with_rpc failed")
        failed = {name: str(exc) for name, exc in self.backend_errors.items()}
        # In the ServiceActor's own mailbox: its state is its own (a reload or a
        # child's restart may be handled there meanwhile).
        self.system.handle(self.name).ask("begin_serving", (failed,), timeout=timeout).result()
        for name in managers:
            if name not in self.backend_errors:
                # Past the mailbox bound: the framework's own step, not a user request.
                self.system.handle(name).ask("start_periodic_tasks", accepted=True)
        self.system.handle(self.name).tell("begin_reporting")

    def _each_backend(
        self, managers: list[str], method: str, timeout: float, failed: str, *, rpc: bool = False
    ) -> None:
        """Ask every manager at once, wait for each; a failure lands in backend_errors.

        The framework's own steps (not `rpc`) pass the mailbox bound: a manager
        whose mailbox is full of its own work must still be told to serve.
        """
        assert self.system is not None
        asks = {
            name: (
                self.system.handle(name).ask(method, rpc=True, timeout=timeout)
                if rpc
                else self.system.handle(name).ask(method, accepted=True)
            )
            for name in managers
        }
        deadline = time.monotonic() + timeout
        for name, future in asks.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception as exc:
                log.error("backend %s %s: %s", name, failed, exc)
                self.backend_errors[name] = (
                    exc if isinstance(exc, ActorsError) else ActorsError(f"{exc!r}")
                )

    def serve(
        self,
        endpoint: str,
        *,
        security: ServerSecurity | None = None,
        allow_insecure: bool = False,
        limits: Limits | None = None,
        advertise: str | None = None,
        heartbeat: float | None = None,
    ) -> RpcServer:
        """Put this service on the network: a ZeroMQ ROUTER on `endpoint`.

        The registry rows get `advertise` as their endpoint (a port of 0 or
        none: the one bound), else the bound endpoint, and the server's CURVE
        public key. `heartbeat`: seconds between ZMTP heartbeats on each
        connection (default `config.transport.heartbeat`). Raises BindError
        (endpoint in use), InsecureBind (beyond loopback without CURVE and
        without `allow_insecure`) or ConfigError (a wildcard bind without
        `advertise`), before anything is bound.
        """
        if self.system is None:
            raise RuntimeError("start the service before serving it")
        if advertise is None:
            advertised_endpoint(endpoint, None)  # a wildcard: refused before binding
        server = RpcServer(
            ServiceDispatcher(self),
            endpoint,
            green=self.system.runtime.name == "gevent",
            security=security,
            allow_insecure=allow_insecure,
            limits=limits or Limits(default_timeout=self.config.default_timeout),
            heartbeat=self.config.transport.heartbeat if heartbeat is None else heartbeat,
        )
        server.start()
        self.servers.append(server)
        assert self.actor is not None
        published = advertised_endpoint(server.endpoint, advertise)
        server_key = security.public_key.decode() if security is not None else None
        self.system.handle(self.name).tell("set_endpoint", (published, server_key))
        return server

    def reload(
        self, config: ServiceConfig | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Apply a new configuration to the running service (SIGHUP); returns what happened.

        Without `config` the service's file is read again. Applied at once:
        intervals and timeouts, capability reports, added backends (started)
        and removed ones (stopped gracefully). Everything else (host, topic,
        runtime, database, transport, a changed backend) is listed under
        `needs_restart` and left as it was. A configuration that does not
        validate raises ConfigError/LoadError and changes nothing.
        """
        if self.system is None or self.actor is None:
            raise RuntimeError("start the service first")
        if config is None:
            new = load_config(self.config_file, **self._config_overrides)
        else:  # validated again: a model_copy(update=...) is not
            try:
                new = type(config).model_validate(config.model_dump())
            except pydantic.ValidationError as exc:
                raise config_error(exc, None) from None
        old = self.config
        needs_restart = sorted(
            key for key in _RESTART_KEYS if getattr(new, key) != getattr(old, key)
        )
        kept = set(old.enabled_backends) & set(new.enabled_backends)
        needs_restart += sorted(f"backends.{b}" for b in kept if new.backends[b] != old.backends[b])
        # Only what can change now: restart-only keys keep their running values.
        merged = new.model_copy(
            update={
                **{key: getattr(old, key) for key in _RESTART_KEYS},
                "backends": {
                    **new.backends,
                    **{b: old.backends[b] for b in kept},
                },
            }
        )
        # The whole new file must be valid, also what only a restart would apply:
        # else the restart the reload asks for would fail.
        plan_backends(new, file=self.config_file)
        plans = plan_backends(merged, file=self.config_file)  # raises before anything changes
        self._add_migrations(plans, upgrade=True)
        timeout = merged.default_timeout if timeout is None else timeout
        done = self.system.handle(self.name).ask("reconfigure", (merged, plans), timeout=timeout)
        try:
            changes: dict[str, Any] = done.result()
        except DeadlineExceeded:
            # Not started by its deadline, it never will be (nothing changed);
            # started, it runs to its end: the service follows it then, so
            # that `config` always says what runs.
            done.add_done_callback(lambda late: self._reconfigured(merged, late))
            raise
        self._reconfigured(merged, done)
        changes["needs_restart"] = needs_restart
        log.warning(
            "configuration reloaded: started %s, stopped %s, needs a restart: %s",
            changes["started"] or "none",
            changes["stopped"] or "none",
            needs_restart or "nothing",
        )
        return changes

    def _reconfigured(self, config: ServiceConfig, done: ActorFuture[Any]) -> None:
        """The ServiceActor applied `config` (if `done` holds its changes): follow it."""
        changes = done.value() if done.exception() is None else None
        if changes is None:
            return
        self.config = config
        for name in changes["stopped"]:
            self.backend_errors.pop(name, None)
        self._handles.clear()  # routes changed

    def drain(self, timeout: float | None = None, abort: Event | None = None) -> bool:
        """Stop taking requests and let those in flight finish (graceful shutdown).

        Every server refuses new calls and casts with ServerDraining
        (retryable) but still answers the requests it took and pings. Returns
        True once they are answered and every journaled operation has finished,
        False if `timeout` (default `graceful_shutdown_timeout`) passed or
        `abort` was set first. Call `stop()` afterwards: what is still running
        then is stopped and journaled as interrupted.
        """
        if self.system is None:
            return True
        for server in self.servers:
            server.drain()
        timeout = self.config.graceful_shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        abort = abort if abort is not None else self.system.runtime.event()
        while not self._idle():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or abort.is_set():
                return False
            abort.wait(min(0.05, remaining))  # polls counters that have no event of their own
        return True

    def _idle(self) -> bool:
        busy_servers = any(server.in_flight for server in self.servers)
        busy_ops = self.operations is not None and self.operations.in_flight > 0
        return not busy_servers and not busy_ops

    def stop(self, timeout: float | None = None) -> bool:
        """Stop accepting, then stop managers in reverse start order.

        True if every actor stopped in time.
        """
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()
        if self.system is None:
            return True
        stopped = self.system.stop(self.config.shutdown_timeout if timeout is None else timeout)
        self._close_journal()
        self._mark_stopped()
        self._release_state_lock()
        return stopped

    def _close_journal(self) -> None:
        """Write what stopping managers recorded (interruptions), then stop the writer."""
        if self.operations is not None:
            self.operations.journal.close(timeout=self.config.shutdown_timeout)

    def _mark_stopped(self) -> None:
        """Tell the registry this process's rows stopped (best effort, logged).

        A round still running in its worker thread is waited for first (it
        could otherwise heartbeat the rows back up after we marked them).
        """
        registry = self.registry
        if registry is None:
            return
        work = self.actor.round_in_flight if self.actor is not None else None
        if work is not None and not work.done():
            try:
                work.get(timeout=10.0)
            except Exception:
                pass  # its outcome no longer matters; the marking below does
        config = self.config
        try:
            registry.mark_process(config.host, config.binary, config.topic, "stopped")
        except ActorsError as exc:
            log.error("could not mark %s stopped in the registry: %s", self.name, exc)
        finally:
            registry.close()

    def __enter__(self) -> Self:
        return self.start() if self.system is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _on_root_exit(self, cell: CellMixin) -> None:
        if cell.exit_reason is not None:
            self.failed = cell.crash_error or ActorStopped(cell.name, cell.exit_reason)
            log.critical("service %s gave up: %s", cell.name, cell.exit_reason)

    # -- requests ----------------------------------------------------------------------
    def route(self, target: str) -> str:
        """The manager name for a target (`host@backend` or `backend`)."""
        if self.actor is None:
            raise RuntimeError("service not started")
        return self.actor.route(target)

    def handle(self, target: str) -> ActorHandle:
        """A stable handle to the manager serving `target`."""
        handle = self._handles.get(target)
        if handle is None:
            assert self.system is not None, "service not started"
            handle = self._handles[target] = self.system.handle(self.route(target))
        return handle

    def ask(
        self,
        target: str,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        version: str | None = None,
        key: str | None = None,
    ) -> ActorFuture[Any]:
        """Send an RPC request; returns a future (never blocks).

        A journaled method (`@rpc(journal=True)`) is committed to the journal
        first and its outcome recorded; `key` makes a retry return the first
        attempt's outcome instead of running again.
        """
        handle = self._handles.get(target) or self.handle(target)
        submitted = (
            None
            if self.operations is None
            else self.submit_journaled(handle, method, args or {}, version=version, key=key)
        )
        if submitted is None:
            return handle._ask(method, (), args, timeout, None, True, version, False)
        _, outcome = submitted
        outcome.expect_by(
            handle.name, method, self.config.default_timeout if timeout is None else timeout
        )
        return outcome

    def call(
        self,
        target: str,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        version: str | None = None,
        key: str | None = None,
    ) -> Any:
        """Send an RPC request and wait for its result, at most `timeout` seconds."""
        if self.operations is None:  # no journal: ask(), inlined (the in-process hot path)
            handle = self._handles.get(target) or self.handle(target)
            return handle._ask(method, (), args, timeout, None, True, version, False).result()
        return self.ask(target, method, args, timeout=timeout, version=version, key=key).result()

    def cast(
        self,
        target: str,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        version: str | None = None,
        key: str | None = None,
        timeout: float | None = None,
    ) -> str | None:
        """Fire and forget; raises Busy/NotFound if the request was not accepted.

        For a journaled method it returns once the operation is committed, with
        its id (`operation(id)` shows its progress); otherwise None at once.
        """
        handle = self.handle(target)
        submitted = self.submit_journaled(handle, method, args or {}, version=version, key=key)
        if submitted is None:
            handle.tell(method, (), args, rpc=True, version=version)
            return None
        accepted, _ = submitted
        accepted.expect_by(
            handle.name, method, self.config.default_timeout if timeout is None else timeout
        )
        return str(accepted.result()["operation"])

    def operation(self, op_id: str) -> OperationRecord | None:
        """A journaled operation by id (None if unknown); blocking database read."""
        if self.operations is None:
            raise RuntimeError("this service keeps no operation journal")
        return self.operations.journal.get(op_id)

    def submit_journaled(
        self,
        handle: ActorHandle,
        method: str,
        args: dict[str, Any],
        *,
        version: str | None,
        key: str | None,
        scope: str | None = None,
    ) -> tuple[ActorFuture[Any], ActorFuture[Any]] | None:
        """Submit a request for a journaled method: (accepted, outcome) futures.

        None when the method is not journaled (or there is no journal): the
        request takes the plain path.
        """
        operations = self.operations
        if operations is None:
            return None
        assert self.actor is not None
        manager_class = self.actor.plan(handle.name).manager_class
        if not operations.is_journaled(manager_class, method):
            return None
        return operations.submit(
            handle, manager_class, method, args, version=version, key=key, scope=scope
        )

    def status(self) -> list[dict[str, Any]]:
        """Every actor with its state, mailbox depth, restarts and current work."""
        return self.system.dump() if self.system is not None else []
