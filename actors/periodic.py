"""Periodic tasks: manager methods that run on a schedule, in the manager's mailbox.

    class ShareManager(ManagerActor):
        @periodic_task(spacing=60, run_immediately=True)
        def _update_stats(self) -> None: ...

Each task runs in its manager's mailbox, so it never runs twice at once and
needs no locks. The first run is delayed by a random fraction of `spacing`
(`fuzz`) so that a fleet started together does not fire together. A task that
raises is logged and keeps its schedule. A run that takes longer than its
spacing is logged, and the next run starts right after it (never two queued).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["PeriodicTask", "collect_periodic_tasks", "periodic_task"]

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__actors_periodic__"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicTask:
    """How one periodic method is scheduled."""

    name: str
    spacing: float
    run_immediately: bool = False
    enabled: bool = True
    fuzz: float = 1.0
    """The first run waits a random fraction (0..fuzz) of `spacing`."""


def periodic_task(
    *, spacing: float, run_immediately: bool = False, enabled: bool = True, fuzz: float = 1.0
) -> Callable[[F], F]:
    """Run the decorated manager method every `spacing` seconds."""
    if spacing <= 0:
        raise ValueError(f"spacing must be positive, got {spacing!r}")
    if not 0 <= fuzz <= 1:
        raise ValueError(f"fuzz must be within [0, 1], got {fuzz!r}")

    def mark(fn: F) -> F:
        setattr(fn, _MARK, PeriodicTask(fn.__name__, spacing, run_immediately, enabled, fuzz))
        return fn

    return mark


def collect_periodic_tasks(cls: type) -> dict[str, PeriodicTask]:
    """Every enabled @periodic_task along `cls`'s MRO (overrides without it drop it)."""
    tasks: dict[str, PeriodicTask] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            task = getattr(value, _MARK, None)
            if isinstance(task, PeriodicTask):
                tasks[name] = task
            elif name in tasks:
                del tasks[name]
    return {name: task for name, task in tasks.items() if task.enabled}


class Scheduler:
    """Drives one actor's periodic tasks from its own timers (runs in its mailbox)."""

    def __init__(self, actor: Any, tasks: dict[str, PeriodicTask], rng: random.Random) -> None:
        self.actor = actor
        self.tasks = tasks
        self.rng = rng
        self.runs: dict[str, int] = dict.fromkeys(tasks, 0)
        self.failures: dict[str, int] = dict.fromkeys(tasks, 0)
        self.overruns: dict[str, int] = dict.fromkeys(tasks, 0)
        self._started = False

    def start(self) -> None:
        """Schedule every task; once only (a second call, e.g. a late delivery, does nothing)."""
        if self._started:
            return
        self._started = True
        for name, task in self.tasks.items():
            first = 0.0 if task.run_immediately else self.rng.uniform(0, task.fuzz) * task.spacing
            self.actor.call_later(first, self._runner(name))

    def _runner(self, name: str) -> Callable[[], None]:
        """The timer callback of task `name`, named after it (the harness's
        `waiting_for(target, name)` and status dumps see that name)."""

        def run() -> None:
            self._run(name)

        run.__name__ = run.__qualname__ = name
        return run

    def _run(self, name: str) -> None:
        task = self.tasks[name]
        clock = self.actor.clock
        started = clock.monotonic()
        try:
            getattr(self.actor, name)()
        except self.actor.fatal_exceptions:
            raise  # the actor crashes, as for any handler: its supervisor decides
        except Exception:
            self.failures[name] += 1
            log.exception(
                "%s: periodic task %s failed; it keeps its schedule", self.actor.name, name
            )
        finally:
            self.runs[name] += 1
        took = clock.monotonic() - started
        if took > task.spacing:
            self.overruns[name] += 1
            log.warning(
                "%s: periodic task %s took %.1fs, more than its spacing %.1fs",
                self.actor.name,
                name,
                took,
                task.spacing,
            )
        self.actor.call_later(max(0.0, task.spacing - took), self._runner(name))
