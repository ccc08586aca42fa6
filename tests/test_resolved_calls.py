"""A cell reuses what `resolve_call` answered, but never past what could change it.

The cell keeps the callable a manager's RPC method or a driver's operation
resolved to, so that later requests skip the lookup. These tests hold the
places where a kept answer would be wrong: a version to check, a driver that
stops being ready, and a subclass whose own `resolve_call` decides per call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from actors import DriverNotReady, ManagerActor, MethodNotAllowed, UnsupportedVersion, rpc
from actors.drivers.base import DriverActor, operation
from tests.support import ResourceManager, backend


class FlakyDriver(DriverActor):
    """Ready after setup; an operation can take readiness away and give it back."""

    def do_setup(self) -> None:
        pass

    def check_for_setup_error(self) -> None:
        pass

    def get_stats(self) -> dict[str, Any]:
        return {}

    @operation
    def echo(self, value: int) -> int:
        return value

    @operation
    def set_ready(self, ready: bool) -> bool:
        self.ready = ready
        return ready


class FlakyManager(ManagerActor):
    @rpc
    def echo(self, value: int) -> Any:
        return self.driver.echo(value)

    @rpc
    def set_driver_ready(self, ready: bool) -> Any:
        # Straight to the driver: its set_ready operation is refused once not ready.
        return self.driver.set_ready(ready)


class GatedManager(ResourceManager):
    """Refuses RPC while `closed`: a resolve_call of its own, asked every time."""

    gate_closed = False

    def resolve_call(self, method: str, *, rpc: bool, version: str | None) -> Callable[..., Any]:
        if rpc and method != "open_gate" and type(self).gate_closed:
            raise MethodNotAllowed(self.name, method)
        return super().resolve_call(method, rpc=rpc, version=version)

    @rpc
    def close_gate(self) -> None:
        type(self).gate_closed = True

    @rpc
    def open_gate(self) -> None:
        type(self).gate_closed = False


def test_a_version_is_checked_after_the_method_was_called_without_one(make_harness):
    service = make_harness()
    assert service.call("b1", "status")["status_calls"] == 1  # resolved and kept
    with pytest.raises(UnsupportedVersion):
        service.call("b1", "status", version="1.1")  # status appeared in 1.2
    with pytest.raises(UnsupportedVersion):
        service.call("b1", "status", version="2.0")
    assert service.call("b1", "status", version="1.2")["status_calls"] == 2
    assert service.call("b1", "status")["status_calls"] == 3


def test_a_driver_that_stops_being_ready_refuses_operations_it_ran_before(make_harness):
    here = "tests.test_resolved_calls"
    service = make_harness({"b1": backend(f"{here}:FlakyManager", f"{here}:FlakyDriver")})
    assert service.call("b1", "echo", {"value": 1}) == 1
    assert service.call("b1", "echo", {"value": 2}) == 2  # the operation is kept by now
    assert service.call("b1", "set_driver_ready", {"ready": False}) is False
    with pytest.raises(DriverNotReady):
        service.call("b1", "echo", {"value": 3})
    # Readiness is the driver's to give back; nothing the manager sends reaches it now.
    with pytest.raises(DriverNotReady):
        service.call("b1", "set_driver_ready", {"ready": True})


def test_a_resolve_call_of_its_own_is_asked_for_every_request(make_harness):
    GatedManager.gate_closed = False
    service = make_harness({"b1": backend("tests.test_resolved_calls:GatedManager")})
    assert service.call("b1", "status")["status_calls"] == 1
    service.call("b1", "close_gate")
    with pytest.raises(MethodNotAllowed):
        service.call("b1", "status")
    service.call("b1", "open_gate")
    assert service.call("b1", "status")["status_calls"] == 2


class HealthDriver(FlakyDriver):
    """Readiness read from the device each time: a `ready` of its own."""

    present = True

    @property
    def ready(self) -> bool:  # type: ignore[override]
        return self._up and type(self).present

    @ready.setter
    def ready(self, value: bool) -> None:
        self._up = value


class OwnFlagDriver(HealthDriver):
    """Keeps a `_ready` of its own; its setup never succeeds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ready = threading.Event()  # truthy: must not pass for readiness

    def do_setup(self) -> None:
        raise OSError("device /dev/fake0 missing")

    ready = DriverActor.ready  # the framework's own again


class OpManager(FlakyManager):
    @rpc
    def call_op(self, op: Any) -> Any:
        return self.driver.call(op)


class Hello(ManagerActor):
    @rpc
    def hello(self) -> str:
        return "hi"


def _cell(service: Any, name: str) -> Any:
    return service.service.system.directory.entry(name).cell


def test_a_driver_with_a_ready_of_its_own_is_asked_every_time(make_harness):
    HealthDriver.present = True
    here = "tests.test_resolved_calls"
    service = make_harness({"b1": backend(f"{here}:FlakyManager", f"{here}:HealthDriver")})
    assert service.call("b1", "echo", {"value": 1}) == 1
    assert service.call("b1", "echo", {"value": 2}) == 2
    HealthDriver.present = False  # the device went away: not ready, by its own account
    try:
        with pytest.raises(DriverNotReady):
            service.call("b1", "echo", {"value": 3})
    finally:
        HealthDriver.present = True
    assert service.call("b1", "echo", {"value": 4}) == 4


def test_a_private_ready_of_a_driver_does_not_make_it_ready(make_harness):
    here = "tests.test_resolved_calls"
    service = make_harness({"b1": backend(f"{here}:FlakyManager", f"{here}:OwnFlagDriver")})
    with pytest.raises(DriverNotReady, match="fake0 missing"):
        service.call("b1", "echo", {"value": 1})


def test_a_resolve_call_replaced_before_start_is_asked(make_harness, monkeypatch):
    def refuse(self: Any, method: str, *, rpc: bool, version: str | None) -> Any:
        raise MethodNotAllowed(self.name, method)

    monkeypatch.setattr(Hello, "resolve_call", refuse)
    service = make_harness({"b1": backend("tests.test_resolved_calls:Hello")})
    for _ in range(2):
        with pytest.raises(MethodNotAllowed):
            service.call("b1", "hello")


def test_a_driver_operation_that_is_not_a_name_fails_its_future(make_harness):
    here = "tests.test_resolved_calls"
    service = make_harness({"b1": backend(f"{here}:OpManager", f"{here}:FlakyDriver")})
    with pytest.raises(MethodNotAllowed):
        service.call("b1", "call_op", {"op": None})


def test_only_the_framework_resolve_call_is_reused(make_harness):
    here = "tests.test_resolved_calls"
    service = make_harness(
        {
            "plain": backend(f"{here}:FlakyManager", f"{here}:FlakyDriver"),
            "gated": backend(f"{here}:GatedManager", f"{here}:HealthDriver"),
            "fake": backend(),
        }
    )
    assert _cell(service, "h@plain")._reuse_rpc is True  # RPC methods
    assert _cell(service, "h@plain/driver")._reuse_rpc is False  # internal: operations
    assert _cell(service, "h@gated")._reuse_rpc is None  # a resolve_call of its own
    assert _cell(service, "h@gated/driver")._reuse_rpc is None  # a ready of its own
    assert _cell(service, "h@fake/driver")._reuse_rpc is None  # FakeDriver: stand-in operations
