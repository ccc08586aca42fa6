"""`StartRepairs`: the checks a backend runs on every share it holds when it starts.

A backend may hold tens of thousands of shares, more than any mailbox. So the
shares are read a page at a time, in id order, and at most `WINDOW` repairs
are queued to the driver at once; each one ends (driver work and the state it
records) before the next is queued. Memory stays bounded by a page and the
window, and the manager's mailbox never holds more than a window of repair
replies: the framework's own start-up steps and clients' requests always find
room.

Meanwhile the backend serves: reads at once, and a change to a share that has
not been repaired yet is refused with the retryable `ShareNotReady`
(`blocks()`). An operation resumed by crash recovery is not refused: it runs
once its share's repair has ended (`first()` moves that repair ahead of the
others), never beside it: a repair works from the share as it read it, and
would otherwise undo what the operation does (a resize, an export).

What a repair does depends on the state the share was left in:

- 'creating': the driver's (idempotent) create runs again, then 'available';
- 'extending': the driver's extend to the recorded size runs again, then 'available';
- 'deleting': the driver's delete runs again, then the row is removed;
- any other: `ensure_share` (exports put back); a share cut short in another
  transitional state is 'available' again ("recovered"), one whose data is
  gone is 'error' with the reason. That ERROR is logged when the share
  enters the error state, not again at every start.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from actors.errors import DriverNotReady
from actors.runtime import ActorFuture
from share_service.errors import ShareNotFound

if TYPE_CHECKING:
    from share_service.manager import ShareManager

__all__ = ["PAGE", "WINDOW", "StartRepairs"]

PAGE = 500
"""Shares read per query."""

WINDOW = 32
"""Repairs queued to the driver at once."""

_RETRY = 1.0  # seconds before a repair asks a driver that is not ready again
_READ_RETRY = 2.0  # seconds before reading a page again after a database error


class StartRepairs:
    """The repairs of one backend's shares at start, run in the manager's mailbox."""

    def __init__(self, manager: ShareManager, first_page: list[dict[str, Any]]) -> None:
        self.manager = manager
        self.pending: deque[dict[str, Any]] = deque()
        self.pending_ids: set[str] = set()
        self.in_flight: set[str] = set()
        self.last_read: str | None = None
        self.more = True  # pages not read yet
        self.reading = False
        self.repaired = 0
        self.done = False
        self.early: set[str] = set()  # repaired ahead of their page, for a resumed operation
        self._waiters: dict[str, list[ActorFuture[Any]]] = {}
        self._started = time.monotonic()
        self._took(first_page)

    # -- what requests see ---------------------------------------------------------------
    def blocks(self, share_id: str) -> bool:
        """Whether a change to `share_id` must wait: its repair has not ended yet."""
        if self.done:
            return False
        if share_id in self.in_flight or share_id in self.pending_ids:
            return True
        return self._unread(share_id) and share_id not in self.early

    def first(self, share_id: str) -> ActorFuture[Any] | None:
        """What an operation resumed on `share_id` must wait for: the end of its repair,
        started now if it was still to come; None once it has ended."""
        if self.done:
            return None
        if share_id in self.pending_ids:
            share = next(s for s in self.pending if s["id"] == share_id)
            self.pending.remove(share)
            self.pending_ids.discard(share_id)
            self.in_flight.add(share_id)
            self._repair(share)
        elif share_id not in self.in_flight:
            if not self._unread(share_id) or share_id in self.early:
                return None  # repaired already
            self.early.add(share_id)  # its page will pass it over
            self.in_flight.add(share_id)
            manager = self.manager
            read = manager.runtime.offload(manager.store.get, share_id, lane="system")
            manager.pipe(read, lambda read: self._read_early(share_id, read))
        waiter = self.manager.runtime.future()
        self._waiters.setdefault(share_id, []).append(waiter)
        return waiter

    def _unread(self, share_id: str) -> bool:
        """Whether `share_id` comes in a page not read yet."""
        return self.more and (self.last_read is None or share_id > self.last_read)

    def _read_early(self, share_id: str, read: ActorFuture[Any]) -> None:
        error = read.exception()
        if error is None:
            self._repair(read.value())
            return
        if not isinstance(error, ShareNotFound):
            self.early.discard(share_id)  # not read: its page repairs it, later
        self._ended(share_id)(read)

    # -- the pump -------------------------------------------------------------------------
    def _took(self, page: list[dict[str, Any]]) -> None:
        for share in page:
            if share["id"] in self.early:
                continue
            self.pending.append(share)
            self.pending_ids.add(share["id"])
        if page:
            self.last_read = page[-1]["id"]
        self.more = len(page) >= PAGE

    def pump(self) -> None:
        """Queue repairs up to the window; read the next page when this one is queued."""
        manager = self.manager
        while self.pending and len(self.in_flight) < WINDOW:
            share = self.pending.popleft()
            self.pending_ids.discard(share["id"])
            self.in_flight.add(share["id"])
            self._repair(share)
        if not self.pending and self.more and not self.reading:
            self.reading = True
            read = manager.runtime.offload(
                lambda: manager.store.shares(manager.name, after=self.last_read, limit=PAGE),
                lane="system",
            )
            manager.pipe(read, self._page_read)
        if not self.pending and not self.more and not self.in_flight and not self.done:
            self.done = True
            manager.log.info(
                "start-up repairs done: %d share(s) in %.1fs",
                self.repaired,
                time.monotonic() - self._started,
            )

    def _page_read(self, read: ActorFuture[Any]) -> None:
        self.reading = False
        error = read.exception()
        if error is not None:
            self.manager.log.warning(
                "cannot read the next shares to repair (again in %.0fs): %s", _READ_RETRY, error
            )
            self.manager.call_later(_READ_RETRY, self.pump)
            return
        self._took(read.value())
        self.pump()

    def _ended(self, share_id: str) -> Callable[[ActorFuture[Any]], None]:
        def ended(_: ActorFuture[Any]) -> None:
            self.in_flight.discard(share_id)
            self.repaired += 1
            for waiter in self._waiters.pop(share_id, ()):
                waiter.try_set(None)
            self.pump()

        return ended

    # -- one share ------------------------------------------------------------------------
    def _repair(self, share: dict[str, Any]) -> None:
        manager, driver, share_id = self.manager, self.manager.driver, share["id"]
        state = share["state"]
        if state == "creating":
            work = driver.deliver("create_share", share_id, share["size_gb"])
        elif state == "extending":
            work = driver.deliver("extend_share", share_id, share["size_gb"])
        elif state == "deleting":
            work = driver.deliver("delete_share", share_id)
        else:
            work = driver.deliver("ensure_share", share_id, share["size_gb"], share["access_rules"])

        def done(finished: ActorFuture[Any]) -> Any:
            error = finished.exception()
            if isinstance(error, DriverNotReady):  # not an answer about the share: ask again
                manager.call_later(_RETRY, lambda: self._repair(share))
                return None
            recorded = self._record(share, error, None if error else finished.value())
            if recorded is None:
                self._ended(share_id)(finished)
                return None
            manager.pipe(recorded, self._ended(share_id))
            return None

        manager.pipe(work, done)

    def _record(
        self, share: dict[str, Any], error: BaseException | None, value: Any
    ) -> ActorFuture[Any] | None:
        """Write what the repair found; None when there is nothing to write."""
        manager, share_id, state = self.manager, share["id"], share["state"]
        store = manager.store
        if error is not None:
            reason = str(error)
            if state == "error" and share.get("reason") == reason:
                return None  # known already: logged when it went into error
            manager.log.error("share %s cannot be repaired: %s", share_id, reason)
            return manager._db(store.update, share_id, state="error", reason=reason)
        if state == "deleting":
            manager.log.warning("share %s: its deletion, cut short, is finished", share_id)
            return manager._db(store.delete, share_id)
        fields: dict[str, Any] = {}
        if state == "creating":
            manager.log.warning("share %s: its creation, cut short, is finished", share_id)
            fields.update(state="available", reason=None, export_path=value["export_path"])
        elif state == "extending":
            manager.log.warning("share %s: its extension, cut short, is finished", share_id)
            fields.update(state="available", reason=None)
        else:
            repaired = value.get("repaired") or []
            if repaired:
                manager.log.warning("share %s repaired: %s", share_id, ", ".join(repaired))
            if state == "snapshotting":
                manager._db(store.fail_pending_snapshots, share_id, "interrupted by a restart")
            if state in _TRANSITIONAL:
                # Cut short by a crash: the data is there, the size is what the row says.
                fields.update(state="available", reason="recovered")
            if not share.get("export_path") and value.get("export_path"):
                fields["export_path"] = value["export_path"]
        if not fields:
            return None
        return manager._db(store.update, share_id, **fields)


_TRANSITIONAL = ("shrinking", "reverting", "snapshotting", "updating")
