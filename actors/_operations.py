"""Journaled requests: committed before they are acknowledged, outcome recorded.

A request to a manager method marked `@rpc(journal=True)` goes through
`Operations.submit` instead of straight to the manager's mailbox:

1. refused at once, with nothing written, if it could never run (unknown
   method, wrong version) or the manager has no room (Busy);
2. `Journal.accept` commits an 'accepted' row (group commit). With an
   idempotency key already recorded for the target, the existing operation
   answers instead: its result or error if finished, the same in-flight future
   if it runs in this process, else OperationInProgress. Nothing runs twice;
3. the committed operation is delivered to the manager past its mailbox bound
   (it was accepted, so it must not be refused) with no deadline: a caller
   that gives up does not cancel it. `ManagerActor.run_operation` marks it
   'running', runs the method and records 'succeeded' or 'failed';
4. the caller's future (the reply of a call; for a cast the ack, carrying the
   operation id) completes only after the corresponding commit.

If the manager (or its driver) crashes or stops while the operation runs, it
is recorded 'interrupted' and the caller gets OperationInterrupted at once.
If it never started, or it failed with a retryable error, it is recorded
'failed' and gives up its key, so a retry runs anew. An outcome the
database refused is kept in memory (answering retries) and written after the
next successful registry round. After a crash of the whole process, the
ServiceActor hands what an earlier process left 'accepted' or 'running' to
`recover()`: what `recover_operation` allows runs again, the rest is marked
interrupted.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from actors.errors import (
    ActorCrashed,
    ActorStopped,
    InvalidArguments,
    OperationInProgress,
    OperationInterrupted,
)
from actors.registry.journal import (
    InvalidTransition,
    Journal,
    JsonText,
    OperationClaimed,
    OperationNotFound,
    OperationRecord,
    json_text,
    new_operation_id,
)
from actors.rpc import RpcMethod
from actors.runtime import ActorFuture, Runtime, check_admission
from actors.system import ActorHandle
from transport.errors import error_from_wire
from transport.protocol import cut_text, error_body

__all__ = ["Operations", "error_data", "outcome_error"]

log = logging.getLogger("actors.operations")

RUN_METHOD = "run_operation"
"""The ManagerActor method that runs a delivered operation (in-process only)."""


class ManagerKind(Protocol):
    """What the journal uses of a manager class (a ManagerActor subclass).

    A Protocol rather than `ManagerActor`, whose module imports this one: the
    dependency goes one way only.
    """

    @property
    def rpc_methods(self) -> Mapping[str, RpcMethod]: ...

    def check_request(self, name: str, method: str, version: str | None) -> None: ...


def error_data(error: BaseException) -> dict[str, Any]:
    """An error as JSON data for the journal (the wire's error body)."""
    data = error_body(error)
    try:
        json.dumps(data)
    except (TypeError, ValueError):
        data["details"] = {k: repr(v) for k, v in data.get("details", {}).items()}
    return data


def outcome_error(record: OperationRecord) -> BaseException:
    """The error a finished, unsuccessful operation answers a retry with."""
    if record.state == "interrupted":
        return OperationInterrupted(record.id, record.target, record.method, record.reason or "")
    return error_from_wire(record.error or {"type": "Error", "message": record.reason or ""})


@dataclass
class _InFlight:
    """An operation delivered to a manager in this process."""

    record: OperationRecord
    outcome: ActorFuture[Any]
    started: bool = False


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How an operation ended, as this process knows it (written or still to write)."""

    state: str
    result: Any
    error: BaseException | None
    reason: str | None
    release_key: bool = False
    """A retryable failure that did nothing: a retry with the key runs anew."""
    owner: str | None = None
    """The manager whose row it is written to (fenced: see Journal.set_state)."""
    result_json: JsonText | None = None
    """`result` as the journal stores it, when encoded already (`_as_recorded`)."""

    def answer(self, future: ActorFuture[Any]) -> None:
        if self.error is None:
            future.try_set(self.result)
        else:
            future.try_set_exception(self.error)


def _from_record(record: OperationRecord) -> _Outcome:
    """The outcome a finished journal row holds."""
    if record.state == "succeeded":
        return _Outcome("succeeded", record.result, None, None)
    return _Outcome(record.state, None, outcome_error(record), record.reason)


Settled = Callable[["_Outcome"], None]
"""Given the outcome that holds once `_write_outcome` has settled it."""


def _nothing(final: _Outcome) -> None:
    """A `Settled` for writes whose outcome nobody waits for."""


def _settle(then: Settled, final: _Outcome) -> None:
    """`then(final)`; what it raises is logged, and the journal's own work goes on."""
    try:
        then(final)
    except Exception:
        log.exception("settling an operation's outcome failed")


class _RunningWritten:
    """What the journal completes once 'running' is written (in its writer thread)."""

    __slots__ = ("_done", "_op_id", "_operations")

    def __init__(self, operations: Operations, op_id: str) -> None:
        self._operations = operations
        self._op_id = op_id
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Any) -> None:
        self._done = True
        self._operations._running_written(self._op_id, None)

    def set_exception(self, exception: BaseException | None) -> None:
        self._done = True
        self._operations._running_written(self._op_id, exception)


