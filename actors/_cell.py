"""The cell: a pykka actor of the chosen runtime that hosts one behaviour.

It owns the mailbox and everything that makes the behaviour an actor: request
handling with deadlines, continuations, timers, crash containment, supervision
of children and orderly teardown. Users never touch cells; they hold handles.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pykka

# pykka's private parts this module relies on (pyproject.toml pins the tested
# range, pykka 4.0 to 4.5): `Envelope` from `pykka._envelope` (pykka's own
# tells and asks), and the actor internals `_actor_loop_running` (replaced:
# our loop), `_handle_receive` (extended), `_stop` (extended) and
# `_actor_loop_teardown` (replaced), besides the runtime hooks
# `_create_actor_inbox`, `_create_future` and `_start_actor_loop`.
from pykka._envelope import Envelope as PykkaEnvelope

from actors._messages import (
    Cast,
    ChildExited,
    Continuation,
    Crash,
    Request,
    StartChildren,
    Stop,
    TimerFired,
)
from actors.errors import (
    ActorCrashed,
    ActorsError,
    ActorStopped,
    DeadlineExceeded,
    EscalationError,
)
from actors.runtime import PENDING, VALUE, ActorFuture, MailboxClosed, TimerHandle
from actors.supervision import ChildSpec, Supervisor, describe
from transport.ratelimit import RateLimitedLog

if TYPE_CHECKING:
    from actors.actor import BaseActor
    from actors.system import ActorSystem

log = logging.getLogger("actors.cell")
_cast_log = RateLimitedLog(log)  # casts fail with nobody waiting: the log is all there is

_DRAIN_LIMIT = 100_000
DROP: Any = object()
"""Returned by a probe to make the cell drop the message (fault injection)."""
_tokens = itertools.count(1)


class _TimerRef:
    """An actor's handle on one of its timers (cancellable, never leaked)."""

    __slots__ = ("cancelled", "fired", "handle")

    def __init__(self) -> None:
        self.fired = False
        self.cancelled = False
        self.handle: TimerHandle | None = None

    def cancel(self) -> None:
        # Also for a firing already queued in the mailbox: _on_timer skips it.
        self.cancelled = True
        if self.handle is not None:
            self.handle.cancel()


