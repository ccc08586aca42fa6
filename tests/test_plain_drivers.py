"""Any object as a driver or a manager (issue #18), as manila's load_object allows.

A driver may be a module of functions, an object, a factory or a plain class:
the framework runs it in a DriverActor, one operation at a time, with the same
setup, readiness and restarts as any driver; only its listed operations are
reachable. A manager may be a plain object exposing only its listed methods.
What does not fit fails with the configuration, saying what and why.
"""

from __future__ import annotations

from typing import Any

import pytest

from actors import (
    ConfigError,
    DriverNotReady,
    InvalidArguments,
    LoadError,
    ManagerActor,
    MethodNotAllowed,
    ServiceConfig,
    rpc,
)
from actors._backends import plan_backends
from actors.testing.conformance import wait_driver_ready
from tests import plain_drivers
from tests.plain_drivers import Journal


class Relay(ManagerActor):
    """An ordinary manager: it does not care what kind of object its driver is."""

    @rpc
    def work(self, n: int) -> Any:
        return self.driver.work(n)

    @rpc
    def label(self, n: int) -> Any:
        return self.driver.label(n)

    @rpc
    def stats(self) -> Any:
        return self.driver.get_stats()

    @rpc
    def reach(self, op: str) -> Any:
        return self.driver.call(op)


@pytest.fixture(autouse=True)
def _fresh_drivers() -> Any:
    plain_drivers.reset()
    Journal.made.clear()
    plain_drivers.journal.reset()
    plain_drivers.journal.setups = 0
    yield


FORMS = {
    "module": {"driver": "tests.plain_drivers", "driver_operations": ["work"]},
    "object": {"driver": "tests.plain_drivers:journal"},
    "factory": {"driver": "tests.plain_drivers:make_journal", "options": {"prefix": "f"}},
    "plain class": {"driver": "tests.plain_drivers:Journal", "options": {"prefix": "c"}},
}


def _state(form: str) -> dict[str, Any]:
    """Where the driver of `form` keeps its record of calls (this incarnation's)."""
    if form == "module":
        return plain_drivers.STATE
    if form == "object":
        return plain_drivers.journal.state
    return Journal.made[-1].state


def _setups(form: str) -> int:
    if form == "module":
        return int(plain_drivers.STATE["setups"])
    if form == "object":
        return plain_drivers.journal.setups
    return sum(j.setups for j in Journal.made)


@pytest.mark.parametrize("form", list(FORMS))
def test_a_plain_driver_serves_its_manager_one_operation_at_a_time(
    actors_service: Any, actors_runtime: str, form: str
) -> None:
    h = actors_service({"b": {"manager": Relay, **FORMS[form]}})
    pending = [h.client.call_async("b", "work", {"n": n}) for n in range(30)]  # type: ignore[union-attr]
    assert [p.result() for p in pending] == [n * 2 for n in range(30)]
    state = _state(form)
    assert state["calls"] == list(range(30))  # in the order accepted
    assert state["max_in_flight"] == 1  # one at a time
    assert _setups(form) == 1


@pytest.mark.parametrize("form", list(FORMS))
def test_only_listed_operations_are_reachable(actors_service: Any, form: str) -> None:
    h = actors_service({"b": {"manager": Relay, **FORMS[form]}})
    for name in ("not_an_operation", "helper", "reset", "do_setup", "__init__", "state"):
        with pytest.raises(MethodNotAllowed):
            h.call("b", "reach", op=name)
    assert isinstance(h.call("b", "stats"), dict)


@pytest.mark.parametrize("form", list(FORMS))
def test_a_crashed_plain_driver_is_restarted_and_set_up_again(
    actors_service: Any, form: str
) -> None:
    h = actors_service({"b": {"manager": Relay, **FORMS[form]}})
    assert h.call("b", "work", n=1) == 2
    h.crash("test-host@b/driver")
    wait_driver_ready(h, "test-host@b/driver")
    assert _setups(form) == 2
    assert h.call("b", "work", n=2) == 4
    if form in ("factory", "plain class"):
        assert len(Journal.made) == 2  # a fresh object per incarnation, like a DriverActor
    if form == "object":
        assert Journal.made == [] and plain_drivers.journal.state["calls"] == [1, 2]


def test_a_plain_driver_is_not_ready_until_its_setup_passes(
    actors_service: Any, actors_clock: Any
) -> None:
    plain_drivers.STATE["broken"] = "the disk is not mounted"
    h = actors_service(
        {
            "b": {
                **FORMS["module"],
                "manager": Relay,
                "setup_backoff": {"initial": 5.0, "jitter": 0.0},
            }
        },
        clock=actors_clock,
    )
    with pytest.raises(DriverNotReady, match="the disk is not mounted"):
        h.call("b", "work", n=1)
    plain_drivers.STATE["broken"] = None
    h.advance(5.0)  # the retry falls due on the virtual clock
    assert plain_drivers.STATE["setups"] == 2
    assert h.call("b", "work", n=1) == 2


