"""`ManagerActor`: a backend's business logic, reachable by RPC.

Users subclass it, mark RPC methods with `@rpc`, and implement `init_host()`.
Each manager owns exactly one DriverActor (its child, restarted by it when it
crashes) and reaches it through `self.driver`: every driver call returns a
future at once. Return that future from an RPC method and the reply follows
when it resolves; or continue with `self.then(future, fn)`, which runs `fn`
back in this mailbox. The manager never blocks on its driver, so it answers
status calls and runs periodic work while the driver is busy.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel

from actors._operations import Operations
from actors.actor import BaseActor
from actors.config import BackendConfig, validate_options
from actors.drivers.base import DriverActor, DriverOptions
from actors.errors import ActorUnavailable, DriverNotReady, MethodNotAllowed
from actors.periodic import PeriodicTask, Scheduler, collect_periodic_tasks
from actors.registry.api import Registry
from actors.registry.journal import OperationRecord
from actors.registry.schema import Migrations
from actors.rpc import RpcMethod, bind_validated, check_version, collect_rpc_methods, rpc
from actors.runtime import PENDING, ActorFuture
from actors.supervision import ChildSpec, SupervisionPolicy
from actors.system import ActorHandle

__all__ = ["DriverProxy", "ManagerActor"]


class DriverProxy:
    """The manager's view of its driver: attribute calls return futures."""

    # `__dict__` on purpose: each operation's caller is cached there once made,
    # so later `driver.op` lookups are plain attribute hits, not __getattr__.
    __slots__ = ("__dict__", "_backend", "_cell", "_handle", "_owner", "_timeout")

    def __init__(self, handle: ActorHandle, backend: str, timeout: float, owner: BaseActor) -> None:
        self._handle, self._backend, self._timeout, self._owner = handle, backend, timeout, owner
        self._cell = owner._cell

    @property
    def name(self) -> str:
        return self._handle.name

    def call(self, op: str, *args: Any, **kwargs: Any) -> ActorFuture[Any]:
        """Queue driver operation `op`; the future resolves with its result.

        Called while handling a request, or in a continuation made while
        handling one, the operation inherits what is left of that request's
        deadline, so work the caller gave up on is not started.
        """
        return self._caller(op)(*args, **kwargs)

    def _caller(self, op: str) -> Callable[..., ActorFuture[Any]]:
        """A function that queues operation `op` (made once per operation name)."""
        ask, cell, timeout, refused = self._handle._ask, self._cell, self._timeout, self._refused

        def operation(*args: Any, **kwargs: Any) -> ActorFuture[Any]:
            # A request's deadline, or the one a continuation inherited from it.
            deadline = getattr(cell.handling, "deadline", None)
            future = ask(op, args, kwargs, timeout, deadline, False, None, False)
            return future if future._state == PENDING else refused(future)

        if isinstance(op, str):  # else the driver refuses it: MethodNotAllowed, in the future
            operation.__name__ = operation.__qualname__ = op
        return operation

    def deliver(self, op: str, *args: Any, **kwargs: Any) -> ActorFuture[Any]:
        """Queue operation `op` past the mailbox bound, with no deadline.

        For work the manager must not have refused for lack of room, such as
        the repairs `init_host` queues for every resource it finds at start:
        there may be more of them than the mailbox holds, and they must run
        before any request queued after them. What is queued this way is
        bounded by what the manager already holds (its rows, its accepted
        operations), not by clients. Fails with `DriverNotReady` at once while
        the driver restarts, like any driver call.
        """
        future = self._handle.ask(op, args, kwargs, accepted=True)
        return self._refused(future) if future.done() else future

    def _refused(self, future: ActorFuture[Any]) -> ActorFuture[Any]:
        """A request that failed at once: say "not ready" for a restarting driver."""
        error = future.exception()
        if isinstance(error, ActorUnavailable) and not isinstance(error, DriverNotReady):
            fresh: ActorFuture[Any] = self._owner.runtime.future()
            fresh.set_exception(DriverNotReady(self._backend, error.details.get("reason", "")))
            return fresh
        return future

    def __getattr__(self, op: str) -> Callable[..., ActorFuture[Any]]:
        if op.startswith("_"):
            raise AttributeError(op)
        fn = self.__dict__[op] = self._caller(op)
        return fn

    def status(self) -> dict[str, Any]:
        return self._handle.status()


_FRAMEWORK_METHODS = frozenset(
    {"run_operation", "recover_operations", "start_serving", "start_periodic_tasks"}
)
"""Methods the service calls on every manager; a subclass must not replace them."""


