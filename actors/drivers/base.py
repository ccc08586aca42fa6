"""`DriverActor`: the driver contract, run one operation at a time.

A driver does the host-level work of one backend (files, processes, devices).
Its mailbox serializes operations: one at a time, in the order accepted. The
manager reaches only methods marked `@operation` (and `get_stats`), each call
returning a future.

Setup (`do_setup` then `check_for_setup_error`) runs when the driver starts.
If it fails the driver stays alive but not ready: operations fail at once with
`DriverNotReady` carrying the last setup error, and setup is retried with
capped exponential backoff from the driver's own timer, so nothing blocks.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, overload

from pydantic import BaseModel, ConfigDict

from actors.actor import BaseActor
from actors.config import validate_options
from actors.errors import DriverNotReady, MethodNotAllowed
from actors.processutils import ProcessResult, execute
from actors.supervision import Backoff

__all__ = [
    "DriverActor",
    "DriverOptions",
    "Operation",
    "collect_operations",
    "operation",
    "operation_info",
]

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__actors_operation__"


@dataclass(frozen=True)
class Operation:
    """A driver operation: its name and whether re-running it is safe.

    `idempotent` is a declaration, for readers of the driver and for its
    tests; the framework does not act on it. What crash recovery and
    `TopicClient` run again is decided by the manager's methods
    (`@rpc(idempotent=True)`), which know what their driver steps are.
    """

    name: str
    idempotent: bool


@overload
def operation(fn: F, /) -> F: ...
@overload
def operation(*, idempotent: bool = False) -> Callable[[F], F]: ...


def operation(fn: F | None = None, /, *, idempotent: bool = False) -> F | Callable[[F], F]:
    """Mark a driver method as an operation its manager may call.

    `idempotent=True` declares that running it again with the same arguments
    leaves the host as once (see `Operation`).
    """

    def mark(func: F) -> F:
        if func.__name__.startswith("_"):
            raise TypeError(f"@operation cannot mark private method {func.__name__!r}")
        setattr(func, _MARK, Operation(func.__name__, idempotent))
        return func

    return mark(fn) if fn is not None else mark


def operation_info(obj: Any) -> Operation | None:
    """What `@operation` recorded on `obj`, or None if it is not an operation."""
    info = getattr(obj, _MARK, None)
    return info if isinstance(info, Operation) else None


def collect_operations(cls: type) -> dict[str, Operation]:
    """The operations of `cls`: its `@operation` methods along its MRO.

    A method overriding an operation without the mark is no longer one,
    except when the overridden method is abstract: an abstract base class
    (such as a driver kind's, `ShareDriver`) declares its operations once, and
    the classes implementing it inherit the declarations.
    """
    found: dict[str, Operation] = {}
    declared: set[str] = set()  # declared by an abstract method: implementations keep them
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            info = getattr(value, _MARK, None)
            if isinstance(info, Operation):
                found[name] = info
                if getattr(value, "__isabstractmethod__", False):
                    declared.add(name)
            elif name in found and name not in declared:
                del found[name]
    return found


class DriverOptions(BaseModel):
    """Options of a driver; subclass it per driver. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DriverActor(BaseActor, abc.ABC):
    """Abstract base of every driver."""

    Options: ClassVar[type[DriverOptions]] = DriverOptions
    setup_backoff: ClassVar[Backoff] = Backoff(initial=0.5, maximum=60.0)
    operations: ClassVar[dict[str, Operation]] = {}
    stands_in: ClassVar[bool] = False
    """True for a driver that serves any operation name (FakeDriver): it may
    stand in for a driver of any kind a manager asks for."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.operations = collect_operations(cls)

    def __init__(self, options: DriverOptions, *, host: str, backend: str) -> None:
        self.options = options
        self.host = host
        self.backend = backend
        self._actors_ready = False  # a name of ours: `ready` is the API
        self.last_setup_error: str | None = None
        self.setup_attempts = 0

    @classmethod
    def validate_options(
        cls, raw: dict[str, Any], *, key: str = "options", file: str | None = None
    ) -> DriverOptions:
        """Validate raw options against `Options`; a ConfigError names the key."""
        return validate_options(cls.Options, raw, key=key, file=file)

    # -- the contract -----------------------------------------------------------------
    @abc.abstractmethod
    def do_setup(self) -> None:
        """Prepare the backend (create directories, connect to devices)."""

    @abc.abstractmethod
    def check_for_setup_error(self) -> None:
        """Raise if the backend cannot work (missing tools, bad permissions)."""

    @abc.abstractmethod
    def get_stats(self) -> dict[str, Any]:
        """Capacity and capabilities of the backend, as plain data."""

    def execute(self, *cmd: Any, **kwargs: Any) -> ProcessResult:
        """Run a host command (see `actors.processutils.execute`)."""
        return execute(*cmd, **kwargs)

    # -- readiness ----------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True once setup succeeded: operations run only then."""
        return self._actors_ready

    @ready.setter
    def ready(self, value: bool) -> None:
        self._actors_ready = value
        if not value:  # operations resolved while ready must be refused again
            self.forget_resolved_calls()

    def on_start(self) -> None:
        self._attempt_setup()

    def _attempt_setup(self) -> None:
        self.setup_attempts += 1
        try:
            if self.system.directory.predecessor_alive(self.name, self._cell):
                # An abandoned earlier incarnation may still be inside an
                # operation: never let two drivers touch the backend at once.
                raise RuntimeError("the previous driver incarnation is still running")
            self.do_setup()
            self.check_for_setup_error()
        except Exception as exc:
            self.last_setup_error = f"{type(exc).__name__}: {exc}"
            delay = self.setup_backoff.delay(self.setup_attempts - 1)
            self.log.warning(
                "setup failed (attempt %d), retrying in %.2fs: %s",
                self.setup_attempts,
                delay,
                self.last_setup_error,
            )
            self.call_later(delay, self._attempt_setup)
            self.system.set_ready(self.name, self._cell, False)
            return
        self.ready = True
        self.system.set_ready(self.name, self._cell, True)
        self.last_setup_error = None
        self.log.info("driver ready after %d setup attempt(s)", self.setup_attempts)

    # -- routing --------------------------------------------------------------------------
    def reusable_calls(self) -> bool | None:
        # An operation resolves to the same bound method while the driver is
        # ready (the `ready` setter forgets them); a resolve_call or a `ready`
        # of its own may answer differently at any time.
        return None if self._overrides(DriverActor, "resolve_call", "ready") else False

    def resolve_call(self, method: str, *, rpc: bool, version: str | None) -> Callable[..., Any]:
        if rpc or (method not in self.operations and method != "get_stats"):
            raise MethodNotAllowed(self.name, method)
        if not self.ready:
            raise DriverNotReady(self.name, self.last_setup_error or "setup has not finished")
        return getattr(self, method)  # type: ignore[no-any-return]
