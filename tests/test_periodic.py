"""Periodic tasks, on a virtual clock: no real sleeping to wait for schedules."""

from __future__ import annotations

import logging

import pytest

from actors import FatalError, ManagerActor
from actors.periodic import collect_periodic_tasks, periodic_task
from actors.testing import FakeDriver


class Ticking(ManagerActor):
    def init_host(self) -> None:
        self.ticks: list[float] = []
        self.boom_runs = 0
        self.slow_runs = 0

    @periodic_task(spacing=10, run_immediately=True)
    def tick(self) -> None:
        self.ticks.append(self.clock.monotonic())

    @periodic_task(spacing=5, run_immediately=True)
    def boom(self) -> None:
        self.boom_runs += 1
        raise RuntimeError("task failed")

    @periodic_task(spacing=10, enabled=False)
    def never(self) -> None:
        raise AssertionError("disabled tasks never run")


class Slow(ManagerActor):
    def init_host(self) -> None:
        self.starts: list[float] = []

    @periodic_task(spacing=10, run_immediately=True)
    def crawl(self) -> None:
        self.starts.append(self.clock.monotonic())
        if len(self.starts) == 1:
            self.clock.advance(25)  # this run takes 25s of (virtual) time


class Fuzzy(ManagerActor):
    def init_host(self) -> None:
        self.first: float | None = None

    @periodic_task(spacing=100)
    def later(self) -> None:
        if self.first is None:
            self.first = self.clock.monotonic()


def _state(h, attr):
    return h.run_in("m", lambda manager: getattr(manager, attr))


def test_tasks_run_on_schedule_and_failures_keep_it(
    actors_service, actors_clock, actors_runtime, caplog
):
    caplog.set_level(logging.ERROR, logger="actors.periodic")
    h = actors_service({"m": {"manager": Ticking, "driver": FakeDriver}}, clock=actors_clock)
    start = actors_clock.monotonic()
    h.advance(0)  # what is due now (run_immediately) runs
    for _ in range(6):  # in steps no longer than the shortest spacing: each run
        h.advance(5)  # schedules the next one from the actor's mailbox
    ticks = _state(h, "ticks")
    assert [t - start for t in ticks] == [0, 10, 20, 30]
    assert _state(h, "boom_runs") == 7  # at 0, 5, ..., 30: every failure rescheduled
    assert sum("periodic task boom failed" in r.getMessage() for r in caplog.records) == 7


def test_an_overrun_is_logged_and_never_runs_twice_at_once(actors_service, actors_clock, caplog):
    caplog.set_level(logging.WARNING, logger="actors.periodic")
    h = actors_service({"m": {"manager": Slow, "driver": FakeDriver}}, clock=actors_clock)
    h.advance(0)
    start = _state(h, "starts")[0]
    h.advance(0)  # the run that was due while the first one crawled
    h.advance(5)
    starts = [t - start for t in _state(h, "starts")]
    # the first run took 25s: the next one starts right after it, once, not 2-3 queued
    assert starts == [0, 25]
    assert any("took 25.0s, more than its spacing" in r.getMessage() for r in caplog.records)


def test_the_first_run_is_fuzzed_within_one_spacing(actors_service, actors_clock):
    h = actors_service({"m": {"manager": Fuzzy, "driver": FakeDriver}}, clock=actors_clock)
    start = actors_clock.monotonic()
    h.advance(0)
    assert _state(h, "first") is None
    h.advance(100)
    first = _state(h, "first")
    assert first is not None and 0 <= first - start <= 100


def test_disabled_and_overridden_tasks_are_not_scheduled():
    class Quiet(Ticking):
        def tick(self) -> None:  # overridden without the decorator
            pass

    assert set(collect_periodic_tasks(Ticking)) == {"tick", "boom"}
    assert set(collect_periodic_tasks(Quiet)) == {"boom"}
    with pytest.raises(ValueError):
        periodic_task(spacing=0)


class Doomed(ManagerActor):
    @periodic_task(spacing=10, run_immediately=True)
    def check_disk(self) -> None:
        raise FatalError("disk is gone for good")


def test_a_fatal_error_in_a_periodic_task_crashes_its_actor(actors_service, actors_clock):
    # As in any handler: the supervisor decides, instead of a task that "keeps its schedule".
    h = actors_service(
        {"m": {"manager": Doomed, "driver": FakeDriver}},
        clock=actors_clock,
        supervision={"backoff": {"initial": 1.0, "jitter": 0}},
    )
    cell = h.service.system.directory.entry(h.service.route("m")).cell
    actors_clock.advance(0)  # the first run falls due
    assert cell.exited.wait(10) and "disk is gone" in cell.exit_reason


def test_waiting_for_a_periodic_task_by_its_name(actors_service, actors_clock):
    h = actors_service({"m": {"manager": Ticking, "driver": FakeDriver}}, clock=actors_clock)
    h.advance(0)  # the immediate runs
    with h.waiting_for("m", "tick", kind="timer"):
        actors_clock.advance(10)
    assert len(h.run_in("m", lambda m: m.ticks)) == 2


def test_periodic_tasks_start_once_however_often_they_are_started(actors_service, actors_clock):
    # A late delivery of start_periodic_tasks to a manager restarted meanwhile.
    h = actors_service({"m": {"manager": Ticking, "driver": FakeDriver}}, clock=actors_clock)
    h.run_in("m", lambda m: m.start_periodic_tasks())
    h.advance(0)
    h.advance(10)
    assert len(h.run_in("m", lambda m: m.ticks)) == 2  # at 0 and 10, not twice each
