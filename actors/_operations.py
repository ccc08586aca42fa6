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

If the manager crashes or stops with the operation queued or running, the
operation is recorded 'interrupted' with the reason and the caller gets
OperationInterrupted at once. After a crash of the whole process,
`recover()` finds what was left 'accepted' or 'running': idempotent methods
run again, the rest are marked interrupted.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors.errors import (
    ActorCrashed,
    ActorStopped,
    InvalidArguments,
    OperationInProgress,
    OperationInterrupted,
)
from actors.registry.journal import Journal, OperationRecord
from actors.runtime import ActorFuture, Runtime
from transport.errors import error_from_wire
from transport.protocol import error_body

if TYPE_CHECKING:
    from actors.manager_actor import ManagerActor
    from actors.system import ActorHandle

__all__ = ["Operations", "error_data", "outcome_error"]

log = logging.getLogger("actors.operations")

RUN_METHOD = "run_operation"
"""The ManagerActor method that runs a delivered operation (in-process only)."""


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


class Operations:
    """The service's journaled request path (one per Service, shared by its managers)."""

    def __init__(self, journal: Journal, runtime: Runtime) -> None:
        self.journal = journal
        self.runtime = runtime
        self._inflight: dict[str, _InFlight] = {}

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def is_journaled(self, manager_class: type[ManagerActor], method: str) -> bool:
        info = manager_class.rpc_methods.get(method)
        return info is not None and info.journal

    # -- the request path -----------------------------------------------------------
    def submit(
        self,
        handle: ActorHandle,
        manager_class: type[ManagerActor],
        method: str,
        args: dict[str, Any],
        *,
        version: str | None,
        key: str | None,
    ) -> tuple[ActorFuture[Any], ActorFuture[Any]]:
        """Journal and run one request; returns (accepted, outcome) futures.

        `accepted` completes with {"operation": id} once the row is committed
        and delivered (what a cast's ack waits for); `outcome` with the
        method's result once that is committed (what a call's reply waits for).
        """
        accepted, outcome = self.runtime.future(), self.runtime.future()
        op_id = str(uuid.uuid4())
        try:
            manager_class.check_request(handle.name, method, version)
            handle.check_room()
            pending = self.journal.accept(handle.name, method, args, key, op_id=op_id)
        except TypeError as exc:  # arguments the journal cannot store
            error: BaseException = InvalidArguments(handle.name, method, str(exc))
            accepted.set_exception(error)
            outcome.set_exception(error)
            return accepted, outcome
        except Exception as exc:
            accepted.set_exception(exc)
            outcome.set_exception(exc)
            return accepted, outcome
        committed = self.runtime.from_concurrent(pending)
        committed.add_done_callback(
            lambda done: self._accepted(done, op_id, handle, method, version, accepted, outcome)
        )
        return accepted, outcome

    def _accepted(
        self,
        done: ActorFuture[OperationRecord],
        op_id: str,
        handle: ActorHandle,
        method: str,
        version: str | None,
        accepted: ActorFuture[Any],
        outcome: ActorFuture[Any],
    ) -> None:
        error = done.exception()
        if error is not None:  # not committed: nothing was acknowledged, nothing runs
            accepted.try_set_exception(error)
            outcome.try_set_exception(error)
            return
        record: OperationRecord = done.value()
        if record.id != op_id:
            # The key was already used: answer with that operation, never run twice.
            self._answer_existing(record, method, accepted, outcome)
            return
        self._deliver(handle, record, version, outcome)
        accepted.try_set({"operation": record.id})

    def _answer_existing(
        self,
        record: OperationRecord,
        method: str,
        accepted: ActorFuture[Any],
        outcome: ActorFuture[Any],
    ) -> None:
        if record.method != method:
            error = InvalidArguments(
                record.target,
                method,
                f"idempotency key already used by operation {record.id} ({record.method})",
            )
            accepted.try_set_exception(error)
            outcome.try_set_exception(error)
            return
        accepted.try_set({"operation": record.id})
        inflight = self._inflight.get(record.id)
        if inflight is not None:
            inflight.outcome.add_done_callback(lambda done: _copy(done, outcome))
        elif record.state == "succeeded":
            outcome.try_set(record.result)
        elif record.finished:
            outcome.try_set_exception(outcome_error(record))
        else:  # unfinished, and not running here: recovery owns it
            outcome.try_set_exception(OperationInProgress(record.id, record.target, record.method))

    def _deliver(
        self,
        handle: ActorHandle,
        record: OperationRecord,
        version: str | None,
        outcome: ActorFuture[Any],
    ) -> None:
        """Hand a committed operation to its manager; record an interruption if it never ends."""
        self._inflight[record.id] = _InFlight(record, outcome)
        reply = handle.deliver(RUN_METHOD, (record.id, record.method, record.args, version))
        reply.add_done_callback(lambda done: self._ran(record, done))

    def _ran(self, record: OperationRecord, done: ActorFuture[Any]) -> None:
        """The manager's reply: (ok, value) once the outcome is committed, or why it never ran.

        run_operation never raises: an exception here comes from the manager's
        cell (it crashed or stopped with the operation queued or running).
        """
        inflight = self._inflight.get(record.id)
        if inflight is None:
            return
        error = done.exception()
        if error is not None:
            when = "while it ran" if inflight.started else "before it started"
            self.interrupt(record, f"{record.target} ended {when}: {error}")
            return
        del self._inflight[record.id]
        ok, value = done.value()
        if ok:
            inflight.outcome.try_set(value)
        else:
            inflight.outcome.try_set_exception(value)

    def interrupt(self, record: OperationRecord, reason: str) -> ActorFuture[Any]:
        """Record `record` interrupted; its waiters get OperationInterrupted after the commit."""
        inflight = self._inflight.pop(record.id, None)
        error = OperationInterrupted(record.id, record.target, record.method, reason)
        written = self.runtime.from_concurrent(
            self.journal.set_state(record.id, "interrupted", error=error_data(error), reason=reason)
        )

        def after(done: ActorFuture[Any]) -> None:
            if done.exception() is not None:
                log.error(
                    "could not record operation %s interrupted: %s", record.id, done.exception()
                )
            if inflight is not None:
                inflight.outcome.try_set_exception(error)

        written.add_done_callback(after)
        return written

    # -- called by ManagerActor.run_operation, in the manager's mailbox ------------------
    def started(self, op_id: str) -> None:
        """The manager began running the operation: record 'running' (not waited for)."""
        inflight = self._inflight.get(op_id)
        if inflight is not None:
            inflight.started = True
        pending = self.journal.set_state(op_id, "running")
        pending.add_done_callback(_log_failure(op_id, "running"))

    def finish(
        self, op_id: str, target: str, method: str, done: ActorFuture[Any]
    ) -> ActorFuture[tuple[bool, Any]]:
        """Record the outcome of `done`; returns (ok, value or error) after the commit.

        A driver that crashed or stopped under the operation makes it
        'interrupted' (its effects are unknown), any other error 'failed'. If
        the outcome cannot be recorded (database down) the caller still gets
        it; the operation stays 'running' in the journal and recovery decides.
        """
        error = done.exception()
        if isinstance(error, (ActorCrashed, ActorStopped)):
            error = OperationInterrupted(op_id, target, method, str(error))
            pending = self.journal.set_state(
                op_id, "interrupted", error=error_data(error), reason=error.details["reason"]
            )
        elif error is None:
            result = done.value()
            try:
                json.dumps(result)
                pending = self.journal.set_state(op_id, "succeeded", result=result)
            except (TypeError, ValueError):
                pending = self.journal.set_state(
                    op_id, "succeeded", reason="result is not JSON data: not recorded"
                )
        else:
            pending = self.journal.set_state(
                op_id, "failed", error=error_data(error), reason=str(error)
            )
        answer = self.runtime.future()

        def after(written: ActorFuture[Any]) -> None:
            if written.exception() is not None:
                log.error("outcome of operation %s not recorded: %s", op_id, written.exception())
            answer.try_set((True, done.value()) if error is None else (False, error))

        self.runtime.from_concurrent(pending).add_done_callback(after)
        return answer

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
            if record.id in self._inflight:
                continue
            reason = decide(record)
            if reason is None:
                counts["rerun"] += 1
                log.warning(
                    "re-running operation %s (%s.%s)", record.id, record.target, record.method
                )
                self._deliver(handle, record, None, self.runtime.future())
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


def _copy(source: ActorFuture[Any], target: ActorFuture[Any]) -> None:
    error = source.exception()
    if error is not None:
        target.try_set_exception(error)
    else:
        target.try_set(source.value())


def _log_failure(op_id: str, state: str) -> Callable[[Any], None]:
    def check(done: Any) -> None:
        error = done.exception()
        if error is not None:
            log.error("could not record operation %s %s: %s", op_id, state, error)

    return check