class _FailedStart:
    """Placeholder child whose behaviour factory raised."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class CellMixin:
    """Actor machinery shared by the gevent and threading cells."""

    # Provided by the pykka base class of the runtime.
    actor_inbox: Any
    actor_stopped: Any
    actor_ref: Any

    def __init__(
        self,
        system: ActorSystem,
        name: str,
        behaviour: BaseActor,
        parent: CellMixin | None,
        capacity: int,
    ) -> None:
        self.mailbox_capacity = capacity
        super().__init__()
        self.system = system
        self.name = name
        self.behaviour = behaviour
        self.parent = parent
        self.exited = system.runtime.event()
        self.exit_reason: str | None = None
        self.crash_error: BaseException | None = None
        self._crash_reason: str | None = None
        self._stopping = False
        self._finished = False
        self._abandoned = False
        # The message being handled (Request, Cast, Continuation, TimerFired)
        # and since when: for status(), crash replies and inherited deadlines.
        self.handling: Any = None
        self._handling_since = 0.0
        self._owed: list[ActorFuture[Any]] = []  # replies waiting on a future (see _owe)
        self._owed_prune_at = 64
        # Callables resolve_call returned, by method, for the kind of request
        # the behaviour says they hold for (see BaseActor.reusable_calls).
        self.resolved_calls: dict[str, Callable[..., Any]] = {}
        self._reuse_rpc = behaviour.reusable_calls()
        self._timers: set[Any] = set()
        self._stop_deadline: float | None = None
        self._restart_tokens: dict[str, int] = {}
        self._previous: dict[str, CellMixin] = {}
        self._now = system.runtime.clock.monotonic
        self._running = True
        self.probes: list[Callable[[CellMixin, Any], None]] = []
        self.started_at = self._now()
        self.supervisor: Supervisor | None = None
        self.children: dict[str, Any] = {}
        behaviour._cell = self

    def __str__(self) -> str:
        return self.name

    # -- posting ------------------------------------------------------------------
    def post(self, message: Any) -> None:
        """Put a message in this mailbox; raises MailboxFull for user messages."""
        self.actor_inbox.put(message)

    def is_running(self) -> bool:
        return not self.actor_stopped.is_set()

    def request_stop(self, reason: str = "stopped", deadline: float | None = None) -> None:
        """Stop after the messages already queued (no-op if already finished).

        The deadline is also noted at once, not only in the Stop message: an
        actor stuck in a handler is killed before it reads that message, and
        its teardown (stopping its own children) must still keep to it.
        """
        self._note_stop_deadline(deadline)
        try:
            self.post(Stop(reason, deadline))
        except MailboxClosed:
            pass

    def _note_stop_deadline(self, deadline: float | None) -> None:
        if deadline is not None:
            current = self._stop_deadline
            self._stop_deadline = deadline if current is None else min(current, deadline)

    def abort(self, reason: str, deadline: float | None = None) -> None:
        """Stop soon: queued requests are failed instead of started."""
        self._stopping = True
        self.request_stop(reason, deadline)

    def request_crash(self, reason: str) -> None:
        self.post(Crash(reason))

    # -- pykka hooks ----------------------------------------------------------------
    def on_start(self) -> None:
        try:
            specs = self.behaviour.child_specs()
            if specs:
                self.supervisor = Supervisor(self.behaviour.supervision_policy())
                for spec in specs:
                    self.supervisor.add(spec)
                    self._start_child(spec, initial=True)
            self.behaviour.on_start()
            self.system.directory.running(self.name, self)
        except BaseException as exc:  # even SystemExit: it ends this actor only
            self._crash(f"start failed: {_describe(exc)}", exc)

    def on_stop(self) -> None:
        """pykka's hook; our teardown calls the behaviour's hooks instead."""

    def _actor_loop_running(self) -> None:
        # pykka's loop, minus what our messages never need (envelopes, the
        # BaseException fallback that would stop every actor): the hot path.
        # Our messages sit in the inbox as they are; only pykka's own asks
        # (e.g. ActorRef.stop()) arrive in a pykka Envelope with a reply.
        get = self.actor_inbox.get
        handle = self._handle_receive
        on_request = self._on_request
        request = self.system.runtime.request
        while self._running:
            message = get()
            kind = type(message)
            if kind is request and not self.probes:
                try:
                    on_request(message)
                except BaseException as exc:
                    self._handler_failed(message, exc)
            elif kind is PykkaEnvelope:  # pykka's tell or ask
                reply_to = message.reply_to
                if reply_to is None:
                    handle(message.message)
                    continue
                try:
                    reply_to.set(handle(message.message))
                except Exception:
                    reply_to.set_exception()
            else:
                handle(message)

    def _stop(self) -> None:
        """pykka's immediate stop (ActorRef.stop, ActorRegistry.stop_all)."""
        self._running = False
        self._stopping = True
        super()._stop()  # type: ignore[misc]

    def _handle_receive(self, message: Any) -> Any:
        if self.probes:
            for probe in self.probes:
                try:
                    if probe(self, message) is DROP:
                        return None  # fault injection: this message is lost
                except Exception:
                    log.exception("%s: probe failed", self.name)
        try:
            kind = type(message)
            if kind is self.system.runtime.request:
                self._on_request(message)
            elif kind is Continuation:
                self._on_continuation(message)
            elif kind is Cast:
                self._on_cast(message)
            elif kind is TimerFired:
                self._on_timer(message)
            elif kind is ChildExited:
                self._on_child_exited(message)
            elif kind is StartChildren:
                self._on_start_children(message)
            elif kind is Stop:
                self._begin_stop(message.reason, message.deadline)
            elif kind is Crash:
                self._crash(message.reason, None)
            else:
                return super()._handle_receive(message)  # type: ignore[misc]
        except BaseException as exc:
            self._handler_failed(message, exc)
        return None

    def _handler_failed(self, message: Any, exc: BaseException) -> None:
        # GreenletExit, gevent.Timeout, even SystemExit end this actor only;
        # pykka would otherwise stop every actor in the process.
        reason = _describe(exc)
        self._crash(reason, exc)
        # Whatever was being handled fails now rather than at its deadline.
        if isinstance(message, Request):
            message.try_set_exception(ActorCrashed(self.name, reason))
        elif type(message) is Continuation:
            message.result.try_set_exception(ActorCrashed(self.name, reason))

    # -- handlers -------------------------------------------------------------------
    def _on_request(self, req: Request) -> None:
        # A request is its own reply future: completed already (failed at once,
        # or abandoned), it is not run.
        if req._state != PENDING:
            return
        now = self._now()
        if req.deadline is not None and now > req.deadline:
            req.try_set_exception(DeadlineExceeded(self.name, req.method, req.timeout))
            return
        if self._stopping:
            req.try_set_exception(ActorStopped(self.name, "stopping"))
            return
        behaviour = self.behaviour
        reusable = req.rpc is self._reuse_rpc and req.version is None
        fn = self.resolved_calls.get(req.method) if reusable else None
        if fn is None:
            try:
                fn = behaviour.resolve_call(req.method, rpc=req.rpc, version=req.version)
            except Exception as exc:
                req.try_set_exception(exc)
                return
            if reusable:
                self.resolved_calls[req.method] = fn
        self.handling = req
        self._handling_since = now
        try:
            result = fn(*req.args, **req.kwargs)
        except behaviour.fatal_exceptions as exc:
            self._crash(f"{req.method}: {_describe(exc)}", exc)
            return
        except Exception as exc:
            req.try_set_exception(exc)
            return
        except BaseException as exc:
            self._crash(f"{req.method}: {_describe(exc)}", exc)
            return
        finally:
            self.handling = None
        # Straight to the one completion method (what transfer_to and try_set
        # call): every request ends here.
        if isinstance(result, ActorFuture):
            result.add_done_callback(req._copy_from)
            if req._state == PENDING:
                self._owe(req)
        else:
            req._complete(VALUE, result, None)

    def _owe(self, reply: ActorFuture[Any]) -> None:
        """Remember a reply that waits on a future: if this actor ends first, it fails.

        The future may hang on work that ends with the actor (a timer that is
        cancelled, a continuation that is never run); the caller must hear of
        the end at once, not at its deadline. Done replies are pruned now and
        then (amortised: the list may double before it is walked again).
        """
        owed = self._owed
        owed.append(reply)
        if len(owed) > self._owed_prune_at:
            self._prune_owed()

    def _prune_owed(self) -> None:
        self._owed = owed = [r for r in self._owed if r._state == PENDING]
        self._owed_prune_at = max(64, 2 * len(owed))

    def _fail_owed(self, failure: ActorsError) -> None:
        owed, self._owed = self._owed, []
        for reply in owed:
            reply.try_set_exception(failure)

    def _on_cast(self, cast: Cast) -> None:
        if self._stopping:
            log.warning("%s: dropped cast %s while stopping", self.name, cast.method)
            return
        behaviour = self.behaviour
        try:
            fn = behaviour.resolve_call(cast.method, rpc=cast.rpc, version=cast.version)
        except Exception as exc:
            # The method name is the sender's: never a category of its own.
            _cast_log.warn(f"{self.name} refused", "%s: refused cast: %s", self.name, exc)
            return
        self.handling, self._handling_since = cast, self._now()
        try:
            fn(*cast.args, **cast.kwargs)
        except behaviour.fatal_exceptions as exc:
            self._crash(f"{cast.method}: {_describe(exc)}", exc)
        except ActorsError as exc:  # refused (bad arguments, not ready...): nobody to tell
            _cast_log.warn(
                f"{self.name}.{cast.method}", "%s: cast %s failed: %s", self.name, cast.method, exc
            )
        except Exception:  # a bug: with its traceback, but not once per cast of a flood
            _cast_log.log(
                logging.ERROR,
                f"{self.name}.{cast.method}",
                "%s: cast %s failed",
                self.name,
                cast.method,
                exc_info=True,
            )
        finally:
            self.handling = None

    def _on_continuation(self, msg: Continuation) -> None:
        self.handling, self._handling_since = msg, self._now()
        try:
            result = msg.fn(msg.source)
        except Exception as exc:
            if isinstance(exc, self.behaviour.fatal_exceptions):
                msg.result.try_set_exception(ActorCrashed(self.name, _describe(exc)))
                self._crash(f"continuation: {_describe(exc)}", exc)
                return
            log.debug("%s: continuation failed: %s", self.name, _describe(exc))
            msg.result.try_set_exception(exc)
            return
        except BaseException as exc:
            msg.result.try_set_exception(ActorCrashed(self.name, _describe(exc)))
            self._crash(f"continuation: {_describe(exc)}", exc)
            return
        finally:
            self.handling = None
        if isinstance(result, ActorFuture):
            result.transfer_to(msg.result)
            if not msg.result.done():
                self._owe(msg.result)
        else:
            msg.result.try_set(result)

    def _on_timer(self, msg: TimerFired) -> None:
        if self._stopping or (msg.ref is not None and msg.ref.cancelled):
            return
        self.handling, self._handling_since = msg, self._now()
        try:
            msg.fn()
        except self.behaviour.fatal_exceptions as exc:
            self._crash(f"timer: {_describe(exc)}", exc)
        except Exception:
            log.exception("%s: timer callback failed", self.name)
        finally:
            self.handling = None

    # -- continuations and timers (called by the behaviour, in the mailbox) ----------
    def pipe(
        self, future: ActorFuture[Any], fn: Callable[[ActorFuture[Any]], Any]
    ) -> ActorFuture[Any]:
        result = self.system.runtime.future()
        deadline = getattr(self.handling, "deadline", None)  # a request's, or one inherited

        def _deliver(done: ActorFuture[Any]) -> None:
            try:
                self.post(Continuation(fn, done, result, deadline))
            except MailboxClosed:
                result.try_set_exception(ActorStopped(self.name, "stopped before continuing"))

        future.add_done_callback(_deliver)
        return result

    def call_later(self, delay: float, fn: Callable[[], Any]) -> TimerHandle:
        ref = _TimerRef()

        def _fire() -> None:
            ref.fired = True
            self._timers.discard(ref)
            self._post_quietly(TimerFired(fn, ref))

        ref.handle = self.system.runtime.call_later(delay, _fire)
        if not ref.fired:
            self._timers.add(ref)
        return ref

    def call_repeatedly(self, interval: float, fn: Callable[[], Any]) -> TimerHandle:
        ref = _TimerRef()
        ref.handle = self.system.runtime.call_repeatedly(
            interval, lambda: self._post_quietly(TimerFired(fn, ref))
        )
        self._timers.add(ref)
        return ref

    def _post_quietly(self, message: Any) -> None:
        try:
            self.post(message)
        except MailboxClosed:
            pass

    # -- crash and stop ---------------------------------------------------------------
    def _crash(self, reason: str, exc: BaseException | None) -> None:
        if self._crash_reason is None:
            self._crash_reason = reason
            self.crash_error = exc
            log.error(
                "actor %s crashed: %s",
                self.name,
                reason,
                exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
            )
        handling = self.handling  # read once: abandon() may run in another thread
        if isinstance(handling, Request):
            handling.try_set_exception(ActorCrashed(self.name, reason))
        self._stopping = True
        pykka.ActorRegistry.unregister(self.actor_ref)
        self._running = False
        self.actor_stopped.set()

    def _begin_stop(self, reason: str, deadline: float | None = None) -> None:
        self._note_stop_deadline(deadline)
        self._stopping = True
        pykka.ActorRegistry.unregister(self.actor_ref)
        self._running = False
        self.actor_stopped.set()

    def _run_loop(self) -> None:
        try:
            self._actor_loop()  # type: ignore[attr-defined]
        except BaseException as exc:
            if self.exited.is_set():
                return
            self._crash(f"killed: {_describe(exc)}", None)
            self._actor_loop_teardown()

    def _actor_loop_teardown(self) -> None:
        if self._abandoned or self.exited.is_set():
            return
        crashed = self._crash_reason is not None
        try:
            self._stopping = True
            self._cancel_timers()
            if crashed:
                # Callers hear of the crash now, not once the children have
                # stopped (a driver may take its whole shutdown_timeout).
                self._drain(run_continuations=False)
                self._fail_owed(ActorCrashed(self.name, self._crash_reason or "crashed"))
            self._stop_children(self._crash_reason or "parent stopping", urgent=crashed)
            self._drain(run_continuations=not crashed)
            try:
                if crashed:
                    self.behaviour.on_crash(self._crash_reason or "crashed")
                else:
                    self.behaviour.on_stop()
            except Exception:
                log.exception("%s: stop hook failed", self.name)
        except BaseException as exc:  # killed while stopping (a greenlet kill, a Timeout)
            if self._crash_reason is None:
                self._crash_reason = f"killed while stopping: {_describe(exc)}"
            raise
        finally:
            # Interrupted (killed) while stopping children: none may outlive us.
            for name in list(self.children):
                child = self.children.pop(name)
                if isinstance(child, CellMixin):
                    self._previous[name] = child
                    child.abort(f"parent {self.name} ended")
                    self.system.runtime.kill(child)  # type: ignore[arg-type]
            self._finished = True
            self.actor_inbox.close()
            # Whatever is still queued or owed fails now, even after a kill.
            self._drain(run_continuations=False)
            self._fail_owed(
                ActorCrashed(self.name, self._crash_reason)
                if self._crash_reason is not None
                else ActorStopped(self.name, "stopped before it answered")
            )
            self._announce_exit()

    def _cancel_timers(self) -> None:
        for timer in list(self._timers):
            timer.cancel()
        self._timers.clear()

    def _announce_exit(self) -> None:
        # The parent hears of the exit before `exited` is set, so anyone who
        # waited on `exited` can rely on the notice being in the parent's mailbox.
        self.exit_reason = self._crash_reason
        self.system.clear_ready(self.name, self)  # whatever it reported, it is gone
        self.system.directory.exited(self)
        if self.parent is not None:
            self.parent._post_quietly(ChildExited(self.name, self, self._crash_reason))
        else:
            self.system._root_exited(self)
        self.exited.set()

    def _drain(self, *, run_continuations: bool) -> None:
        failure: ActorsError = (
            ActorCrashed(self.name, self._crash_reason)
            if self._crash_reason is not None
            else ActorStopped(self.name)
        )
        for _ in range(_DRAIN_LIMIT):
            if self.actor_inbox.empty():
                break
            try:
                message = self.actor_inbox.get_nowait()
            except Exception:
                break
            if type(message) is PykkaEnvelope:  # pykka-level tells and asks
                if message.reply_to is not None:
                    message.reply_to.set_exception(
                        exc_info=(pykka.ActorDeadError, pykka.ActorDeadError(self.name), None)
                    )
                message = message.message
            kind = type(message)
            if isinstance(message, Request):
                message.try_set_exception(failure)
            elif kind is Continuation:
                if run_continuations:
                    self._handle_receive(message)
                else:
                    message.result.try_set_exception(failure)
            elif kind is Cast:
                log.warning("%s: cast %s dropped: %s", self.name, message.method, failure.message)

    def abandon(self, reason: str) -> None:
        """Give up on a cell that could not be stopped or killed (threads).

        Its thread may still be inside a handler; everything it owes is failed
        now, its children are stopped, and its supervisor will not start a new
        incarnation under the same name until that thread has really ended.
        """
        if self.exited.is_set():
            return
        self._abandoned = True
        self._crash_reason = self._crash_reason or reason
        self._stopping = True
        pykka.ActorRegistry.unregister(self.actor_ref)
        self._running = False
        self.actor_stopped.set()
        handling = self.handling  # read once: its own thread may still be changing it
        if isinstance(handling, Request):
            handling.try_set_exception(ActorCrashed(self.name, self._crash_reason))
        self._cancel_timers()  # its teardown will not (it returns early once abandoned)
        for name in reversed(list(self.children)):
            child = self.children.pop(name)
            if isinstance(child, CellMixin):
                child.abort(f"parent {self.name} abandoned")
                if not child.exited.wait(1.0):
                    child.abandon(f"parent {self.name} abandoned")
        self._finished = True
        self.actor_inbox.close()
        self._drain(run_continuations=False)
        self._fail_owed(ActorCrashed(self.name, self._crash_reason))
        self._announce_exit()

    # -- supervision ---------------------------------------------------------------------
    def _start_child(self, spec: ChildSpec, *, initial: bool = False) -> None:
        try:
            cell = self.system.spawn_cell(
                spec.name, spec.factory(), parent=self, capacity=spec.mailbox_capacity
            )
        except Exception as exc:
            if initial:
                raise  # a bad first start fails the parent's start, loudly
            # On a restart it counts as the child exiting again, so the
            # restart intensity applies and nothing stays 'restarting' forever.
            reason = f"could not start: {_describe(exc)}"
            log.error("%s: child %s %s", self.name, spec.name, reason)
            placeholder = _FailedStart(reason)
            self.children[spec.name] = placeholder
            self.post(ChildExited(spec.name, placeholder, reason))
            return
        self.children[spec.name] = cell

    def add_child(self, spec: ChildSpec) -> None:
        """Supervise and start one more child, after the others (in the mailbox)."""
        if self.supervisor is None:
            self.supervisor = Supervisor(self.behaviour.supervision_policy())
        if self.supervisor.spec(spec.name) is not None:
            raise ValueError(f"{self.name} already supervises {spec.name!r}")
        self.supervisor.add(spec)
        self._start_child(spec)

    def remove_child(self, name: str, reason: str = "removed") -> None:
        """Stop a child gracefully (its deadline applies) and forget it (in the mailbox)."""
        if self.supervisor is None or self.supervisor.spec(name) is None:
            raise ValueError(f"{self.name} does not supervise {name!r}")
        cell = self.children.pop(name, None)
        self._restart_tokens.pop(name, None)  # a pending restart must not bring it back
        try:
            if isinstance(cell, CellMixin):
                self._stop_child(cell, reason)
        finally:
            self.supervisor.remove(name)
            self._forget_name(name)

    def _forget_name(self, name: str) -> None:
        """Drop `name` and the names under it from the directory: it is not coming back."""
        directory = self.system.directory
        for entry in [n for n in directory.names() if n == name or n.startswith(f"{name}/")]:
            directory.remove(entry)

    def _stop_children(self, reason: str, *, urgent: bool = False) -> None:
        # Reverse start order is reverse spec order: a child restarted on its own
        # (one_for_one) sits last in `children` but still stops in its place.
        order = self.supervisor.names() if self.supervisor is not None else []
        names = [n for n in order if n in self.children]
        names += [n for n in self.children if n not in names]
        for name in reversed(names):
            cell = self.children.get(name)
            if isinstance(cell, CellMixin):
                self._previous[name] = cell
                self._stop_child(cell, reason, urgent=urgent)
            # Only now: if we are killed while it stops, `finally` still sees it.
            self.children.pop(name, None)

    def _stop_child(self, cell: CellMixin, reason: str, *, urgent: bool = False) -> None:
        spec = self.supervisor.spec(cell.name) if self.supervisor else None
        policy = self.behaviour.supervision_policy()
        timeout = (spec.shutdown_timeout if spec else None) or policy.shutdown_timeout
        if self._stop_deadline is not None:
            # Our parent's deadline bounds ours; leave it a margin so that the
            # child is done (or killed) before the parent itself runs out.
            timeout = max(0.0, min(timeout, (self._stop_deadline - self._now()) * 0.8))
        deadline = self._now() + timeout
        if urgent:
            cell.abort(reason, deadline)
        else:
            cell.request_stop(reason, deadline)
        if cell.exited.wait(timeout):
            return
        log.error("%s: child %s did not stop within %gs; killing it", self.name, cell.name, timeout)
        if self.system.runtime.kill(cell) and cell.exited.wait(min(max(timeout, 0.5), 5.0)):  # type: ignore[arg-type]
            return
        log.error("%s: child %s could not be killed; abandoning it", self.name, cell.name)
        cell.abandon(f"did not stop within {timeout:g}s")

    def _on_child_exited(self, msg: ChildExited) -> None:
        if self.children.get(msg.name) is not msg.cell:
            return  # an old incarnation, or one we stopped ourselves
        del self.children[msg.name]
        if self._stopping or self.supervisor is None:
            return
        now = self._now()
        decision = self.supervisor.child_exited(msg.name, abnormal=msg.reason is not None, now=now)
        log.info(
            "%s: child %s exited (%s): %s",
            self.name,
            msg.name,
            msg.reason or "normal",
            describe(decision),
        )
        if decision.escalate:
            policy = self.supervisor.policy
            error = EscalationError(
                self.name, msg.name, decision.restarts_in_window, policy.within_seconds
            )
            self._crash(error.message, error)
            return
        if isinstance(msg.cell, CellMixin):
            self._previous[msg.name] = msg.cell
        for name in decision.stop_siblings:
            sibling = self.children.pop(name, None)
            if isinstance(sibling, CellMixin):
                self._previous[name] = sibling
                self._stop_child(sibling, f"restarting with {msg.name}")
        for name in decision.remove:  # gone for good: stopped above if it was a sibling
            self._previous.pop(name, None)
            self._forget_name(name)
        if not decision.restart:
            return
        why = f"restarting after {msg.name} exited: {msg.reason or 'normal exit'}"
        for name in decision.restart:
            self.system.directory.restarting(name, why)
        message = StartChildren(decision.restart, next(_tokens))
        for name in decision.restart:  # a newer decision supersedes pending restarts
            self._restart_tokens[name] = message.token
        if decision.delay <= 0:
            self._on_start_children(message)
        else:
            self.system.runtime.call_later(decision.delay, lambda: self._post_quietly(message))

    def _on_start_children(self, msg: StartChildren) -> None:
        if self._stopping or self.supervisor is None:
            return
        for name in msg.names:
            spec = self.supervisor.spec(name)
            if spec is None or name in self.children:
                continue
            if self._restart_tokens.get(name) != msg.token:
                continue  # superseded by a later decision
            previous = self._previous.get(name)
            if previous is not None and previous.loop_alive():  # type: ignore[attr-defined]
                # Never two incarnations at once: an abandoned thread may still
                # be inside an operation. Look again shortly.
                log.warning("%s: %s waits for its previous incarnation to end", self.name, name)
                self.system.runtime.call_later(0.5, functools.partial(self._post_quietly, msg))
                return
            self._previous.pop(name, None)
            self._restart_tokens.pop(name, None)
            self.system.directory.note_restart(name)
            self._start_child(spec)

    # -- introspection ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What this actor is doing now: for dumps and failure messages."""
        now = self._now()
        current = self.handling
        entry = self.system.directory.entry(self.name)
        return {
            "name": self.name,
            "kind": type(self.behaviour).__name__,
            "state": "crashed"
            if self._crash_reason
            else (
                "stopped" if self.exited.is_set() else ("stopping" if self._stopping else "running")
            ),
            "mailbox": self.actor_inbox.qsize(),
            "capacity": self.mailbox_capacity,
            "restarts": entry.restarts if entry else 0,
            "current": _what(current) if current is not None else None,
            "current_age": round(now - self._handling_since, 3) if current is not None else None,
            "crash_reason": self._crash_reason,
            "children": list(self.children),
        }


_cell_classes: dict[type[pykka.Actor], type[Any]] = {}


def cell_class(base: type[pykka.Actor]) -> type[Any]:
    """The cell class for a runtime's pykka base class (made once, then cached)."""
    cls = _cell_classes.get(base)
    if cls is None:
        cls = type(f"{base.__name__.removesuffix('Base')}", (CellMixin, base), {})
        _cell_classes[base] = cls
    return cls


def _what(message: Any) -> str:
    """What a message being handled is doing, for status()."""
    kind = type(message)
    if isinstance(message, Request) or kind is Cast:
        return str(message.method)
    return "<continuation>" if kind is Continuation else "<timer>"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["CellMixin", "cell_class"]
