"""The actor system: runtime, directory of stable names, and handles.

Callers address actors by stable name (`host@backend`). The directory maps a
name to its current incarnation; supervisors update it when they restart a
child, so a handle keeps working across restarts. While a child waits out its
restart backoff, requests to it fail at once with a retryable
`ActorUnavailable` carrying the reason, rather than queueing or hanging.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actors._cell import CellMixin, cell_class
from actors._messages import Cast
from actors.errors import (
    ActorCrashed,
    ActorStopped,
    ActorUnavailable,
    Busy,
    DeadlineExceeded,
    NotFound,
)
from actors.runtime import (
    ActorFuture,
    Clock,
    MailboxClosed,
    MailboxFull,
    Runtime,
    get_runtime,
)
from actors.supervision import SupervisionPolicy

if TYPE_CHECKING:
    from actors.actor import BaseActor

__all__ = ["ActorHandle", "ActorSystem", "Directory", "DirectoryEntry"]

_monotonic = time.monotonic
log = logging.getLogger(__name__)


@dataclass
class DirectoryEntry:
    """Where a name points now."""

    cell: CellMixin | None
    state: str
    reason: str | None = None
    restarts: int = 0
    probes: list[Any] = field(default_factory=list)
    """Observers of every message this name receives, kept across restarts."""
    last: CellMixin | None = None
    """The incarnation that exited last (its thread may outlive it if abandoned)."""


class Directory:
    """Stable names to current cells. Written by supervisors, read by anyone."""

    def __init__(self, runtime: Runtime) -> None:
        self._entries: dict[str, DirectoryEntry] = {}
        self._runtime = runtime
        self._waiters: list[tuple[Callable[[], bool], Any]] = []
        self._lock = threading.Lock()

    def _changed(self) -> None:
        # Always under the lock: a waiter either saw the new state when it
        # checked, or is already in the list when we look.
        with self._lock:
            ready = [w for w in self._waiters if w[0]()]
            for w in ready:
                self._waiters.remove(w)
        for _, event in ready:
            event.set()

    def wait_for(self, name: str, state: str | tuple[str, ...], timeout: float) -> DirectoryEntry:
        """Wait until `name` is in `state` (e.g. "running"); DeadlineExceeded otherwise."""
        states = (state,) if isinstance(state, str) else state

        def check() -> bool:
            entry = self._entries.get(name)
            return entry is not None and entry.state in states

        with self._lock:
            if not check():
                event = self._runtime.event()
                waiter = (check, event)
                self._waiters.append(waiter)
            else:
                event = None
        if event is not None and not event.wait(timeout):
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            entry = self._entries.get(name)
            raise DeadlineExceeded(
                name,
                f"wait_for({'|'.join(states)}) [now {entry.state if entry else 'absent'}]",
                timeout,
            )
        return self._entries[name]

    def register(self, name: str, cell: CellMixin) -> None:
        entry = self._entries.get(name)
        if entry is not None and entry.cell is not None and entry.cell.is_running():
            raise ValueError(f"an actor named {name!r} is already running")
        if entry is None:
            entry = self._entries[name] = DirectoryEntry(cell, "starting")
        else:
            entry.cell, entry.state, entry.reason = cell, "starting", None
        cell.probes = entry.probes  # the same list: probes outlive restarts
        self._changed()

    def running(self, name: str, cell: CellMixin) -> None:
        entry = self._entries.get(name)
        if entry is not None and entry.cell is cell:
            entry.state = "running"
        self._changed()

    def restarting(self, name: str, reason: str) -> None:
        entry = self._entries.setdefault(name, DirectoryEntry(None, "restarting"))
        entry.cell, entry.state, entry.reason = None, "restarting", reason
        self._changed()

    def note_restart(self, name: str) -> None:
        entry = self._entries.get(name)
        if entry is not None:
            entry.restarts += 1

    def exited(self, cell: CellMixin) -> None:
        entry = self._entries.get(cell.name)
        if entry is not None:
            entry.last = cell
        if entry is not None and entry.cell is cell:
            entry.cell = None
            entry.state = "crashed" if cell.exit_reason else "stopped"
            entry.reason = cell.exit_reason
        self._changed()

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)
        self._changed()

    def predecessor_alive(self, name: str, current: CellMixin) -> bool:
        """True if an earlier incarnation of `name` still runs code (abandoned thread)."""
        entry = self._entries.get(name)
        last = entry.last if entry is not None else None
        return last is not None and last is not current and bool(last.loop_alive())  # type: ignore[attr-defined]

    def probes(self, name: str) -> list[Any]:
        """The probe list of `name` (created if the name is not known yet)."""
        entry = self._entries.get(name)
        if entry is None:
            entry = self._entries[name] = DirectoryEntry(None, "absent")
        return entry.probes

    def entry(self, name: str) -> DirectoryEntry | None:
        return self._entries.get(name)

    def names(self) -> list[str]:
        return list(self._entries)

    def lookup(self, name: str) -> CellMixin:
        """The running cell for `name`, or a typed error saying why not."""
        entry = self._entries.get(name)
        if entry is None:
            raise NotFound(name)
        cell = entry.cell
        if cell is None:
            raise _unavailable(name, entry)
        if cell._stopping:
            if cell._crash_reason is not None:
                raise ActorCrashed(name, cell._crash_reason)
            raise ActorStopped(name, "stopping")
        return cell


def _unavailable(name: str, entry: DirectoryEntry) -> ActorUnavailable:
    if entry.state == "crashed":
        return ActorCrashed(name, entry.reason or "crashed")
    if entry.state == "stopped" or (entry.cell is not None and entry.cell._crash_reason is None):
        return ActorStopped(name, entry.reason or "stopped")
    return ActorUnavailable(name, entry.reason or entry.state)


class ActorHandle:
    """A stable address for an actor: survives restarts of what it names.

    Two ways to message it: `ask` (a request; a future of the reply) and
    `tell` (fire and forget). Every option is a keyword.
    """

    __slots__ = (
        "_directory",
        "_entries",
        "_new_request",
        "_now",
        "_real_clock",
        "_timeout",
        "name",
    )

    def __init__(self, system: ActorSystem, name: str) -> None:
        self.name = name
        self._directory = system.directory
        self._entries = system.directory._entries
        self._new_request = system.runtime.request.create
        self._now = system.runtime.clock.monotonic
        self._real_clock = self._now is _monotonic  # then one clock read serves both deadlines
        self._timeout = system.default_timeout

    def __repr__(self) -> str:
        return f"<ActorHandle {self.name}>"

    def ask(
        self,
        method: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        rpc: bool = False,
        version: str | None = None,
        accepted: bool = False,
    ) -> ActorFuture[Any]:
        """Send a request; the future completes with the reply or a typed error.

        Never blocks: a full mailbox, an unknown or restarting target fail the
        future at once. `future.result()` waits at most until the deadline:
        `timeout` from now (the system's default timeout if None) or, if
        sooner, `deadline` (on the runtime's clock, e.g. the deadline of the
        request being handled, which work done for it inherits).

        `accepted=True` hands over work that was already accepted (journaled)
        elsewhere: it has no deadline and passes the mailbox bound, because
        committed work must not be refused for lack of room (call
        `check_room()` before accepting it). It still fails at once if the
        actor is unavailable, and with ActorCrashed/ActorStopped if the actor
        ends before it replies.
        """
        if accepted and (timeout is not None or deadline is not None):
            raise ValueError("accepted work has no deadline: pass no timeout or deadline")
        return self._ask(method, args, kwargs, timeout, deadline, rpc, version, accepted)

    def _ask(
        self,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        timeout: float | None,
        deadline: float | None,
        rpc: bool,
        version: str | None,
        accepted: bool,
    ) -> ActorFuture[Any]:
        """`ask` with every argument positional and no check of them: for the hot callers.

        Positional arguments bind cheaper than keywords, and this runs for
        every request (Service.call, the router, a manager's driver calls).
        """
        if accepted:
            request = self._new_request(
                self.name, method, args, kwargs, None, math.inf, rpc, version, True, None
            )
        else:
            if timeout is None:
                timeout = self._timeout
            wall = _monotonic()  # for result(), which waits on the real clock
            now = wall if self._real_clock else self._now()
            expired = False
            if deadline is not None and deadline < now + timeout:
                expired = deadline <= now  # nothing left: failed now, never queued
                timeout = 0.0 if expired else deadline - now
            request = self._new_request(
                self.name,
                method,
                args,
                kwargs,
                now + timeout,
                timeout,
                rpc,
                version,
                False,
                wall + timeout,
            )
            if expired:
                request.set_exception(DeadlineExceeded(self.name, method, 0.0))
                return request
        # Directory.lookup(), inlined for a running actor; it explains the rest.
        entry = self._entries.get(self.name)
        cell = entry.cell if entry is not None else None
        try:
            if cell is None or cell._stopping:
                cell = self._directory.lookup(self.name)
            cell.actor_inbox.put(request)
        except (NotFound, ActorUnavailable) as exc:
            request.set_exception(exc)
        except MailboxFull as exc:
            request.set_exception(Busy(self.name, exc.capacity))
        except MailboxClosed:
            request.set_exception(ActorStopped(self.name, "stopped"))
        return request

    def tell(
        self,
        method: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        rpc: bool = False,
        version: str | None = None,
    ) -> None:
        """Fire and forget; raises `Busy`, `NotFound` or `ActorUnavailable` if not accepted."""
        cell = self._directory.lookup(self.name)
        try:
            cell.post(Cast(method, args, kwargs or {}, rpc, version))
        except MailboxFull as exc:
            raise Busy(self.name, exc.capacity) from None
        except MailboxClosed:
            raise ActorStopped(self.name, "stopped") from None

    def check_room(self, reserved: int = 0) -> None:
        """Raise what `ask` would fail with now: NotFound, ActorUnavailable or Busy.

        Checked before work is accepted elsewhere (see `ask(accepted=True)`);
        `reserved` counts work already accepted for this actor but not yet in
        its mailbox.
        """
        inbox = self._directory.lookup(self.name).actor_inbox
        if inbox.capacity and inbox.qsize() + reserved >= inbox.capacity:
            raise Busy(self.name, inbox.capacity)

    def status(self) -> dict[str, Any]:
        """A snapshot of what the actor is doing (read without asking it)."""
        entry = self._directory.entry(self.name)
        if entry is None:
            raise NotFound(self.name)
        if entry.cell is None:
            return {
                "name": self.name,
                "state": entry.state,
                "reason": entry.reason,
                "restarts": entry.restarts,
            }
        return entry.cell.status()

    def crash(self, reason: str = "crash requested") -> None:
        """Make the actor crash after the messages already queued (fault injection)."""
        self._directory.lookup(self.name).request_crash(reason)


class ActorSystem:
    """A runtime plus the directory of named actors it hosts."""

    def __init__(
        self,
        runtime: str | Runtime = "gevent",
        *,
        clock: Clock | None = None,
        mailbox_capacity: int = 1000,
        default_timeout: float = 60.0,
        supervision: SupervisionPolicy | None = None,
    ) -> None:
        self.runtime = get_runtime(runtime, clock=clock)
        self.directory = Directory(self.runtime)
        self.mailbox_capacity = mailbox_capacity
        self.default_timeout = default_timeout
        self.supervision = supervision or SupervisionPolicy()
        self._roots: list[CellMixin] = []
        self.health: dict[str, tuple[Any, bool]] = {}
        """Readiness by actor name, with the incarnation that reported it."""
        self._ready_listeners: list[Callable[[str], None]] = []
        self._cell_cls = cell_class(self.runtime.actor_base)
        self.on_root_exit: Callable[[CellMixin], None] | None = None

    def spawn_cell(
        self,
        name: str,
        behaviour: BaseActor,
        *,
        parent: CellMixin | None = None,
        capacity: int | None = None,
    ) -> CellMixin:
        """Start a behaviour in a new cell under `name`."""
        cell: CellMixin = self._cell_cls(
            self,
            name,
            behaviour,
            parent,
            self.mailbox_capacity if capacity is None else capacity,
        )
        self.directory.register(name, cell)
        if parent is None:
            self._roots.append(cell)
        import pykka

        pykka.ActorRegistry.register(cell.actor_ref)
        cell._start_actor_loop()  # type: ignore[attr-defined]
        return cell

    def spawn(self, name: str, behaviour: BaseActor, *, capacity: int | None = None) -> ActorHandle:
        """Start a top-level actor and return its handle."""
        self.spawn_cell(name, behaviour, capacity=capacity)
        return ActorHandle(self, name)

    def set_ready(self, name: str, cell: Any, ready: bool) -> None:
        """An actor reports its own readiness (drivers: setup done).

        Listeners hear of an actor that becomes ready (in that actor's context:
        they must only post, never block).
        """
        previous = self.health.get(name)
        self.health[name] = (cell, ready)
        if ready and (previous is None or previous[0] is not cell or not previous[1]):
            for listener in list(self._ready_listeners):
                try:
                    listener(name)
                except Exception:
                    log.exception("readiness listener %r failed", listener)

    def add_ready_listener(self, listener: Callable[[str], None]) -> None:
        """Call `listener(name)` whenever an actor becomes ready."""
        self._ready_listeners.append(listener)

    def remove_ready_listener(self, listener: Callable[[str], None]) -> None:
        if listener in self._ready_listeners:
            self._ready_listeners.remove(listener)

    def clear_ready(self, name: str, cell: Any) -> None:
        """Forget what `cell` reported, unless a newer incarnation reported since."""
        entry = self.health.get(name)
        if entry is not None and entry[0] is cell:
            self.health.pop(name, None)

    def is_ready(self, name: str) -> bool:
        entry = self.health.get(name)
        return bool(entry and entry[1])

    def handle(self, name: str) -> ActorHandle:
        return ActorHandle(self, name)

    def _root_exited(self, cell: CellMixin) -> None:
        if cell in self._roots:
            self._roots.remove(cell)
        callback = self.on_root_exit
        if callback is not None:
            callback(cell)

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop every top-level actor, newest first, all within `timeout`.

        One deadline for the whole tree: each actor bounds the time it gives
        its children by what is left of it. True if everything stopped in time.
        """
        ok = True
        now = self.runtime.clock.monotonic
        deadline = now() + timeout * 0.8  # the tree finishes before we give up on it
        wall_deadline = time.monotonic() + timeout
        for cell in reversed(list(self._roots)):
            cell.request_stop("system stopping", deadline)
            if not cell.exited.wait(max(0.0, wall_deadline - time.monotonic())):
                log.error("actor %s did not stop within %gs", cell.name, timeout)
                if not (self.runtime.kill(cell) and cell.exited.wait(5.0)):  # type: ignore[arg-type]
                    cell.abandon(f"did not stop within {timeout:g}s")
                ok = False
        return ok

    def dump(self) -> list[dict[str, Any]]:
        """Every named actor with its state, mailbox depth and current work."""
        result = []
        for name in self.directory.names():
            entry = self.directory.entry(name)
            if entry is None:
                continue
            if entry.cell is not None:
                result.append(entry.cell.status())
            else:
                result.append(
                    {
                        "name": name,
                        "state": entry.state,
                        "reason": entry.reason,
                        "restarts": entry.restarts,
                    }
                )
        return result
