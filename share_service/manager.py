"""`ShareManager`: the reference share service, in the style of manila's share manager.

Built on the framework's public API only, as a user's service would be.

Shares live on a driver, any implementation of the `ShareDriver` contract
(`share_service.drivers.base`), which the manager is written against
(LocalShareDriver: directories under a root; FakeShareDriver: in memory, for
tests). Their state (creating, available,
extending, shrinking, reverting, deleting, error) is kept in the registry
database, in the share service's own tables (`share_service.tables`, migrated
at start through `MIGRATIONS`), so a restarted service knows every share; at
start `StartRepairs` (share_service/_repairs.py) checks each, a window at a
time, finishing what a crash cut short and marking what cannot be repaired
error with the reason. Creates, deletes and resizes a crash cut short are
resumed by crash recovery (`recover_operation`) and end done.

Every change is a journaled operation. A share moves to a transitional state
atomically before the driver works on it (a second change meanwhile gets the
retryable ShareNotAvailable), and back to 'available' or to 'error' after.
Database work runs off the actors; the manager never blocks on it or on the
driver. Reads answering clients (`get_share`, `list_shares`,
`get_capabilities`) go through the bounded client lane and may be refused
with `Overloaded`; the database work of changes (accepted operations) goes
through the changes lane and is never refused (the journal refuses a new
change instead while that lane is backed up).

Backend options (`manager_options`): `quota_gb` (total size of the backend's
shares; none by default).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from actors import ManagerActor, rpc
from actors.errors import (
    ActorCrashed,
    ActorStopped,
    ActorUnavailable,
    Busy,
    DriverNotReady,
    InvalidArguments,
)
from actors.registry import DatabaseUnavailable
from actors.registry.journal import OperationRecord
from actors.runtime import ActorFuture, OffloadLane
from share_service._repairs import PAGE as REPAIR_PAGE
from share_service._repairs import StartRepairs
from share_service.checks import ACCESS_LEVELS, normalize_rules
from share_service.drivers.base import ShareDriver
from share_service.errors import (
    ShareNotFound,
    ShareNotReady,
    ShareStateNotRecorded,
    ShareTooSmall,
    SnapshotNotFound,
)
from share_service.ids import ID_RULE, is_safe_id
from share_service.store import ShareStore
from share_service.tables import MIGRATIONS

__all__ = ["ShareManager", "ShareManagerOptions"]

MAX_NAME_LENGTH = 255  # the column's length (PostgreSQL enforces it, SQLite would not)
MAX_ACCESS_RULES = 256  # per share: every listing carries them
MAX_SNAPSHOTS = 1000  # per share: get_share carries them all, under the message limit
LIST_LIMIT = 1000  # shares per list_shares page at most ...
PAGE_BYTES = 256 * 1024  # ... and about this much of them: under the message limit
_RESUME_PATIENCE = 60.0  # seconds a resumed operation waits for its driver to be ready
_RESUME_RETRY = 1.0  # ... asking it again this often
_RESUMABLE = frozenset({"create_share", "delete_share", "extend_share", "shrink_share"})
_DB_ATTEMPTS = 8  # retries of a bookkeeping write through an outage (backoff up to 5 s)
_INIT_DB_PATIENCE = 30.0  # seconds init_host waits for the database to answer


class ShareManagerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    quota_gb: int | None = Field(None, ge=1, description="total GB of this backend's shares")


class ShareManager(ManagerActor):
    """Shares, snapshots and access rules of one backend."""

    RPC_API_VERSION: ClassVar[str] = "1.1"  # 1.1: list_shares pages (limit, marker)
    Options = ShareManagerOptions  # validated with the configuration
    DRIVER_KIND = ShareDriver  # its backend's driver must serve ShareDriver's operations
    MIGRATIONS = MIGRATIONS  # the shares' tables, migrated when a service hosting it starts

    # -- lifecycle ----------------------------------------------------------------------
    def init_host(self) -> None:
        if self.registry is None:
            raise RuntimeError("ShareManager keeps its shares in the registry: enable it")
        self.options = ShareManagerOptions.model_validate(self.config.manager_options)
        self.store = ShareStore(self.registry)
        # Every share is checked (and what a crash cut short finished) before
        # changes to it are taken: a window at a time, however many there are.
        self.repairs = StartRepairs(self, self._read_shares_at_start())
        self.repairs.pump()

    def _read_shares_at_start(self) -> list[dict[str, Any]]:
        """The first page of this backend's shares, waiting through a short database outage.

        init_host runs before the manager takes requests, so it may wait here;
        raising at once would make a restart during a few seconds' outage
        burn through the restart intensity and stop the whole service. After
        about 30 s it raises (the supervisor restarts the manager, later).
        """
        deadline = time.monotonic() + _INIT_DB_PATIENCE
        delay = 0.2
        while True:
            read = self.runtime.offload(
                lambda: self.store.shares(self.name, limit=REPAIR_PAGE), lane="system"
            )
            try:
                return read.result(timeout=self.config.driver_timeout)  # type: ignore[no-any-return]
            except DatabaseUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise
                self.log.warning("cannot read the shares yet (again in %.1fs): %s", delay, exc)
                self.runtime.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _check_repaired(self, share_id: str) -> None:
        """Refuse a change to a share whose start-up repair has not ended (retryable).

        Not for an operation resumed by crash recovery: it must not be turned
        away, and runs once the share's repair has ended (`resume_after`).
        """
        if not self.resuming and self.repairs.blocks(share_id):
            raise ShareNotReady(share_id, self.name)

    def resume_after(self, method: str, args: dict[str, Any]) -> ActorFuture[Any] | None:
        """A resumed operation runs after its share's start-up repair, never beside it.

        Not for ever: a repair waits for a driver that is not ready; after
        `_RESUME_PATIENCE` the operation goes on, and its own driver step
        then fails as a resumed one does when the driver stays unready.
        """
        share_id = args.get("share_id")
        repaired = self.repairs.first(share_id) if isinstance(share_id, str) else None
        if repaired is not None:
            self.call_later(_RESUME_PATIENCE, lambda: repaired.try_set(None))
        return repaired

    def recover_operation(self, record: OperationRecord) -> str | None:
        """Resume creates, deletes and resizes cut short by a crash (they end done).

        The driver's create, delete and resize are idempotent and the share's
        row says how far the operation got, so running the method again
        (`self.resuming` is then true) finishes it. Snapshots and reverts are
        not resumed: see docs/operations.md.
        """
        if record.method in _RESUMABLE:
            return None
        return super().recover_operation(record)

    # -- shares -------------------------------------------------------------------------
    @rpc(journal=True)
    def create_share(self, share_id: str, size_gb: int, name: str | None = None) -> Any:
        """Create a share of `size_gb` GB; returns it (state 'available')."""
        _check_id(self.name, "create_share", "share_id", share_id)
        _check_size(self.name, "create_share", "size_gb", size_gb)
        if name is not None and len(name) > MAX_NAME_LENGTH:
            raise InvalidArguments(
                self.name, "create_share", f"name must be at most {MAX_NAME_LENGTH} characters"
            )
        self._check_repaired(share_id)
        resuming = self.resuming
        recorded = self._db(
            self.store.create,
            share_id,
            self.name,
            size_gb,
            name,
            self.options.quota_gb,
            resume=self.resuming,
        )

        def create(share: dict[str, Any]) -> Any:
            if share["state"] not in ("creating", "error"):
                return share  # resumed after a crash, and finished already (start-up repair)
            return self._finish(
                share_id,
                self._driver(resuming, "create_share", share_id, size_gb),
                lambda made: {"state": "available", "export_path": made["export_path"]},
                undo=lambda: self._db_retry(self.store.delete, share_id),
            )

        return self.then(recorded, create)

    @rpc(idempotent=True)
    def delete_share(self, share_id: str) -> Any:
        """Delete a share, its snapshots and its exports."""
        self._check_repaired(share_id)
        resuming = self.resuming
        held = self._transition(share_id, ("available", "error", "deleting"), "deleting")
        if resuming:  # after a crash: a share already gone was deleted by this operation
            held = self.pipe(held, _gone_is_none)

        def delete(share: dict[str, Any] | None) -> Any:
            if share is None:
                return {"share_id": share_id, "deleted": True}
            removed = self._finish(
                share_id,
                self._driver(resuming, "delete_share", share_id),
                None,
                undo=self._restore(share),
            )
            gone = self.then(removed, lambda _: self._db_retry(self.store.delete, share_id))
            return self.then(gone, lambda _: {"share_id": share_id, "deleted": True})

        return self.then(held, delete)

    @rpc(journal=True)
    def extend_share(self, share_id: str, new_size_gb: int) -> Any:
        """Grow a share to `new_size_gb` (within the backend's quota)."""
        _check_size(self.name, "extend_share", "new_size_gb", new_size_gb)
        self._check_repaired(share_id)
        resuming = self.resuming
        held = self._transition(
            share_id,
            ("available",),
            "extending",
            resize_to=new_size_gb,
            quota_gb=self.options.quota_gb,
            size_gb=new_size_gb,
        )

        def extend(share: dict[str, Any]) -> Any:
            return self._finish(
                share_id,
                self._driver(resuming, "extend_share", share_id, new_size_gb),
                lambda _: {"state": "available"},
                undo=self._restore(share),
            )

        return self.then(held, extend)

    @rpc(journal=True)
    def shrink_share(self, share_id: str, new_size_gb: int) -> Any:
        """Shrink a share; refused (ShareTooSmall) below the space its data uses."""
        _check_size(self.name, "shrink_share", "new_size_gb", new_size_gb)
        self._check_repaired(share_id)
        resuming = self.resuming
        held = self._transition(share_id, ("available",), "shrinking", resize_to=new_size_gb)

        def shrink(share: dict[str, Any]) -> Any:
            return self._finish(
                share_id,
                self._driver(resuming, "shrink_share", share_id, new_size_gb),
                lambda _: {"state": "available", "size_gb": new_size_gb},
                undo=self._restore(share),
                harmless=(ShareTooSmall,),  # refused before anything changed on the host
            )

        return self.then(held, shrink)

    @rpc
    def get_share(self, share_id: str) -> Any:
        """One share with its snapshots and access rules."""
        return self._read(self.store.get, share_id)

    @rpc
    def list_shares(self, limit: int = LIST_LIMIT, marker: str | None = None) -> Any:
        """This backend's shares by id, `limit` at a time (at most 1000, and
        fewer if they would pass about 256 KiB).

        `next` is the marker of the following page (pass it as `marker`), or
        None on the last one: a reply stays well under the message size limit
        however many shares there are.
        """
        if not 1 <= limit <= LIST_LIMIT:
            raise InvalidArguments(self.name, "list_shares", f"limit must be 1..{LIST_LIMIT}")
        if marker is not None:
            _check_id(self.name, "list_shares", "marker", marker)
        listed = self._read(self.store.shares, self.name, after=marker, limit=limit + 1)

        def page(shares: list[dict[str, Any]]) -> dict[str, Any]:
            kept: list[dict[str, Any]] = []
            size = 0
            for share in shares[:limit]:
                size += len(json.dumps(share, default=str))
                if size > PAGE_BYTES and kept:
                    break
                kept.append(share)
            more = len(shares) > len(kept)
            return {"shares": kept, "count": len(kept), "next": kept[-1]["id"] if more else None}

        return self.then(listed, page)

    # -- snapshots ---------------------------------------------------------------------
    @rpc(journal=True)
    def create_snapshot(self, share_id: str, snapshot_id: str) -> Any:
        """Snapshot an available share (a real copy on the local driver)."""
        _check_id(self.name, "create_snapshot", "snapshot_id", snapshot_id)
        self._check_repaired(share_id)
        held = self._transition(share_id, ("available",), "snapshotting")

        def snapshot(share: dict[str, Any]) -> Any:
            recorded = self._db(self.store.add_snapshot, share_id, snapshot_id, MAX_SNAPSHOTS)

            def copy(_: Any) -> Any:
                copied = self._finish(
                    share_id,
                    self.driver.create_snapshot(share_id, snapshot_id),
                    lambda __: {"state": "available"},
                    error_state="available",  # the share itself is untouched by a failed copy
                    undo=self._restore(share),
                )

                def record(done: ActorFuture[Any]) -> Any:
                    error = done.exception()
                    fields: dict[str, Any] = (
                        {"state": "available", "size_bytes": done.value().get("size_bytes")}
                        if error is None
                        else {"state": "error", "reason": str(error)}
                    )
                    written = self._db_retry(
                        self.store.update_snapshot, share_id, snapshot_id, **fields
                    )
                    return written if error is None else self.pipe(written, _reraise(error))

                return self.pipe(copied, record)

            def not_recorded(done: ActorFuture[Any]) -> Any:
                error = done.exception()
                if error is None:
                    return copy(done.value())
                back = self._restore(share)()  # no row, no copy: the share is as it was
                return self.pipe(back, _reraise(error))

            return self.pipe(recorded, not_recorded)

        return self.then(held, snapshot)

    @rpc(idempotent=True)
    def delete_snapshot(self, share_id: str, snapshot_id: str) -> Any:
        """Delete a snapshot (the share is held meanwhile: no revert or snapshot races it)."""
        self._check_repaired(share_id)
        resuming = self.resuming
        known = self._db(self.store.get_snapshot, share_id, snapshot_id)
        held = self.then(
            known,
            lambda _: self._transition(
                share_id, ("available", "error"), "updating", resume=resuming
            ),
        )

        def delete(share: dict[str, Any]) -> Any:
            removed = self._finish(
                share_id,
                self.driver.delete_snapshot(share_id, snapshot_id),
                None,
                error_state=share["previous_state"],  # the share itself is untouched
                undo=self._restore(share),
            )
            gone = self.then(
                removed, lambda _: self._db_retry(self.store.delete_snapshot, share_id, snapshot_id)
            )
            back = self.then(gone, lambda _: self._restore(share)())
            return self.then(back, lambda _: {"share_id": share_id, "snapshot_id": snapshot_id})

        return self.then(held, delete)

    @rpc(journal=True)
    def revert_to_snapshot(self, share_id: str, snapshot_id: str) -> Any:
        """Put the share's content back as it was in the snapshot."""
        self._check_repaired(share_id)
        known = self._db(self.store.get_snapshot, share_id, snapshot_id)

        def take(snapshot: dict[str, Any]) -> Any:
            if snapshot["state"] != "available":
                raise InvalidArguments(
                    self.name, "revert_to_snapshot", f"snapshot is {snapshot['state']}"
                )
            return self._transition(share_id, ("available",), "reverting")

        def revert(share: dict[str, Any]) -> Any:
            return self._finish(
                share_id,
                self.driver.revert_to_snapshot(share_id, snapshot_id),
                lambda __: {"state": "available"},
                undo=self._restore(share),
                harmless=(SnapshotNotFound,),
            )

        return self.then(self.then(known, take), revert)

    # -- access rules -------------------------------------------------------------------
    @rpc(idempotent=True)
    def allow_access(self, share_id: str, rule: dict[str, Any]) -> Any:
        """Allow `rule` = {"access_to": "10.0.0.0/24", "access_level": "rw"|"ro"}."""
        rule = _check_rule(self.name, rule)

        def change(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
            kept = [r for r in rules if r["access_to"] != rule["access_to"]]
            if len(kept) >= MAX_ACCESS_RULES:
                raise InvalidArguments(
                    self.name, "allow_access", f"a share has at most {MAX_ACCESS_RULES} rules"
                )
            return [*kept, rule]

        return self._change_access(share_id, change)

    @rpc(idempotent=True)
    def deny_access(self, share_id: str, access_to: str) -> Any:
        """Remove the rule for `access_to`."""
        return self._change_access(
            share_id, lambda rules: [r for r in rules if r["access_to"] != access_to]
        )

    def _change_access(self, share_id: str, change: Any) -> Any:
        self._check_repaired(share_id)
        held = self._transition(share_id, ("available",), "updating")

        def apply(share: dict[str, Any]) -> Any:
            try:
                rules = change(share["access_rules"])
            except InvalidArguments as refused:  # nothing changed: back as it was
                error = refused
                return self.then(self._restore(share)(), lambda _: _raise(error))
            return self._finish(
                share_id,
                self.driver.update_access(share_id, rules),
                lambda _: {"state": "available", "access_rules": rules},
                error_state="available",  # the exports file is unchanged on failure
                undo=self._restore(share),
            )

        return self.then(held, apply)

    # -- capabilities -------------------------------------------------------------------
    @rpc
    def get_capabilities(self) -> Any:
        """The driver's capacity and capabilities, with this backend's quota and allocation."""
        usage = self._read(self.store.usage, self.name)
        if usage.done() and usage.exception() is not None:
            return usage  # refused (Overloaded): do not queue driver work for nothing
        stats = self.driver.get_stats()

        def combine(counted: tuple[int, int]) -> Any:
            shares, allocated = counted
            return self.then(
                stats,
                lambda caps: {
                    **caps,
                    "backend": self.name,
                    "quota_gb": self.options.quota_gb,
                    "allocated_gb": allocated,
                    "shares": shares,
                },
            )

        return self.then(usage, combine)

    # -- helpers ------------------------------------------------------------------------
    def _db(self, fn: Any, *args: Any, **kwargs: Any) -> ActorFuture[Any]:
        """Database work of a change under way, off the actors (kwargs allowed).

        The changes lane: a change already admitted must not be refused
        half-way, nor wait behind a flood of reads. Admission is bounded
        instead: the journal checks `check_admission()` before it accepts a
        change (every change of this service is journaled).
        """
        return self._offload("changes", fn, args, kwargs)

    def _read(self, fn: Any, *args: Any, **kwargs: Any) -> ActorFuture[Any]:
        """A database read answering a client (get_share, list_shares, ...).

        The client lane: when it is full the request fails at once with
        `Overloaded` (retryable) rather than queueing without bound.
        """
        return self._offload("client", fn, args, kwargs)

    def _offload(
        self, lane: OffloadLane, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> ActorFuture[Any]:
        if kwargs:
            return self.runtime.offload(lambda: fn(*args, **kwargs), lane=lane)
        return self.runtime.offload(fn, *args, lane=lane)

    def _driver(self, resuming: bool, op: str, *args: Any) -> ActorFuture[Any]:
        """Driver operation `op`; resumed after a crash, it waits for a driver not ready yet.

        A resumed operation must end done, not fail because the driver is still
        setting up after the start (about a minute at most, then it fails).
        """
        if not resuming:
            return self.driver.call(op, *args)
        result = self.runtime.future()
        clock = self.clock  # the clock call_later counts on (a test's virtual one too)
        deadline = clock.monotonic() + _RESUME_PATIENCE

        def attempt() -> None:
            def done(finished: ActorFuture[Any]) -> None:
                error = finished.exception()
                if isinstance(error, DriverNotReady) and clock.monotonic() < deadline:
                    self.call_later(_RESUME_RETRY, attempt)
                elif error is not None:
                    result.try_set_exception(error)
                else:
                    result.try_set(finished.value())

            self.pipe(self.driver.deliver(op, *args), done)

        attempt()
        return result

    def _transition(
        self,
        share_id: str,
        expected: tuple[str, ...],
        state: str,
        *,
        resume: bool | None = None,
        **kw: Any,
    ) -> Any:
        """Move the share to `state`; resumed after a crash, it may be there already."""
        resume = self.resuming if resume is None else resume
        return self._db(self.store.transition, share_id, expected, state, resume=resume, **kw)

    def _finish(
        self,
        share_id: str,
        work: ActorFuture[Any],
        on_success: Callable[[Any], dict[str, Any]] | None,
        error_state: str = "error",
        *,
        undo: Callable[[], ActorFuture[Any]] | None = None,
        harmless: tuple[type[BaseException], ...] = (),
    ) -> ActorFuture[Any]:
        """After the driver: record the outcome, then answer with the share or the error.

        Success writes `on_success(result)` (retried through a database outage)
        and returns the share. An error the driver raised before it changed
        anything (not ready, restarting, its mailbox full, or one of
        `harmless`) runs `undo`: the share goes back to how it was. Any other
        error puts the share in `error_state` with the reason: among them a
        driver that crashed or was stopped with the step queued or running,
        as nobody knows then how far the step got. Either way the caller gets
        the driver's own error, even if recording it failed.
        """

        def done(finished: ActorFuture[Any]) -> Any:
            error = finished.exception()
            if error is None:
                if on_success is None:
                    return finished.value()
                fields = on_success(finished.value())
                recorded = self._db_retry(self.store.update, share_id, reason=None, **fields)
                return self.pipe(recorded, _done_or_not_recorded(share_id))
            # Busy exactly: the driver's mailbox was full, so it never started.
            nothing_done = type(error) is Busy or isinstance(error, (ActorUnavailable, *harmless))
            if isinstance(error, ActorCrashed | ActorStopped):
                nothing_done = False  # it may have been running: its effects are unknown
            if undo is not None and nothing_done:
                return self.pipe(undo(), _reraise(error))
            reason = str(error) if error_state == "error" else None
            marked = self._db_retry(self.store.update, share_id, state=error_state, reason=reason)
            return self.pipe(marked, _reraise(error))

        return self.pipe(work, done)

    def _restore(self, share: dict[str, Any]) -> Callable[[], ActorFuture[Any]]:
        """Undo a transition: the state and size the share had before it."""
        return lambda: self._db_retry(
            self.store.update,
            share["id"],
            state=share["previous_state"],
            size_gb=share["previous_size_gb"],
        )

    def _db_retry(self, fn: Any, *args: Any, **kwargs: Any) -> ActorFuture[Any]:
        """`_db`, retried with backoff through a database outage (about 30 s at most).

        A write that records what the driver already did must not be lost to
        a short outage: that would leave the share in a transitional state.
        """
        result = self.runtime.future()

        def attempt(n: int) -> None:
            def done(finished: ActorFuture[Any]) -> None:
                error = finished.exception()
                if error is None:
                    result.try_set(finished.value())
                elif isinstance(error, DatabaseUnavailable) and n < _DB_ATTEMPTS:
                    self.call_later(min(0.2 * 2**n, 5.0), lambda: attempt(n + 1))
                else:
                    result.try_set_exception(error)

            self.pipe(self._db(fn, *args, **kwargs), done)

        attempt(0)
        return result


def _done_or_not_recorded(share_id: str) -> Callable[[ActorFuture[Any]], Any]:
    """The recorded share, or, if the database stayed away, a non-retryable error.

    DatabaseUnavailable is retryable: a retry with the operation's key would
    run the driver's work a second time, which already happened.
    """

    def check(recorded: ActorFuture[Any]) -> Any:
        error = recorded.exception()
        if isinstance(error, DatabaseUnavailable):
            raise ShareStateNotRecorded(share_id, error.details.get("reason", str(error)))
        if error is not None:
            raise error
        return recorded.value()

    return check


def _gone_is_none(held: ActorFuture[Any]) -> Any:
    """The held share, or None if it no longer exists (a resumed delete finished it)."""
    error = held.exception()
    if isinstance(error, ShareNotFound):
        return None
    if error is not None:
        raise error
    return held.value()


def _reraise(error: BaseException) -> Callable[[ActorFuture[Any]], Any]:
    """A continuation that ignores how the bookkeeping went and raises `error`."""

    def again(_: ActorFuture[Any]) -> Any:
        raise error

    return again


def _check_id(target: str, method: str, what: str, value: str) -> None:
    if not is_safe_id(value):
        shown = repr(value) if len(value) <= 80 else f"{value[:80]!r}... ({len(value)} characters)"
        raise InvalidArguments(target, method, f"{what} {shown} must be {ID_RULE}")


def _check_size(target: str, method: str, what: str, value: int) -> None:
    if value <= 0:
        raise InvalidArguments(target, method, f"{what} must be a positive number of GB: {value}")


def _check_rule(target: str, rule: dict[str, Any]) -> dict[str, Any]:
    """The rule as stored (level "rw" unless given), refused before the share changes:
    InvalidArguments for its shape or level, InvalidAccessRule (the drivers' own
    check, `normalize_rules`) for a client an exports file cannot take."""
    access_to, level = rule.get("access_to"), rule.get("access_level", "rw")
    if not isinstance(access_to, str) or not access_to or len(access_to) > MAX_NAME_LENGTH:
        raise InvalidArguments(
            target,
            "allow_access",
            f"rule needs 'access_to': a string of 1-{MAX_NAME_LENGTH} characters",
        )
    if level not in ACCESS_LEVELS:
        raise InvalidArguments(
            target, "allow_access", f"access_level must be one of {ACCESS_LEVELS}"
        )
    extra = set(rule) - {"access_to", "access_level"}
    if extra:
        raise InvalidArguments(target, "allow_access", f"unknown rule keys: {sorted(extra)}")
    checked = {"access_to": access_to, "access_level": level}
    normalize_rules([checked])
    return checked


def _raise(error: BaseException) -> Any:
    raise error
