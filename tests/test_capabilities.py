"""Capability reports reach the services of a topic; receivers keep the newest."""

from __future__ import annotations

import pytest

from actors.capabilities import CapabilityStore
from actors.testing import wait_until
from tests.support import backend

SCHEDULER = backend("tests.support:SchedulerManager")


def test_the_store_keeps_the_newest_report_per_service():
    store = CapabilityStore()
    assert store.update({"service": "a@b", "timestamp": 2.0, "capabilities": {"free": 1}})
    assert not store.update({"service": "a@b", "timestamp": 1.0, "capabilities": {"free": 9}})
    assert not store.update({"service": "a@b", "timestamp": 2.0, "capabilities": {"free": 9}})
    assert store.update({"service": "c@d", "timestamp": 1.0, "capabilities": {}})
    assert store.get("a@b") == {"service": "a@b", "timestamp": 2.0, "capabilities": {"free": 1}}
    assert store.dropped == 2
    with pytest.raises(ValueError, match="timestamp"):
        store.update({"service": "a@b"})


def test_the_store_keeps_at_most_max_services_evicting_the_stalest():
    store = CapabilityStore(max_services=2)
    assert store.update({"service": "a", "timestamp": 1.0})
    assert store.update({"service": "b", "timestamp": 3.0})
    assert store.update({"service": "c", "timestamp": 2.0})  # "a" (1.0) goes
    assert sorted(store.reports) == ["b", "c"] and store.evicted == 1
    assert not store.update({"service": "d", "timestamp": 0.5})  # older than all kept
    assert store.update({"service": "c", "timestamp": 4.0})  # a known service: no eviction
    assert sorted(store.reports) == ["b", "c"] and (store.evicted, store.dropped) == (1, 1)
    with pytest.raises(ValueError, match="max_services"):
        CapabilityStore(max_services=0)


def _reports(h) -> dict:
    return h.call("s", "capabilities")  # type: ignore[no-any-return]


def test_reports_are_published_at_start_and_each_round_and_older_ones_dropped(
    actors_service, tmp_path
):
    shared = tmp_path / "shared"  # one registry database for both services
    common = {"state_dir": shared, "transport": False, "report_interval": 1}
    scheduler = actors_service(
        {"s": SCHEDULER}, host="hb", topic="scheduler", service_down_time=5, **common
    )
    scheduler.service.serve("tcp://127.0.0.1:0")
    scheduler.run_in(scheduler.service.name, lambda actor: actor.report())  # up, with endpoint
    agent = actors_service(
        {"b1": backend()},
        host="ha",
        capability_topic="scheduler",
        capability_interval=3600,
        service_down_time=5,
        **common,
    )
    wait_until(  # the report sent at start; the cast travels over tcp
        lambda: "ha@b1" in _reports(scheduler)["reports"],
        interval=0.02,
        message="the capability report sent at start",
    )
    first = _reports(scheduler)["reports"]["ha@b1"]
    assert first["capabilities"]["driver"] == "fake" and first["backend"] == "b1"
    # Another round: one report, one receiver, newer timestamp.
    sent = agent.run_in(agent.service.name, lambda actor: actor.publish_capabilities())
    assert sent == {"receivers": 1, "failed": 0, "reports": 1}
    wait_until(
        lambda: _reports(scheduler)["reports"]["ha@b1"]["timestamp"] != first["timestamp"],
        interval=0.02,
        message="the second capability report",
    )
    # Rounds never overlap: asked twice while one is under way, both get the
    # one round that starts when it ends.
    first_round, second, third = agent.run_in(
        agent.service.name,
        lambda actor: (
            actor.publish_capabilities(),
            actor.publish_capabilities(),
            actor.publish_capabilities(),
        ),
    )
    assert second is third and second is not first_round
    assert first_round.result(timeout=10) == second.result(timeout=10) == sent
    # A late, older report is dropped.
    stale = {**first, "capabilities": {"driver": "stale"}}
    assert scheduler.call("s", "update_capabilities", report=stale) is False
    assert _reports(scheduler)["reports"]["ha@b1"]["capabilities"]["driver"] == "fake"


def test_a_round_that_fails_half_way_still_ends_and_the_next_one_runs(
    actors_service, tmp_path, monkeypatch
):
    from actors._capability_rounds import CapabilityRounds

    real = CapabilityRounds._report
    failures = [RuntimeError("backend reloaded away")]

    def report_once_broken(rounds, name, capabilities):
        if failures:
            raise failures.pop()
        return real(rounds, name, capabilities)

    monkeypatch.setattr(CapabilityRounds, "_report", report_once_broken)
    agent = actors_service(
        {"b1": backend()},
        host="ha",
        state_dir=tmp_path / "state",
        transport=False,
        capability_topic="scheduler",  # nobody of it is up: nothing is received
        capability_interval=3600,
    )
    first = agent.run_in(agent.service.name, lambda actor: actor.publish_capabilities())
    second = agent.run_in(agent.service.name, lambda actor: actor.publish_capabilities())
    assert [first["reports"], second["reports"]] in ([0, 1], [1, 1])  # the start round may
    assert not failures  # have taken the broken report; either way both rounds ended
