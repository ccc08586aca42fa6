"""A host whose own heartbeat is too old starts no operation another host may take over.

Other hosts of the topic take a host's topic-keyed operations over once its
heartbeat is `service_down_time` old. A host cut from the registry but alive
would otherwise start them too (queued behind other work, say), and the work
would run twice. From half that time on it refuses them with HostFenced
(retryable, nothing ran); operations keyed to their own manager, which no
other host takes over, go on.
"""

from __future__ import annotations

from typing import Any

import pytest

from actors import HostFenced
from actors.testing import ServiceHarness, wait_until
from tests.support import backend

JOURNALED = backend("tests.support:JournaledManager")
DOWN_TIME = 30.0  # so the fence is at 15 s without a registry round that succeeded
TOPIC_SCOPE = "topic:actors"  # the default topic's, as TopicClient sends it


@pytest.fixture
def h(make_harness: Any, actors_clock: Any) -> ServiceHarness:
    harness = make_harness(
        {"b1": JOURNALED}, clock=actors_clock, report_interval=10, service_down_time=DOWN_TIME
    )
    _report(harness)  # a round that reached the registry: the heartbeat is fresh
    return harness  # type: ignore[no-any-return]


@pytest.fixture
def client(h: ServiceHarness) -> Any:
    """The harness's own client (green on gevent: the service runs in this thread)."""
    assert h.client is not None
    return h.client


def _report(h: ServiceHarness) -> None:
    h.run_in(h.service.name, lambda actor: actor.report())


def _fenced(h: ServiceHarness) -> Any:
    return h.run_in(h.service.name, lambda actor: actor._heartbeat.fenced())


def _rows(h: ServiceHarness, key: str) -> list[Any]:
    assert h.service.operations is not None
    return [r for r in h.service.operations.journal.list(limit=100) if r.idempotency_key == key]


def _queued_behind_a_hold(h: ServiceHarness, client: Any, key: str, scope: str | None) -> Any:
    """A keyed `provision` accepted (committed) while the manager's mailbox is held."""
    held = h.service.ask("b1", "hold", timeout=60)
    h.fake("b1").wait_until(lambda f: f.in_flight == 1, h.service.system.runtime)
    # Its deadline is beyond the time the tests make pass (on the virtual clock).
    future = client.call_async(
        "b1", "provision", {"resource_id": key}, key=key, scope=scope, timeout=60
    )
    wait_until(lambda: _rows(h, key), timeout=10, message="the accept committed")
    (row,) = _rows(h, key)
    return held, future, row.id


def test_the_fence_closes_at_half_the_down_time_without_a_round(h, actors_clock):
    assert _fenced(h) is None
    with h.registry_outage():
        actors_clock.advance(DOWN_TIME / 2 - 1)  # rounds fail meanwhile
        h.settle()
        assert _fenced(h) is None
        actors_clock.advance(2)
        h.settle()
        fenced = _fenced(h)
        assert isinstance(fenced, HostFenced) and fenced.retryable
        assert fenced.details["host"] == "h" and fenced.details["limit"] == DOWN_TIME / 2
        assert fenced.details["stale"] > DOWN_TIME / 2
    _report(h)  # the registry is back: a round reaches it
    assert _fenced(h) is None


def test_a_host_that_never_reached_the_registry_is_fenced_from_its_start(h, actors_clock):
    """No round has succeeded since the start (the database was down): the host's
    rows may read as down to the others, so the fence counts from its start."""
    h.run_in(h.service.name, lambda actor: setattr(actor._heartbeat, "last_reached", None))
    with h.registry_outage():
        actors_clock.advance(DOWN_TIME / 2 + 1)
        h.settle()
        assert isinstance(_fenced(h), HostFenced)
    _report(h)
    assert _fenced(h) is None


def test_a_stale_host_does_not_start_a_topic_operation_and_a_retry_runs_it_later(
    h, client, actors_clock
):
    held, future, op_id = _queued_behind_a_hold(h, client, "k-topic", TOPIC_SCOPE)
    with h.registry_outage():
        actors_clock.advance(DOWN_TIME / 2 + 1)  # (b1 is held: only time passes there)
        h.fake("b1").release()
        assert held.result() == "released"
        with pytest.raises(HostFenced) as refused:
            future.result()
        assert refused.value.retryable
    assert "create" not in h.fake("b1").ops()  # nothing ran
    _report(h)  # back: the refusal is written, and gives the key up (retryable)
    row = h.wait_operation(op_id)
    assert row.state == "failed" and row.error["type"] == "HostFenced"
    assert row.idempotency_key is None  # given up: a retry with it runs anew
    retried = client.call(
        "b1", "provision", {"resource_id": "k-topic"}, key="k-topic", scope=TOPIC_SCOPE
    )
    assert retried == {"id": "k-topic", "size": 1}
    assert h.fake("b1").ops().count("create") == 1


def test_an_operation_keyed_to_its_manager_still_starts_on_a_stale_host(h, client, actors_clock):
    """No other host takes it over: starting it cannot make it run twice."""
    held, future, _ = _queued_behind_a_hold(h, client, "k-own", None)
    with h.registry_outage():
        actors_clock.advance(DOWN_TIME / 2 + 1)  # (b1 is held: only time passes there)
        h.fake("b1").release()
        assert held.result() == "released"
        assert future.result() == {"id": "k-own", "size": 1}
    assert h.fake("b1").ops().count("create") == 1
