"""The test harness our users get: recorders, waiters, doubles, faults."""

from __future__ import annotations

from typing import Any

import pytest

from actors import DeadlineExceeded, ManagerActor, rpc
from actors.testing import FakeDriver, WaitTimeout
from tests.support import backend


class Greeter(ManagerActor):
    """Uses a dependency (a 'client' object) that tests replace."""

    def init_host(self) -> None:
        self.client: Any = None
        self.greeted: list[str] = []

    @rpc
    def greet(self, name: str) -> str:
        prefix = self.client.prefix() if self.client is not None else "hello"
        self.greeted.append(name)
        return f"{prefix} {name}"

    @rpc
    def note(self, name: str) -> None:
        self.greeted.append(name)


GREETER = {"g": {"manager": Greeter, "driver": FakeDriver}}


def test_recorder_sees_every_message_in_order_across_restarts(actors_service, actors_runtime):
    h = actors_service(GREETER)
    rec = h.recorder("g")
    h.call("g", "greet", name="a")
    h.cast("g", "note", name="b")
    h.crash("g")
    h.wait_running("g")
    h.call("g", "greet", name="c")
    assert [(m.kind, m.method) for m in rec.messages] == [
        ("request", "greet"),
        ("cast", "note"),
        ("crash", None),
        ("request", "greet"),
    ]


def test_waiting_for_a_cast_to_be_handled(actors_service, actors_runtime):
    h = actors_service(GREETER)
    with h.waiting_for("g", "note") as found:
        h.cast("g", "note", name="x")
    assert found[0].kwargs == {"name": "x"}
    assert h.run_in("g", lambda m: m.greeted) == ["x"]


def test_a_wait_that_times_out_says_what_the_actor_was_doing(actors_service):
    h = actors_service(GREETER)
    h.recorder("g")  # records from now on
    h.call("g", "greet", name="a")
    with pytest.raises(WaitTimeout) as err, h.waiting_for("g", "note", timeout=0.2):
        pass
    text = str(err.value)
    assert "did not receive a message 'note'" in text
    assert "'mailbox': 0" in text and "('request', 'greet')" in text


def test_replace_a_dependency_with_a_double(actors_service, actors_runtime):
    class Double:
        def prefix(self) -> str:
            return "howdy"

    h = actors_service(GREETER)
    h.replace("g", client=Double())
    assert h.call("g", "greet", name="ann") == "howdy ann"


def test_drop_and_delay_faults(actors_service, actors_runtime):
    h = actors_service(GREETER)
    dropped = h.drop("g", "greet")
    with pytest.raises(DeadlineExceeded):
        h.call("g", "greet", name="lost", timeout=0.3)
    assert [m.args or m.kwargs for m in dropped.hits] == [{"name": "lost"}]
    assert h.call("g", "greet", name="kept") == "hello kept"
    delayed = h.delay("g", "greet", 0.05)
    assert h.call("g", "greet", name="late") == "hello late"
    assert len(delayed.hits) == 1


def test_fake_driver_stands_in_for_any_driver(actors_service, actors_runtime):
    class Caller(ManagerActor):
        @rpc
        def provision(self, size: int) -> Any:
            return self.driver.provision_volume(size, thin=True)

    h = actors_service(
        {"c": {"manager": Caller, "driver": "tests.support:BrokenSetupDriver"}},
        replace_drivers={"c": FakeDriver},
    )
    fake = h.fake("c")
    fake.returns("provision_volume", lambda size, thin: {"size": size, "thin": thin})
    assert h.call("c", "provision", size=3) == {"size": 3, "thin": True}
    assert [(c.op, c.args, c.kwargs) for c in fake.calls] == [
        ("provision_volume", (3,), {"thin": True})
    ]


def test_our_backends_through_the_harness(make_harness):
    h = make_harness({"b1": backend()})
    assert h.call("b1", "create", resource_id="r")["id"] == "r"
    assert h.fake("b1").ops() == ["create"]


def test_registry_outage_and_recovery(actors_service, actors_clock, caplog):
    import logging

    h = actors_service(GREETER, clock=actors_clock)
    registry = h.service.registry
    assert registry is not None

    def round_() -> None:
        h.run_in(h.service.name, lambda actor: actor.report())

    round_()
    caplog.set_level(logging.WARNING, logger="actors.service_actor")
    with h.registry_outage():
        round_()
        assert h.call("g", "greet", name="during") == "hello during"  # RPC goes on
        from actors.registry import DatabaseUnavailable

        with pytest.raises(DatabaseUnavailable):
            registry.services()
    round_()
    assert [r.backend for r in registry.services() if r.is_up] == ["g"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("registry unavailable" in m for m in messages) == 1
    assert sum("available again" in m for m in messages) == 1
