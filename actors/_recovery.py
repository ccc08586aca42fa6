"""`Recovery`: what an earlier process left unfinished is handed to each manager again.

After a crash, operations of this service's managers that were 'accepted' or
'running' are read from the journal, a page at a time, claimed (a
compare-and-set: another host of the topic may have taken one over
meanwhile, see Operations._take_over) and each manager gets its own through
`recover_operations` (re-run if idempotent, else marked interrupted).
Unfinished work of this host's backends that no manager here runs is logged
once, so an operator can find it.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from actors._operations import Operations
from actors._service_view import ServiceView
from actors.registry.journal import Journal, OperationRecord

__all__ = ["RECOVERY_PAGE", "Recovery"]

RECOVERY_PAGE = 500
"""Unfinished operations read per query during crash recovery."""


class Recovery:
    """Paged crash recovery of the journal, run in the ServiceActor's mailbox.

    A pass starts after a registry round succeeded (the database answers and
    the schema is there) and repeats, one per successful round, until every
    manager took its operations. It reads only this service's managers'
    operations created before `started_at`, `RECOVERY_PAGE` at a time; the
    next page is read once every manager took its part of this one.
    """

    def __init__(
        self, service: ServiceView, operations: Operations, started_at: datetime | None
    ) -> None:
        self._service = service
        self.operations = operations
        self.started_at = started_at
        # Managers whose operations from before this process have not been recovered.
        self.unrecovered: set[str] = {p.name for p in service.plans}
        self._recovering = 0  # reads and hand-offs of recovery in progress
        self._targets: list[str] = []  # the managers of the current pass
        self._failed: set[str] = set()  # ... whose operations wait for the next
        self._next: tuple[datetime, str] | None = None  # cursor of the next page
        self._orphans_checked = False  # unfinished work of backends not run here, logged once

    def expect(self, name: str) -> None:
        """A backend added by a reload: its earlier operations are to be recovered."""
        self.unrecovered.add(name)

    def forget(self, name: str) -> None:
        """A backend removed by a reload: nothing of it is recovered here any more."""
        self.unrecovered.discard(name)

    def registry_reached(self) -> None:
        """A registry round succeeded: write what the outage kept, then recover if needed."""
        # Outcomes kept through an outage go in first, so that recovery
        # does not read them as unfinished.
        self.operations.write_unrecorded()
        if self.unrecovered and self._recovering == 0:
            self.start()

    def start(self, after: tuple[datetime, str] | None = None) -> None:
        """Read a page of unfinished operations (the first of a pass unless `after`)."""
        service = self._service
        if after is None:
            self._failed = set()
            self._targets = sorted(self.unrecovered)
        self._recovering += 1
        self._next = None
        work = service.runtime.offload(
            functools.partial(
                _claim_page, self.operations.journal, self.started_at, self._targets, after
            ),
            lane="system",
        )
        service.pipe(work, self._recovered)

    def _recovered(self, done: Any) -> None:
        """A page was read: hand each manager its part."""
        service = self._service
        self._recovering -= 1
        error = done.exception()
        if error is not None:
            service.log.error("could not read unfinished operations (will retry): %s", error)
            self._failed.update(self._targets)
            self._step()
            return
        records: list[OperationRecord]
        records, self._next = done.value()
        by_target: dict[str, list[OperationRecord]] = {}
        for record in records:
            by_target.setdefault(record.target, []).append(record)
        for name, mine in sorted(by_target.items()):
            if name not in self.unrecovered:
                # Removed from the configuration meanwhile: if it comes back,
                # these were never handed over, so it is not done.
                self._failed.add(name)
                continue
            service.log.warning("%s: %d unfinished operation(s) to recover", name, len(mine))
            self._recovering += 1
            handed = service.child(name).ask("recover_operations", (mine,), accepted=True)
            service.pipe(handed, functools.partial(self._handed, name))
        self._step()

    def _handed(self, name: str, done: Any) -> None:
        """A manager took (or failed to take) its operations to recover."""
        service = self._service
        self._recovering -= 1
        error = done.exception()
        if error is None:
            service.log.info("%s recovered operations: %s", name, done.value())
        else:  # restarting, crashed: the next successful round tries again
            self._failed.add(name)
            service.log.warning("recovery of %s waits (will retry): %s", name, error)
        self._step()

    def _step(self) -> None:
        """Once a page is handed over: read the next, or end the pass.

        At the end of a pass, the managers that took everything are done; the
        others (a read or a hand-off failed, or they were away) wait for the
        next successful registry round, which starts a new pass.
        """
        if self._recovering:
            return
        after, self._next = self._next, None
        if after is not None:
            self.start(after)
            return
        for name in self._targets:
            if name not in self._failed:
                self.unrecovered.discard(name)
        if not self._orphans_checked and not self._failed:
            self._orphans_checked = True
            journal = self.operations.journal
            work = self._service.runtime.offload(
                journal.unfinished_counts, self.started_at, lane="system"
            )
            self._service.pipe(work, self._orphans_found)

    def _orphans_found(self, done: Any) -> None:
        """Warn about unfinished operations of this host's backends that no manager runs."""
        service = self._service
        error = done.exception()
        if error is not None:
            service.log.warning("could not look for orphaned operations: %s", error)
            return
        prefix = f"{service.config.host}@"
        served = {plan.name for plan in service.plans}
        for target, count in sorted(done.value().items()):
            if target.startswith(prefix) and target not in served:
                service.log.warning(
                    "%d unfinished operation(s) of %s, a backend this service does not run: "
                    "they wait for a service that runs it (actorsctl ops --target %s)",
                    count,
                    target,
                    target,
                )


def _claim_page(
    journal: Journal,
    created_before: datetime | None,
    targets: list[str],
    after: tuple[datetime, str] | None,
) -> tuple[list[OperationRecord], tuple[datetime, str] | None]:
    """A page of unfinished operations, those still ours claimed; and the next page's cursor."""
    page = journal.unfinished(created_before, targets=targets, after=after, limit=RECOVERY_PAGE)
    cursor = (page[-1].created_at, page[-1].id) if len(page) >= RECOVERY_PAGE else None
    return journal.claim_all(page), cursor
