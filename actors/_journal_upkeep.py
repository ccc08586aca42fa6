"""`JournalUpkeep`: the operation journal's periodic care, every `journal_prune_interval`.

Finished operations older than `journal_retention` are deleted, and
operations this process accepted but never ran (a commit whose
acknowledgement was lost) are handed to recovery, so none waits for ever.
After every registry round, keyed operations of the service's topic that a
host now down accepted and left unfinished are adopted (`adopt_orphans`): an
acknowledged topic cast does not wait for its host to come back.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from actors._operations import TOPIC_SCOPE, Operations
from actors._recovery import RECOVERY_PAGE
from actors._service_view import ServiceView
from actors.registry import Registry
from actors.registry.journal import Journal, OperationRecord
from actors.runtime import ActorFuture

__all__ = ["STRANDED_AFTER", "JournalUpkeep"]

STRANDED_AFTER = 60.0
"""An operation accepted by this process and unfinished this long, with nothing
here running it, is stranded (`sweep_stranded`): far beyond the moment between
a commit and the hand-over to the manager."""


class JournalUpkeep:
    """Prunes the journal and sweeps stranded operations, off the actors.

    Runs in the ServiceActor's mailbox; the database work runs on the
    "system" lane and its outcome comes back through `pipe`. Failures are
    logged: the next interval tries again.
    """

    def __init__(
        self,
        service: ServiceView,
        operations: Operations,
        registry: Registry | None,
        started_at: datetime | None,
    ) -> None:
        self._service = service
        self.operations = operations
        self.registry = registry
        self.started_at = started_at
        self._adopting = False

    def prune(self) -> ActorFuture[Any]:
        """Delete finished operations older than `journal_retention`, off the actors.

        Stranded operations are looked for at the same time (`sweep_stranded`).
        """
        service = self._service
        if self.registry is not None and self.started_at is not None:
            self.sweep_stranded()
        retention = timedelta(seconds=service.config.journal_retention)
        work = service.runtime.offload(self.operations.journal.prune, retention, lane="system")

        def pruned(done: Any) -> int:
            error = done.exception()
            if error is not None:
                service.log.warning("pruning the operation journal failed: %s", error)
                return 0
            if done.value():
                service.log.info("pruned %d finished operation(s)", done.value())
            return int(done.value())

        return service.pipe(work, pruned)

    def sweep_stranded(self, older_than: float = STRANDED_AFTER) -> ActorFuture[Any]:
        """Hand to recovery what this process accepted but never ran (a lost commit ack).

        Unfinished operations of this service's managers, accepted since this
        process started and more than `older_than` seconds ago, that no manager
        here runs and whose outcome is not known here. The manager's
        `recover_operation` decides, as after a crash (re-run or interrupted).
        """
        assert self.registry is not None
        service, operations = self._service, self.operations
        plans = [plan.name for plan in service.plans]
        cutoff = self.registry.now() - timedelta(seconds=older_than)
        work = service.runtime.offload(
            functools.partial(
                operations.journal.unfinished,
                cutoff,
                created_after=self.started_at,
                targets=plans,
                limit=RECOVERY_PAGE,
            ),
            lane="system",
        )

        def found(done: Any) -> int:
            error = done.exception()
            if error is not None:
                service.log.warning("could not look for stranded operations: %s", error)
                return 0
            stranded = operations.stranded(done.value())
            by_target: dict[str, list[OperationRecord]] = {}
            for record in stranded:
                by_target.setdefault(record.target, []).append(record)
            for name, mine in sorted(by_target.items()):
                service.log.warning(
                    "%s: %d operation(s) accepted but never run (a commit whose"
                    " acknowledgement was lost?): handed to recovery",
                    name,
                    len(mine),
                )
                handed = service.child(name).ask("recover_operations", (mine,), accepted=True)
                service.pipe(handed, functools.partial(self._swept, name))
            return len(stranded)

        return service.pipe(work, found)

    def _swept(self, name: str, done: Any) -> None:
        """A manager took (or could not take) its stranded operations."""
        error = done.exception()
        if error is not None:  # restarting: the next sweep finds them again
            self._service.log.warning(
                "stranded operations of %s wait for the next sweep: %s", name, error
            )
        else:
            self._service.log.info("%s recovered stranded operations: %s", name, done.value())

    def _adopted(self, name: str, claimed: list[tuple[str, OperationRecord]], done: Any) -> None:
        """A manager took (or could not take) what was adopted for it.

        If it could not (restarting), the claims are given back, so that the
        next round (here or on another live host) adopts them again: a row
        claimed by this live host would otherwise wait for its restart.
        """
        error = done.exception()
        if error is None:
            self._service.log.info("%s recovered adopted operations: %s", name, done.value())
            return
        self._service.log.warning("adopted operations of %s given back: %s", name, error)
        journal = self.operations.journal
        for previous, record in claimed:
            self._service.runtime.offload(journal.claim_all, [record], previous, lane="system")

    def adopt_orphans(self) -> None:
        """Take over the topic's unfinished keyed operations whose host is down.

        Of the operations keyed across the service's topic (`topic:<topic>`),
        those whose owner (`host@backend`) is down in the registry and whose
        backend this service also runs are claimed (compare-and-set: of the
        live hosts, one wins) and handed to that manager's recovery, as after
        a crash. One pass at a time, a page per pass.
        """
        service = self._service
        config = service.config
        if self.registry is None or self._adopting or not config.topic:
            return
        ours = {plan.backend: plan.name for plan in service.plans}
        self._adopting = True
        work = service.runtime.offload(
            functools.partial(
                _claim_orphans,
                self.operations.journal,
                self.registry,
                config.topic,
                config.host,
                ours,
            ),
            lane="system",
        )

        def claimed(done: Any) -> None:
            self._adopting = False
            error = done.exception()
            if error is not None:
                service.log.warning("could not look for orphaned topic operations: %s", error)
                return
            by_target: dict[str, list[tuple[str, OperationRecord]]] = {}
            for previous, record in done.value():
                service.log.warning(
                    "operation %s (%s) taken over from %s, which is down",
                    record.id,
                    record.method,
                    previous,
                )
                by_target.setdefault(record.target, []).append((previous, record))
            for name, claimed_here in sorted(by_target.items()):
                mine = [record for _, record in claimed_here]
                handed = service.child(name).ask("recover_operations", (mine,), accepted=True)
                service.pipe(handed, functools.partial(self._adopted, name, claimed_here))

        service.pipe(work, claimed)


def _claim_orphans(
    journal: Journal, registry: Registry, topic: str, host: str, ours: dict[str, str]
) -> list[tuple[str, OperationRecord]]:
    """(previous owner, claimed record) for the topic's unfinished operations of down hosts.

    Only the rows of services registered down are read: nothing while every
    host of the topic is up (the common case, one small query per round).
    """
    down = [
        f"{s.host}@{s.backend}"
        for s in registry.services(topic=topic)
        if not s.is_alive and s.host != host and s.backend in ours
    ]
    if not down:
        return []
    claimed: list[tuple[str, OperationRecord]] = []
    for record in journal.unfinished(
        targets=down, scope=f"{TOPIC_SCOPE}{topic}", limit=RECOVERY_PAGE
    ):
        mine = ours[record.target.partition("@")[2]]
        claimed += [(record.target, r) for r in journal.claim_all([record], mine)]
    return claimed