def _reply(answer: ActorFuture[tuple[bool, Any]], final: _Outcome) -> None:
    """`finish`'s answer, (ok, value or error), once the outcome is written (or the
    journal's, if it recorded another first)."""
    answer.try_set((True, final.result) if final.error is None else (False, final.error))


class _WriteFailures:
    """Journal writes failing through a database outage: logged once, with a count.

    The first failure is logged (ERROR) with its reason; the next ones only
    counted; the first write that succeeds again logs how many failed. A
    line per failed write would be thousands of lines a minute under load.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def failed(self, what: str, error: BaseException) -> None:
        with self._lock:
            self.count += 1
            first = self.count == 1
        if first:
            log.error(
                "journal writes fail (%s): %s; outcomes are kept and written when the"
                " database answers (further failures are counted, not logged)",
                what,
                error,
            )

    def succeeded(self) -> int:
        """A write succeeded: how many failed since the last that did (logged if any)."""
        if not self.count:  # the common case: no lock
            return 0
        with self._lock:
            count, self.count = self.count, 0
        if count:
            log.warning("journal writes succeed again; %d failed meanwhile", count)
        return count


MAX_UNRECORDED = 10_000
"""Outcomes kept for a database that does not answer; beyond, recovery decides."""

RECENT_OUTCOMES = 4096
"""Outcomes kept in memory after they are written: a retry whose accept shares
a commit batch with the final write reads the row as unfinished, and must
still get the outcome."""


class Operations:
    """The service's journaled request path (one per Service, shared by its managers)."""

    def __init__(self, journal: Journal, runtime: Runtime) -> None:
        self.journal = journal
        self.runtime = runtime
        self._inflight: dict[str, _InFlight] = {}
        self._recent: OrderedDict[str, _Outcome] = OrderedDict()
        # Outcomes the database refused (outage): answered from here, written later.
        self._unrecorded: dict[str, _Outcome] = {}
        self._rewriting: set[str] = set()  # ... of those, the ones being written again
        self._rewrite_due = False  # one was kept since the last rewrite began
        # Accepted but not yet in the mailbox, per manager: counted against its room.
        self._undelivered: dict[str, int] = {}
        self._lock = threading.Lock()
        self._failures = _WriteFailures()
        self.fence: Callable[[], BaseException | None] | None = None
        """Set by the service (its heartbeat): the error that keeps this host from
        starting operations another host may take over, when it must (HostFenced)."""

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def is_journaled(self, manager_class: ManagerKind, method: str) -> bool:
        info = manager_class.rpc_methods.get(method)
        return info is not None and info.journal

    # -- the request path -----------------------------------------------------------
    def submit(
        self,
        handle: ActorHandle,
        manager_class: ManagerKind,
        method: str,
        args: dict[str, Any],
        *,
        version: str | None,
        key: str | None,
        scope: str | None = None,
    ) -> tuple[ActorFuture[Any], ActorFuture[Any]]:
        """Journal and run one request; returns (accepted, outcome) futures.

        `scope`: across which managers `key` is one operation (the manager
        itself when None; `topic:<topic>` for a request to any one of a topic).

        `accepted` completes with {"operation": id} once the row is committed
        and delivered (what a cast's ack waits for); `outcome` with the
        method's result once that is committed (what a call's reply waits for).
        """
        accepted, outcome = self.runtime.future(), self.runtime.future()
        op_id = new_operation_id()
        name = handle.name
        try:
            manager_class.check_request(name, method, version)
            # Refused arguments are answered now, not recorded as a failed operation.
            manager_class.rpc_methods[method].check_arguments(name, args)
            handle.check_room(reserved=self._undelivered.get(name, 0))
            check_admission()  # the blocking steps of changes under way are bounded here
            # Completed from the writer thread after the commit (no concurrent
            # Future and relay per request); followed before it is submitted.
            committed = self.runtime.future()
            committed.add_done_callback(
                functools.partial(
                    self._accepted, op_id, handle, method, args, version, accepted, outcome
                )
            )
            self._reserve(name, 1)  # before the commit can come back (threading: at once)
            try:
                self.journal.accept_into(
                    self.runtime.completion(committed),
                    name,
                    method,
                    args,
                    key,
                    op_id=op_id,
                    scope=scope,
                )
            except BaseException:
                self._reserve(name, -1)
                raise
        except (TypeError, ValueError) as exc:  # arguments the journal cannot store
            error: BaseException = InvalidArguments(handle.name, method, str(exc))
            accepted.set_exception(error)
            outcome.set_exception(error)
            return accepted, outcome
        except Exception as exc:
            accepted.set_exception(exc)
            outcome.set_exception(exc)
            return accepted, outcome
        return accepted, outcome

    def _reserve(self, name: str, delta: int) -> None:
        with self._lock:
            count = self._undelivered.get(name, 0) + delta
            if count > 0:
                self._undelivered[name] = count
            else:
                self._undelivered.pop(name, None)

    def _accepted(
        self,
        op_id: str,
        handle: ActorHandle,
        method: str,
        args: dict[str, Any],
        version: str | None,
        accepted: ActorFuture[Any],
        outcome: ActorFuture[Any],
        done: ActorFuture[OperationRecord],
    ) -> None:
        try:
            error = done.exception()
            if error is not None:  # not committed: nothing was acknowledged, nothing runs
                accepted.try_set_exception(error)
                outcome.try_set_exception(error)
                return
            record: OperationRecord = done.value()
            if record.id != op_id:
                # The key was already used: answer with that operation, never run twice.
                self._answer_existing(handle, record, method, args, accepted, outcome)
                return
            self._deliver(handle, record, version, outcome)
            accepted.try_set({"operation": record.id})
        finally:
            self._reserve(handle.name, -1)

    def _answer_existing(
        self,
        handle: ActorHandle,
        record: OperationRecord,
        method: str,
        args: dict[str, Any],
        accepted: ActorFuture[Any],
        outcome: ActorFuture[Any],
    ) -> None:
        if record.method != method or record.args != json.loads(json.dumps(args)):
            error = InvalidArguments(
                record.target,
                method,
                f"idempotency key {record.idempotency_key!r} already used by operation"
                f" {record.id} ({record.method} with other arguments)",
            )
            accepted.try_set_exception(error)
            outcome.try_set_exception(error)
            return
        accepted.try_set({"operation": record.id})
        inflight = self._inflight.get(record.id)
        known = self._unrecorded.get(record.id) or self._recent.get(record.id)
        if inflight is not None:
            inflight.outcome.add_done_callback(lambda done: _copy(done, outcome))
        elif known is not None:
            known.answer(outcome)
        elif record.state == "succeeded":
            outcome.try_set(record.result)
        elif record.finished:
            outcome.try_set_exception(outcome_error(record))
        elif _host(record.target) == _host(handle.name):
            # Unfinished, not running here: an earlier process of this host
            # left it, and this host's recovery owns it.
            outcome.try_set_exception(OperationInProgress(record.id, record.target, record.method))
        else:  # another host of the topic has it: taken over if that host is down
            self._take_over(handle, record, outcome)

    def _take_over(
        self, handle: ActorHandle, record: OperationRecord, outcome: ActorFuture[Any]
    ) -> None:
        """Run here an operation another host accepted and left unfinished, if it is down.

        The claim is a compare-and-set in the journal (see Journal.claim_all):
        of the hosts a retry reaches, and the owner's own recovery, one wins.
        The winner's manager decides as crash recovery does (`recover_operation`:
        an idempotent method runs again, another is recorded interrupted).
        While the owner is up, the retry hears OperationInProgress (retryable).
        """
        in_progress = OperationInProgress(record.id, record.target, record.method)
        claim = self.runtime.offload(self.journal.take_over, record, handle.name, lane="system")

        def claimed(done: ActorFuture[OperationRecord | None]) -> None:
            mine = None if done.exception() is not None else done.value()
            if mine is None:
                outcome.try_set_exception(in_progress)
                return
            log.warning(
                "operation %s (%s.%s) taken over from %s, which is down",
                record.id,
                handle.name,
                record.method,
                record.target,
            )
            handed = handle.ask("recover_operations", ([mine],), accepted=True)
            handed.add_done_callback(lambda done: follow(mine, done))

        def follow(mine: OperationRecord, handed: ActorFuture[Any]) -> None:
            if handed.exception() is not None:
                # The manager could not take it (restarting): give the claim
                # back, so that a retry (here or elsewhere) may take it again.
                self.runtime.offload(self.journal.claim_all, [mine], record.target, lane="system")
                outcome.try_set_exception(in_progress)
                return
            inflight = self._inflight.get(mine.id)
            if inflight is not None:
                inflight.outcome.add_done_callback(lambda done: _copy(done, outcome))
            else:  # recorded interrupted (or ended already): a retry reads it
                outcome.try_set_exception(in_progress)

        claim.add_done_callback(claimed)

    def _deliver(
        self,
        handle: ActorHandle,
        record: OperationRecord,
        version: str | None,
        outcome: ActorFuture[Any],
        *,
        resumed: bool = False,
    ) -> None:
        """Hand a committed operation to its manager; record an interruption if it never ends."""
        self._inflight[record.id] = _InFlight(record, outcome)
        reply = handle.ask(
            RUN_METHOD, (record.id, record.method, record.args, version, resumed), accepted=True
        )
        reply.add_done_callback(functools.partial(self._ran, record))

    def _ran(self, record: OperationRecord, done: ActorFuture[Any]) -> None:
        """The manager's reply: (ok, value) once the outcome is committed, or why it never ran.

        run_operation never raises: an exception here comes from the manager's
        cell (it crashed or stopped with the operation queued or running).
        """
        inflight = self._inflight.get(record.id)
        if inflight is None:
            return
        error = done.exception()
        if error is not None and inflight.started:
            self.interrupt(record, f"{record.target} ended while it ran: {error}")
            return
        del self._inflight[record.id]
        if error is not None:  # it never ran: a retryable failure, the key free again
            outcome = _Outcome("failed", None, error, f"not started: {error}", True, record.target)
            self._write_outcome(record.id, outcome, lambda final: final.answer(inflight.outcome))
            return
        ok, value = done.value()
        if ok:
            inflight.outcome.try_set(value)
        else:
            inflight.outcome.try_set_exception(value)

    def interrupt(self, record: OperationRecord, reason: str) -> ActorFuture[Any]:
        """Record `record` interrupted; its waiters get OperationInterrupted after the commit."""
        inflight = self._inflight.pop(record.id, None)
        error = OperationInterrupted(record.id, record.target, record.method, reason)
        outcome = _Outcome("interrupted", None, error, reason, owner=record.target)
        held: ActorFuture[_Outcome] = self.runtime.future()

        def settled(final: _Outcome) -> None:
            held.try_set(final)
            if inflight is not None:
                # What the journal holds: the operation may have finished first.
                final.answer(inflight.outcome)

        self._write_outcome(record.id, outcome, settled)
        return held

    def _write_outcome(self, op_id: str, outcome: _Outcome, then: Settled = _nothing) -> None:
        """Write how an operation ended; `then(final)` gets the outcome that holds.

        That is `outcome` once committed, or once the database refused it: a
        refused write is kept (and answers retries by key) until
        `write_unrecorded()` gets it in, after the database is back. If the
        row had ended already (a race between "interrupted", written when the
        manager ended, and the driver's own result), the journal's committed
        outcome holds: it is read back, and answers the callers and retries.
        """
        error = outcome.error
        if error is not None:
            # Kept for retries (thousands of outcomes): without the traceback,
            # whose frames would keep every request's objects alive with it.
            error.__traceback__ = None
            error.__context__ = None
        # The writer completes `written` straight from its thread (no concurrent
        # Future in between); partials of methods rather than closures: fewer
        # objects per request, which live until the commit.
        written = self.runtime.future()
        completion = self.runtime.completion(written)
        try:
            self.journal.set_state_into(
                completion,
                op_id,
                outcome.state,
                result=outcome.result if outcome.result_json is None else outcome.result_json,
                error=None if error is None else error_data(error),
                reason=_brief_reason(outcome.reason),
                release_key=outcome.release_key,
                returning=False,  # only the commit matters here: no read back
                owner=outcome.owner,
            )
        except (TypeError, ValueError):  # a result that is not JSON data: not stored
            self.journal.set_state_into(
                completion,
                op_id,
                outcome.state,
                reason="result is not JSON data: not recorded",
                returning=False,
                owner=outcome.owner,
            )
        written.add_done_callback(functools.partial(self._outcome_written, op_id, outcome, then))

    def _outcome_written(
        self, op_id: str, outcome: _Outcome, then: Settled, done: ActorFuture[Any]
    ) -> None:
        """The journal's answer to `_write_outcome`'s write; settles the outcome."""
        self._rewriting.discard(op_id)
        failure = done.exception()
        if failure is None or isinstance(failure, OperationNotFound):
            self._keep(op_id, then, outcome)
            return
        if isinstance(failure, InvalidTransition | OperationClaimed):
            # Ended already, or another host took it over (this one looked down
            # to it): the journal's row holds, not this write.
            self.runtime.offload(self.journal.get, op_id, lane="system").add_done_callback(
                functools.partial(self._outcome_read, op_id, outcome, then)
            )
            return
        self._failures.failed(f"outcome of operation {op_id}", failure)
        if op_id in self._unrecorded or len(self._unrecorded) < MAX_UNRECORDED:
            self._unrecorded[op_id] = outcome
            self._rewrite_due = True
        # Else bounded: the row stays unfinished and the next start's recovery decides.
        _settle(then, outcome)  # after it is kept: a retry by key must find it

    def _outcome_read(
        self, op_id: str, outcome: _Outcome, then: Settled, read: ActorFuture[Any]
    ) -> None:
        """The row an outcome could not be written to (it had ended): its outcome holds."""
        record = read.value() if read.exception() is None else None
        final = outcome if record is None or not record.finished else _from_record(record)
        self._keep(op_id, then, final)

    def _keep(self, op_id: str, then: Settled, final: _Outcome) -> None:
        """`final` is the outcome of `op_id` that holds: keep it for retries, then settle it."""
        self._failures.succeeded()
        self._unrecorded.pop(op_id, None)
        with self._lock:
            self._recent[op_id] = final
            while len(self._recent) > RECENT_OUTCOMES:
                self._recent.popitem(last=False)
        _settle(then, final)
        if self._rewrite_due:  # the database is back: write what it refused, once
            self.write_unrecorded()

    def write_unrecorded(self) -> int:
        """Try again to write the outcomes the database refused; how many were pending.

        Each at most once at a time: one already being written again is left
        to that write (called after every successful write while any wait).
        """
        self._rewrite_due = False
        # A copy first (one C call): under the threading runtime the writer
        # thread changes the dict while the service's thread may be here.
        pending = [
            item for item in list(self._unrecorded.items()) if item[0] not in self._rewriting
        ]
        for op_id, outcome in pending:
            self._rewriting.add(op_id)
            self._write_outcome(op_id, outcome)
        return len(pending)

    # -- called by ManagerActor.run_operation, in the manager's mailbox ------------------
    def check_fence(self, op_id: str) -> None:
        """Raise HostFenced rather than start an operation keyed across the topic
        while this host's own heartbeat is too old (see Heartbeat.fenced).

        Another host takes such an operation over once this one looks down; had
        it started here, the work could run twice. Operations keyed to their
        manager (or not keyed) are never taken over: they always start.
        """
        fence = self.fence
        inflight = self._inflight.get(op_id)
        if fence is None or inflight is None:
            return
        if inflight.record.key_scope.startswith(TOPIC_SCOPE):
            error = fence()
            if error is not None:
                raise error

    def started(self, op_id: str) -> None:
        """The manager began running the operation: record 'running' (not waited for)."""
        inflight = self._inflight.get(op_id)
        owner = None
        if inflight is not None:
            inflight.started = True
            owner = inflight.record.target
        self.journal.set_state_into(
            _RunningWritten(self, op_id), op_id, "running", returning=False, owner=owner
        )

    def _running_written(self, op_id: str, error: BaseException | None) -> None:
        """In the journal's writer thread: how the write of 'running' went.

        Outcomes an outage kept are not written from here: their futures
        belong to the service's thread (a gevent hub), not the writer's. The
        next outcome written (see `_keep`) or registry round writes them.
        """
        if error is None:
            self._failures.succeeded()  # logs the end of a run of failures
        elif not isinstance(error, InvalidTransition | OperationClaimed):
            # (It ended first, or was taken over: nothing to say.)
            self._failures.failed(f"operation {op_id} running", error)

    def finish(
        self,
        op_id: str,
        target: str,
        method: str,
        answer: ActorFuture[tuple[bool, Any]],
        done: ActorFuture[Any],
    ) -> None:
        """Record the outcome of `done`; `answer` gets (ok, value or error) after the commit.

        Called as `done`'s callback (`answer` bound first), so that no future
        stands between the operation's result and its answer.

        A driver that crashed or stopped under the operation makes it
        'interrupted' (its effects are unknown), any other error 'failed'. If
        the outcome cannot be recorded (database down) the caller still gets
        it; the operation stays 'running' in the journal and recovery decides.
        """
        error = done.exception()
        if isinstance(error, ActorCrashed | ActorStopped):
            error = OperationInterrupted(op_id, target, method, str(error))
            outcome = _Outcome("interrupted", None, error, error.details["reason"], owner=target)
        elif error is None:
            value, text = _as_recorded(done.value())
            outcome = _Outcome("succeeded", value, None, None, owner=target, result_json=text)
        else:  # a retryable error (DriverNotReady, Busy...) must not pin the key
            retryable = bool(getattr(error, "retryable", False))
            outcome = _Outcome("failed", None, error, str(error), retryable, target)
        self._write_outcome(op_id, outcome, functools.partial(_reply, answer))

    def stranded(self, records: list[OperationRecord]) -> list[OperationRecord]:
        """Those of `records` (unfinished, accepted by this process) that nothing here runs.

        A commit whose acknowledgement was lost leaves such a row: its caller
        heard DatabaseUnavailable, so it was never handed to a manager, and
        retries with its key would get OperationInProgress for good.
        """
        return [r for r in records if r.id not in self._inflight and not self._known_outcome(r.id)]

    def _known_outcome(self, op_id: str) -> bool:
        """Whether this process has the outcome of `op_id` (written or still to write)."""
        if op_id in self._unrecorded:
            return True
        with self._lock:
            return op_id in self._recent

    # -- crash recovery ------------------------------------------------------------
    def recover(
        self,
        handle: ActorHandle,
        decide: Callable[[OperationRecord], str | None],
        records: list[OperationRecord],
    ) -> dict[str, int]:
        """Hand unfinished operations of one manager to it again, or mark them interrupted.

        `decide(record)` returns None to re-run it, or the reason it cannot be.
        Returns counts: {"rerun": n, "interrupted": m}.
        """
        counts = {"rerun": 0, "interrupted": 0}
        for record in records:
            if record.id in self._inflight or self._known_outcome(record.id):
                continue  # running here, or ended here with its outcome not yet written
            try:
                reason = decide(record)
            except Exception as exc:  # a faulty hook must not strand the other records
                log.exception("recover_operation failed for operation %s", record.id)
                reason = f"recover_operation raised {type(exc).__name__}: {exc}"
            if reason is None:
                counts["rerun"] += 1
                log.warning(
                    "re-running operation %s (%s.%s)", record.id, record.target, record.method
                )
                self._deliver(handle, record, None, self.runtime.future(), resumed=True)
            else:
                counts["interrupted"] += 1
                log.warning(
                    "operation %s (%s.%s) interrupted: %s",
                    record.id,
                    record.target,
                    record.method,
                    reason,
                )
                self.interrupt(record, reason)
        return counts


TOPIC_SCOPE = "topic:"
"""Key scopes of requests to any one service of a topic (protocol §6): the
operations another host may take over."""

MAX_REASON = 1_000
"""Characters of a reason the journal keeps: an error may quote a huge input."""


def _brief_reason(reason: str | None) -> str | None:
    return None if reason is None else cut_text(reason, MAX_REASON)


def _as_recorded(value: Any) -> tuple[Any, JsonText | None]:
    """`value` as the journal gives it back (through JSON), so that the first
    caller and every retry by key see the same result (tuples become lists,
    map keys strings), with the JSON text to store (encoded once, here). A
    value that is not JSON data is passed on as it is, with no text, and
    recorded as null (see `_write_outcome`)."""
    try:
        text = json_text(value)
    except (TypeError, ValueError):
        return value, None
    return json.loads(text), text


def _host(target: str) -> str:
    """The host of a manager's name (`host@backend`)."""
    return target.partition("@")[0]


def _copy(source: ActorFuture[Any], target: ActorFuture[Any]) -> None:
    error = source.exception()
    if error is not None:
        target.try_set_exception(error)
    else:
        target.try_set(source.value())
