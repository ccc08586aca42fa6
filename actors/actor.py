"""`BaseActor`: the behaviour every actor of ours is written as.

A behaviour is a plain object; the runtime hosts it in a cell (a pykka actor of
the chosen runtime) that owns the mailbox. Everything a behaviour does happens
in that mailbox, one message at a time, so its state needs no locks. It never
blocks on another actor: it gets futures back and either returns them (the
reply follows when they resolve) or continues with `then`/`pipe`, which run the
continuation back in this mailbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from actors.errors import FatalError, MethodNotAllowed
from actors.runtime import ActorFuture, Clock, Runtime, TimerHandle
from actors.supervision import ChildSpec, SupervisionPolicy

if TYPE_CHECKING:
    from actors._cell import CellMixin
    from actors.system import ActorHandle, ActorSystem

__all__ = ["BaseActor"]


class BaseActor:
    """Base of ServiceActor, ManagerActor and DriverActor."""

    fatal_exceptions: ClassVar[tuple[type[BaseException], ...]] = (FatalError, MemoryError)
    """Exceptions that crash the actor (and fail the request) instead of being
    returned to the caller; the supervisor then restarts it."""

    _cell: CellMixin

    # -- identity -------------------------------------------------------------
    @property
    def name(self) -> str:
        """The stable name this actor is addressed by (survives restarts)."""
        return self._cell.name

    @property
    def system(self) -> ActorSystem:
        return self._cell.system

    @property
    def runtime(self) -> Runtime:
        return self._cell.system.runtime

    @property
    def clock(self) -> Clock:
        return self._cell.system.runtime.clock

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        return logging.LoggerAdapter(logging.getLogger(type(self).__module__), {"actor": self.name})

    # -- lifecycle hooks (run in the mailbox) -----------------------------------
    def on_start(self) -> None:
        """Runs before the first message; an exception here crashes the actor."""

    def on_stop(self) -> None:
        """Runs after a normal stop, once children have stopped."""

    def on_crash(self, reason: str) -> None:
        """Runs after a crash, once children have stopped."""

    # -- supervision ------------------------------------------------------------
    def child_specs(self) -> list[ChildSpec]:
        """Children started (in this order) before `on_start`."""
        return []

    def supervision_policy(self) -> SupervisionPolicy:
        """How this actor supervises its children."""
        return self._cell.system.supervision

    def add_child(self, spec: ChildSpec) -> None:
        """Start and supervise one more child (call from this actor's mailbox)."""
        self._cell.add_child(spec)

    def remove_child(self, name: str, reason: str = "removed") -> None:
        """Stop a child gracefully and stop supervising it (from this actor's mailbox)."""
        self._cell.remove_child(name, reason)

    def child(self, name: str) -> ActorHandle:
        """A stable handle to a child (or any actor) by name."""
        return self._cell.system.handle(name)

    # -- routing ------------------------------------------------------------------
    def reusable_calls(self) -> bool | None:
        """Which requests' `resolve_call` answers the cell may keep, per method.

        True for RPC requests, False for internal ones, None for neither (the
        default). Asked once, when this incarnation's cell is made; kept answers
        serve later requests without a version only. ManagerActor and DriverActor
        answer for themselves while their `resolve_call` (and, for drivers,
        `ready`) is the framework's own, on the class and on the instance.
        """
        return None

    def _overrides(self, owner: type, *names: str) -> bool:
        """True if this instance or its class replaced any of `owner`'s `names`."""
        own = getattr(self, "__dict__", {})
        cls = type(self)
        return any(name in own or getattr(cls, name) is not vars(owner)[name] for name in names)

    def forget_resolved_calls(self) -> None:
        """Make the next request for every method go through `resolve_call` again."""
        cell = getattr(self, "_cell", None)
        if cell is not None:
            cell.resolved_calls.clear()

    def resolve_call(self, method: str, *, rpc: bool, version: str | None) -> Callable[..., Any]:
        """Return the callable for a request, or raise `MethodNotAllowed`.

        Requests from the wire (`rpc=True`) reach nothing here; subclasses open
        an explicit allowlist. Internal requests reach public methods defined by
        subclasses, never the framework's own or private ones.
        """
        if rpc or not _is_public_name(method) or hasattr(BaseActor, method):
            raise MethodNotAllowed(self.name, method)
        fn = getattr(self, method, None)
        if not callable(fn):
            raise MethodNotAllowed(self.name, method)
        return fn  # type: ignore[no-any-return]

    # -- continuations and timers ---------------------------------------------------
    def pipe(
        self, future: ActorFuture[Any], fn: Callable[[ActorFuture[Any]], Any]
    ) -> ActorFuture[Any]:
        """Run `fn(done_future)` in this mailbox once `future` completes.

        Returns a future of `fn`'s result (a future returned by `fn` is chained).
        """
        return self._cell.pipe(future, fn)

    def then(
        self, future: ActorFuture[Any], fn: Callable[..., Any], *args: Any
    ) -> ActorFuture[Any]:
        """Run `fn(value, *args)` in this mailbox when `future` succeeds.

        An error in `future` skips `fn` and fails the returned future with it.
        """

        def _on_done(done: ActorFuture[Any]) -> Any:
            error = done.exception()
            if error is not None:
                raise error
            return fn(done.value(), *args)

        return self._cell.pipe(future, _on_done)

    def call_later(self, delay: float, fn: Callable[[], Any]) -> TimerHandle:
        """Run `fn()` in this mailbox after `delay` seconds (runtime clock)."""
        return self._cell.call_later(delay, fn)

    def call_repeatedly(self, interval: float, fn: Callable[[], Any]) -> TimerHandle:
        """Run `fn()` in this mailbox every `interval` seconds until cancelled."""
        return self._cell.call_repeatedly(interval, fn)

    def stop_self(self, reason: str = "stopped") -> None:
        """Stop after the messages already queued."""
        self._cell.request_stop(reason)


def _is_public_name(name: str) -> bool:
    return bool(name) and not name.startswith("_") and name.isidentifier()
