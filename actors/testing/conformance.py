"""Driver conformance suites: a driver kind's contract as tests, for any driver.

The framework ships the mechanism; an application ships its contract. A
driver kind's contract is a class of tests subclassing `DriverContract` with
`kind` set to the kind's abstract base class (the share service's is
`share_service.testing.ShareDriverContract`, for `ShareDriver`). To check a
driver, subclass the contract once, name the driver and its options, and
pytest runs every test of the contract against it::

    from share_service.testing import ShareDriverContract

    class TestMyShareDriver(ShareDriverContract):
        driver = "mypkg.drivers:MyShareDriver"    # or the class, module, object, factory

        @pytest.fixture
        def driver_options(self, tmp_path):
            return {"root": str(tmp_path / "shares")}

Each test gets `driver_under_test`: the driver started by the framework in its
own actor, under a manager of a service (the `actors_service` fixture), with
every call going through its mailbox as a manager's would. Tests run on both
runtimes (`actors_runtime`). The tests of `DriverContract` itself hold for
every driver of every kind: it becomes ready, it serves the kind's operations
and nothing else, its stats are plain data, and a crashed driver is restarted
and set up again. A contract adds the tests of what its operations do.

A driver's errors cross a real RPC boundary here: register them with
`transport.errors.register_error` so they come back as their own types.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from actors.drivers.base import DriverActor, collect_operations
from actors.errors import MethodNotAllowed
from actors.manager_actor import ManagerActor
from actors.rpc import rpc
from actors.testing._harness import ServiceHarness
from actors.testing._wait import WaitTimeout

__all__ = ["DriverContract", "DriverUnderTest", "wait_driver_ready"]


class _Probe(ManagerActor):
    """The manager a contract's tests drive their driver through: it forwards calls."""

    @rpc(validate=False)
    def run(self, op: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return self.driver.call(op, *args, **kwargs)


class DriverUnderTest:
    """A driver started for one test, reached the way its manager reaches it.

    `driver.create_share("s1", 1)` (or `driver.call("create_share", "s1", 1)`)
    queues the operation in the driver's mailbox and returns its result, or
    raises its error, within `timeout` seconds.
    """

    BACKEND = "under-test"

    def __init__(self, harness: ServiceHarness, timeout: float = 30.0) -> None:
        self.harness = harness
        self.timeout = timeout
        self.manager = harness._name(self.BACKEND)
        self.name = f"{self.manager}/driver"

    @property
    def driver_class(self) -> type[DriverActor]:
        """The DriverActor class running the driver (a wrapper, for a plain driver)."""
        actor = self.harness.service.actor
        assert actor is not None
        return actor.plan(self.manager).driver_class

    @property
    def operations(self) -> set[str]:
        """The names this driver serves as operations."""
        return set(self.driver_class.operations)

    @property
    def ready(self) -> bool:
        system = self.harness.service.system
        return system is not None and system.is_ready(self.name)

    def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        """Run operation `op` in the driver's mailbox; its result, or its error raised."""
        return self.harness.call(
            self.BACKEND,
            "run",
            {"op": op, "args": list(args), "kwargs": kwargs},
            timeout=self.timeout,
        )

    def __getattr__(self, op: str) -> Callable[..., Any]:
        if op.startswith("_"):
            raise AttributeError(op)
        return lambda *args, **kwargs: self.call(op, *args, **kwargs)

    def stats(self) -> Any:
        """The driver's `get_stats()`."""
        return self.call("get_stats")

    def crash(self) -> None:
        """Crash the driver; its manager restarts it (see `wait_ready`)."""
        self.harness.crash(self.name)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the driver (its current incarnation) finished setup."""
        wait_driver_ready(self.harness, self.name, timeout)


def wait_driver_ready(harness: ServiceHarness, name: str, timeout: float = 10.0) -> None:
    """Wait until the current incarnation of driver `name` finished setup.

    A crashed incarnation's readiness does not count: after `harness.crash`,
    this waits for the restarted driver's setup. WaitTimeout past `timeout`.
    """
    system = harness.service.system
    assert system is not None
    deadline = time.monotonic() + timeout
    while True:
        heard = system.runtime.event()

        def listener(ready: str, heard: Any = heard) -> None:
            if ready == name:
                heard.set()

        system.add_ready_listener(listener)  # before the check: no readiness is missed
        try:
            entry = system.directory.entry(name)
            current = entry.cell if entry is not None else None
            health = system.health.get(name)
            if current is not None and health is not None and health == (current, True):
                return  # this incarnation, not a crashed one, finished setup
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not heard.wait(remaining):
                raise WaitTimeout(f"{name} not ready within {timeout:g}s: {harness.status()}")
        finally:
            system.remove_ready_listener(listener)


class DriverContract:
    """Base of a driver kind's contract tests; subclass once per driver to test it.

    Set `driver` (a DriverActor subclass, an import path, or a module, object,
    factory or class: anything a backend's `driver` may name), if need be
    `driver_operations`, and override the `driver_options` fixture for its
    options. A contract sets `kind` and adds tests taking `driver_under_test`.
    """

    kind: ClassVar[type | None] = None
    driver: ClassVar[Any] = None
    driver_operations: ClassVar[list[str] | None] = None
    call_timeout: ClassVar[float] = 30.0

    @pytest.fixture
    def driver_options(self) -> dict[str, Any]:
        """The driver's options (the backend's `options`): override it."""
        return {}

    @pytest.fixture
    def driver_under_test(
        self,
        actors_service: Callable[..., ServiceHarness],
        actors_runtime: str,
        driver_options: dict[str, Any],
    ) -> Iterator[DriverUnderTest]:
        """The driver, started by a service for this test, on each runtime."""
        driver = _unbound(type(self), "driver")
        if driver is None:
            raise TypeError(f"{type(self).__name__} must set `driver` to the driver to test")
        backend: dict[str, Any] = {"manager": _Probe, "driver": driver, "options": driver_options}
        if self.driver_operations is not None:
            backend["driver_operations"] = list(self.driver_operations)
        harness = actors_service(  # no registry: the driver is what is tested
            {DriverUnderTest.BACKEND: backend}, host="conformance", registry=False
        )
        under_test = DriverUnderTest(harness, self.call_timeout)
        under_test.wait_ready()
        yield under_test

    # -- what every driver of every kind does --------------------------------------------
    def test_setup_makes_the_driver_ready(self, driver_under_test: DriverUnderTest) -> None:
        assert driver_under_test.ready

    def test_it_serves_every_operation_of_its_kind(
        self, driver_under_test: DriverUnderTest
    ) -> None:
        declared = set(collect_operations(self.kind)) if self.kind is not None else set()
        missing = declared - driver_under_test.operations
        assert not missing, f"the driver lacks operations of {self.kind}: {sorted(missing)}"

    def test_it_refuses_what_is_not_an_operation(self, driver_under_test: DriverUnderTest) -> None:
        names = ["do_setup", "check_for_setup_error", "execute", "on_start"]
        if not driver_under_test.driver_class.stands_in:  # FakeDriver serves any other name
            names.append("no_such_operation")
        for name in names:
            with pytest.raises(MethodNotAllowed):
                driver_under_test.call(name)

    def test_its_stats_are_plain_data(self, driver_under_test: DriverUnderTest) -> None:
        assert isinstance(driver_under_test.stats(), dict)

    def test_a_crashed_driver_is_restarted_and_set_up_again(
        self, driver_under_test: DriverUnderTest
    ) -> None:
        driver_under_test.crash()
        driver_under_test.wait_ready()
        assert isinstance(driver_under_test.stats(), dict)


def _unbound(cls: type, name: str) -> Any:
    """A class attribute as it was set: a function stays a function, not a method."""
    value = inspect.getattr_static(cls, name, None)
    return value.__func__ if isinstance(value, staticmethod | classmethod) else value