def test_declared_operations_keep_their_idempotency() -> None:
    config = ServiceConfig(
        host="h",
        registry=False,
        enabled_backends=["o", "m"],
        backends={
            "o": {"manager": "tests.test_plain_drivers:Relay", **FORMS["object"]},
            "m": {"manager": "tests.test_plain_drivers:Relay", **FORMS["module"]},
        },
    )
    o, m = plan_backends(config)
    assert {name: op.idempotent for name, op in o.driver_class.operations.items()} == {
        "work": False,
        "label": True,
    }
    assert list(m.driver_class.operations) == ["work"]


def test_a_factory_that_does_not_say_what_it_makes_needs_its_operations_listed(
    actors_service: Any,
) -> None:
    h = actors_service(
        {
            "b": {
                "manager": Relay,
                "driver": "tests.plain_drivers:make_anything",
                "driver_operations": ["label"],
            }
        }
    )
    assert h.call("b", "label", n=3) == "any-3"
    with pytest.raises(MethodNotAllowed):
        h.call("b", "work", n=3)  # the object has it, but it is not listed


# -- a plain manager ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("manager", "options", "greeting"),
    [
        ("tests.plain_drivers:Greeter", {"greeting": "hi"}, "hi"),  # a plain class
        ("tests.plain_drivers:greeter", {}, "hey"),  # a plain object
    ],
)
def test_a_plain_manager_exposes_only_its_listed_methods(
    actors_service: Any, manager: str, options: dict[str, Any], greeting: str
) -> None:
    h = actors_service(
        {
            "g": {
                "manager": manager,
                "rpc_methods": ["greet", "work"],
                "manager_options": options,
                **FORMS["object"],
            }
        }
    )
    assert h.call("g", "greet", name="ann") == f"{greeting}, ann"
    assert h.call("g", "work", n=4) == 8  # through its driver, the reply when it is done
    assert h.run_in("g", lambda manager: manager.wrapped.started) is True
    for name in ("secret", "init_host", "__init__", "driver", "greeting"):
        with pytest.raises(MethodNotAllowed):
            h.call("g", name)
    with pytest.raises(InvalidArguments):
        h.call("g", "greet", name=["not", "a", "string"])
    # Numbers are checked as for @rpc methods: no bool, string or bytes for an int.
    for loose, got in (("4", "a string"), (True, "a boolean")):
        with pytest.raises(InvalidArguments, match=f"n: expected an integer, got {got}"):
            h.call("g", "work", n=loose)
    with pytest.raises(InvalidArguments, match="n: expected an integer"):
        h.call("g", "work", n=4.5)
    assert h.call("g", "ping")["name"] == "test-host@g"
    described = {m["name"] for m in h.call("g", "describe")["methods"]}
    assert described == {"ping", "describe", "greet", "work"}


# -- what does not fit -------------------------------------------------------------------------
def _plan(**backend: Any) -> None:
    spec = {"manager": "tests.test_plain_drivers:Relay", **backend}
    plan_backends(
        ServiceConfig(host="h", registry=False, enabled_backends=["b"], backends={"b": spec})
    )


@pytest.mark.parametrize(
    ("backend", "says"),
    [
        ({"driver": "tests.plain_drivers"}, "module 'tests.plain_drivers' lists no operations"),
        (
            {"driver": "tests.plain_drivers", "driver_operations": ["work", "nope"]},
            "has no callable nope",
        ),
        (
            {"driver": "tests.plain_drivers", "driver_operations": ["do_setup"]},
            "do_setup cannot be operations",
        ),
        (
            {"driver": "share_service.drivers.base:ShareDriver"},
            "ShareDriver is abstract: implement create_share",
        ),
        ({"driver": "tests.support:ResourceManager"}, "not a DriverActor"),
        (
            {"driver": "actors.drivers.fake:FakeDriver", "driver_operations": ["x"]},
            "driver_operations must not be set",
        ),
        ({"driver": "tests.plain_drivers:make_anything"}, "lists no operations"),
        (
            {"manager": "tests.plain_drivers:Greeter", "driver": "actors.drivers.fake:FakeDriver"},
            "no rpc_methods are listed",
        ),
        (
            {
                "manager": "tests.plain_drivers:Greeter",
                "rpc_methods": ["greet", "shout"],
                "driver": "actors.drivers.fake:FakeDriver",
            },
            "has no method shout",
        ),
        (
            {
                "manager": "share_service.manager:ShareManager",
                "driver": "tests.plain_drivers:Journal",
            },
            "ShareManager drives a ShareDriver, and Journal lacks its operations create_share",
        ),
    ],
)
def test_what_does_not_fit_fails_with_the_configuration(backend: dict[str, Any], says: str) -> None:
    with pytest.raises(LoadError) as err:
        _plan(**backend)
    assert says in str(err.value)
    assert err.value.kind == "wrong_kind"
    assert str(err.value).startswith(("backends.b.driver: ", "backends.b.manager: "))


@pytest.mark.parametrize(
    ("backend", "key", "says"),
    [
        (
            {**FORMS["object"], "options": {"prefix": "x"}},
            "backends.b.options",
            "is an object: it is used as it is and takes no options",
        ),
        (
            {"driver": "tests.plain_drivers:Journal", "options": {"colour": "red"}},
            "backends.b.options",
            "unexpected keyword argument 'colour'",
        ),
    ],
)
def test_options_that_do_not_fit_are_config_errors(
    backend: dict[str, Any], key: str, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _plan(**backend)
    assert err.value.details["key"] == key
    assert says in str(err.value)