class ManagerActor(BaseActor):
    """Base class of managers. Subclass, add `@rpc` methods, implement `init_host`."""

    RPC_API_VERSION: ClassVar[str] = "1.0"
    rpc_methods: ClassVar[dict[str, RpcMethod]] = {}

    Options: ClassVar[type[BaseModel] | None] = None
    """The model of this manager's `manager_options`, if it has one: they are
    then validated with the configuration (check-config, start, reload), and a
    bad value fails there with its key, not in init_host."""

    periodic_tasks: ClassVar[dict[str, PeriodicTask]] = {}

    DRIVER_KIND: ClassVar[type | None] = None
    """The abstract base class of the drivers this manager is written against
    (ShareManager: `ShareDriver`), if any: a backend's driver must serve all of
    its operations, which is checked with the configuration, not at the first call."""

    MIGRATIONS: ClassVar[Migrations | None] = None
    """The Alembic migrations of tables this manager keeps in the registry
    database, if any (`actors.registry.Migrations`): a service hosting it
    applies them at start, after the framework's own."""

    @classmethod
    def validate_options(
        cls, raw: dict[str, Any], *, key: str = "manager_options", file: str | None = None
    ) -> BaseModel | None:
        """`raw` validated by `Options` (None without one); a ConfigError names the key."""
        return (
            None if cls.Options is None else validate_options(cls.Options, raw, key=key, file=file)
        )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        clash = sorted(_FRAMEWORK_METHODS & set(vars(cls)))
        if clash:
            raise TypeError(
                f"{cls.__name__} defines {', '.join(clash)}: reserved for the framework"
                " (the service calls them; override init_host, init_host_with_rpc or"
                " recover_operation instead)"
            )
        cls.rpc_methods = collect_rpc_methods(cls, cls.RPC_API_VERSION)
        cls.periodic_tasks = collect_periodic_tasks(cls)

    def __init__(
        self,
        *,
        host: str,
        backend: str,
        driver_class: type[DriverActor],
        driver_options: DriverOptions,
        config: BackendConfig,
    ) -> None:
        self.host = host
        self.backend = backend
        self.driver_class = driver_class
        self.driver_options = driver_options
        self.config = config
        self._bound: dict[str, Callable[..., Any]] = {}
        self.driver: DriverProxy  # bound in child_specs, before on_start
        self.operations: Operations | None = None  # set by the service when it journals
        self._serving: Callable[[], bool] | None = None  # set by the service
        self.registry: Registry | None = None  # the service's registry, if it keeps one
        self.resuming = False
        """True while a method runs again for crash recovery (its synchronous
        part: read it there, before any continuation): it may find its own
        earlier work half done, and should finish it rather than refuse."""

    # -- lifecycle (start phases: docs/architecture.md) -----------------------------------
    def init_host(self) -> None:
        """Prepare the backend's host; runs before any request is accepted (phase 2)."""

    def init_host_with_rpc(self) -> None:
        """Runs once the service accepts requests (phase 4): e.g. announce yourself."""

    def on_start(self) -> None:
        self.init_host()
        self.periodic = Scheduler(self, self.periodic_tasks, random.Random())
        if self.serving():  # a restart of a service already serving: phases 4 and 5 now
            self.start_serving()
            self.start_periodic_tasks()

    def serving(self) -> bool:
        """Whether the service finished starting (set by the service; False when alone)."""
        return bool(self._serving is not None and self._serving())

    def start_serving(self) -> None:
        """Phase 4, from the service: run `init_host_with_rpc`."""
        self.init_host_with_rpc()

    def start_periodic_tasks(self) -> None:
        """Phase 5, from the service: periodic tasks begin their schedule."""
        self.periodic.start()

    def child_specs(self) -> list[ChildSpec]:
        driver_name = f"{self.name}/driver"
        self.driver = DriverProxy(
            self.child(driver_name), self.name, self.config.driver_timeout, self
        )
        return [
            ChildSpec(driver_name, self._make_driver, mailbox_capacity=self.config.mailbox_capacity)
        ]

    def _make_driver(self) -> DriverActor:
        driver = self.driver_class(self.driver_options, host=self.host, backend=self.backend)
        if self.config.setup_backoff is not None:  # the backend's configuration wins
            driver.setup_backoff = self.config.setup_backoff  # type: ignore[misc]
        return driver

    def supervision_policy(self) -> SupervisionPolicy:
        return self.config.driver_supervision

    # -- routing ---------------------------------------------------------------------
    def reusable_calls(self) -> bool | None:
        # An RPC method resolves to the same bound checker for the manager's
        # life; a resolve_call of its own may answer differently over time.
        return None if self._overrides(ManagerActor, "resolve_call") else True

    def resolve_call(self, method: str, *, rpc: bool, version: str | None) -> Callable[..., Any]:
        if not rpc:
            return super().resolve_call(method, rpc=rpc, version=version)
        if version is None:  # nothing to check but the allowlist: bound once, then cached
            bound = self._bound.get(method)
            if bound is not None:
                return bound
        info = self.rpc_methods.get(method)
        if info is None:
            check_version(self.name, version, self.RPC_API_VERSION)
            raise MethodNotAllowed(self.name, method)
        if version is not None and not info.builtin:
            check_version(self.name, version, self.RPC_API_VERSION, since=info.since)
        bound = self._bound.get(method)
        if bound is None:
            bound = self._bound[method] = bind_validated(self.name, info, self)
        return bound

    # -- journaled operations (see actors/_operations.py) ------------------------------------
    def run_operation(
        self,
        op_id: str,
        method: str,
        args: dict[str, Any],
        version: str | None,
        resumed: bool = False,
    ) -> ActorFuture[tuple[bool, Any]]:
        """Run a committed operation and record its outcome; in-process only.

        `resumed`: crash recovery runs it again (`self.resuming` meanwhile),
        after what `resume_after` says must come first.

        Never raises: the reply is (True, result) or (False, error), after the
        outcome is committed, so any exception on it comes from the cell.
        """
        if resumed:
            first = self.resume_after(method, args)
            if first is not None:  # however that ends, then in this mailbox
                return self.pipe(
                    first, lambda _: self._run_operation(op_id, method, args, version, True)
                )
        return self._run_operation(op_id, method, args, version, resumed)

    def _run_operation(
        self,
        op_id: str,
        method: str,
        args: dict[str, Any],
        version: str | None,
        resumed: bool,
    ) -> ActorFuture[tuple[bool, Any]]:
        operations = self.operations
        assert operations is not None, "run_operation needs the service's journal"
        done: ActorFuture[Any]
        try:
            fn = self.resolve_call(method, rpc=True, version=version)
            operations.check_fence(op_id)
            operations.started(op_id)
            self.resuming = resumed
            try:
                result = fn(**args)
            finally:
                self.resuming = False
        except self.fatal_exceptions:
            raise
        except Exception as exc:
            done = self.runtime.future()
            done.set_exception(exc)
        else:
            if isinstance(result, ActorFuture):
                done = result  # followed as it is: no future in between
            else:
                done = self.runtime.future()
                done.set(result)
        answer: ActorFuture[tuple[bool, Any]] = self.runtime.future()
        done.add_done_callback(
            functools.partial(operations.finish, op_id, self.name, method, answer)
        )
        return answer

    def recover_operation(self, record: OperationRecord) -> str | None:
        """Crash recovery's hook: None to run `record` again, else why it cannot be.

        Called in this manager's mailbox, once per operation an earlier process
        left 'accepted' or 'running'; it must answer at once (no waiting on the
        driver). The default re-runs methods declared `@rpc(idempotent=True)`
        and interrupts the rest. Override to decide from the manager's own state
        (for example a record of what the work already did).
        """
        info = self.rpc_methods.get(record.method)
        if info is None or not info.journal:
            return f"{record.method!r} is no longer a journaled method of {self.name}"
        if not info.idempotent:
            when = "while it ran" if record.state == "running" else "before it ran"
            return (
                f"the process ended {when}, and {record.method!r} is not declared"
                " idempotent, so it was not run again"
            )
        return None

    def resume_after(self, method: str, args: dict[str, Any]) -> ActorFuture[Any] | None:
        """Crash recovery's hook: what an operation run again must wait for, or None.

        Called in this manager's mailbox just before a resumed operation would
        run. Return a future (its outcome does not matter) to run it after
        that instead: for example after the manager's own start-up check of
        the resource the operation works on, so that the two never overlap.
        The default waits for nothing.
        """
        return None

    def recover_operations(self, records: list[OperationRecord]) -> dict[str, int]:
        """Hand this manager's unfinished operations (from before a crash) to recovery."""
        assert self.operations is not None
        return self.operations.recover(
            self.system.handle(self.name), self.recover_operation, records
        )

    @classmethod
    def check_request(cls, name: str, method: str, version: str | None) -> None:
        """Refuse what a request could never reach (used before accepting a cast)."""
        info = cls.rpc_methods.get(method)
        if info is None:
            raise MethodNotAllowed(name, method)
        if not info.builtin:
            check_version(name, version, cls.RPC_API_VERSION, since=info.since)

    # -- built-in RPC --------------------------------------------------------------------
    @rpc(builtin=True)
    def ping(self) -> dict[str, Any]:
        """Liveness: answers once init_host() has finished."""
        return {
            "name": self.name,
            "backend": self.backend,
            "rpc_version": self.RPC_API_VERSION,
            "driver": self.driver_class.__name__,
        }

    @rpc(builtin=True)
    def describe(self) -> dict[str, Any]:
        """The RPC methods this manager exposes, with the version they appeared in."""
        return {
            "name": self.name,
            "rpc_version": self.RPC_API_VERSION,
            "methods": [m.describe() for m in self.rpc_methods.values()],
        }


ManagerActor.rpc_methods = collect_rpc_methods(ManagerActor, ManagerActor.RPC_API_VERSION)
