"""`FakeDriver`: an in-memory driver for tests, ours and our users'.

It keeps resources in memory, records every operation, and can be programmed
per backend through its `FakeController`: delays, failures, hangs and setup
failures. The controller outlives driver restarts (like host state would), so a
test can program a driver before it starts and inspect it after it crashed.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field

from actors.drivers.base import DriverActor, DriverOptions, operation
from actors.errors import ActorsError, DeadlineExceeded, DriverNotReady, MethodNotAllowed
from actors.runtime import Event, Runtime
from transport.errors import register_error

__all__ = ["FakeCall", "FakeController", "FakeDriver", "FakeResourceError"]


class FakeResourceError(ActorsError):
    """A fake resource is missing, duplicated or over capacity."""

    def __init__(self, resource_id: str, reason: str) -> None:
        super().__init__(
            f"resource {resource_id!r}: {reason}", resource_id=resource_id, reason=reason
        )


register_error(FakeResourceError)


@dataclass
class FakeCall:
    """One operation the fake driver ran."""

    op: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    driver: str
    outcome: str = "running"


@dataclass
class _Waiter:
    predicate: Callable[[FakeController], bool]
    event: Event


@dataclass
class FakeController:
    """Programs and observes the fake driver of one backend. Thread-safe."""

    backend: str
    calls: list[FakeCall] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    setups: int = 0
    hang_timeout: float = 300.0
    _delays: dict[str, float] = field(default_factory=dict)
    _failures: dict[str, deque[BaseException]] = field(default_factory=dict)
    _hangs: dict[str, int] = field(default_factory=dict)
    _gates: list[Event] = field(default_factory=list)
    _releases: int = 0  # release() calls so far: a hang decided before one is let go
    _setup_failures: deque[BaseException] = field(default_factory=deque)
    _results: dict[str, Any] = field(default_factory=dict)
    _waiters: list[_Waiter] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    _registry: ClassVar[dict[str, FakeController]] = {}

    @classmethod
    def for_backend(cls, backend: str) -> FakeController:
        """The controller of `backend` (its manager name, `host@backend`)."""
        with _registry_lock:
            ctl = cls._registry.get(backend)
            if ctl is None:
                ctl = cls._registry[backend] = FakeController(backend)
            return ctl

    @classmethod
    def forget(cls, backend: str | None = None) -> None:
        """Drop one controller (or all), releasing anything they hold."""
        with _registry_lock:
            names = [backend] if backend else list(cls._registry)
            for name in names:
                ctl = cls._registry.pop(name, None)
                if ctl is not None:
                    ctl.release()

    # -- programming --------------------------------------------------------------
    def delay(self, op: str, seconds: float) -> None:
        """Make every `op` take `seconds` (0 removes the delay)."""
        with self._lock:
            self._delays[op] = seconds

    def fail(self, op: str, error: BaseException, times: int = 1) -> None:
        """Make the next `times` calls of `op` raise `error`."""
        with self._lock:
            self._failures.setdefault(op, deque()).extend([error] * times)

    def hang(self, op: str, times: int = 1) -> None:
        """Make the next `times` calls of `op` block until `release()`."""
        with self._lock:
            self._hangs[op] = self._hangs.get(op, 0) + times

    def fail_setup(self, error: BaseException, times: int = 1) -> None:
        """Make the next `times` driver setups raise `error`."""
        with self._lock:
            self._setup_failures.extend([error] * times)

    def returns(self, op: str, value: Any) -> None:
        """What a stand-in operation `op` returns: a value, or a function of its arguments.

        Any operation name works: a FakeDriver standing in for your driver
        accepts the operations your manager calls and records them.
        """
        with self._lock:
            self._results[op] = value

    def _result(self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            value = self._results.get(op)
        return value(*args, **kwargs) if callable(value) else value

    def release(self) -> None:
        """Let every hanging operation go on."""
        with self._lock:
            gates, self._gates = self._gates, []
            self._releases += 1
        for gate in gates:
            gate.set()

    # -- observing ----------------------------------------------------------------
    def ops(self) -> list[str]:
        """Names of the operations run so far, in order."""
        with self._lock:
            return [c.op for c in self.calls]

    def wait_until(
        self, predicate: Callable[[FakeController], bool], runtime: Runtime, timeout: float = 10.0
    ) -> None:
        """Wait (at most `timeout`) until `predicate(controller)` holds."""
        with self._lock:
            if predicate(self):
                return
            waiter = _Waiter(predicate, runtime.event())
            self._waiters.append(waiter)
        try:
            if not waiter.event.wait(timeout):
                raise DeadlineExceeded(self.backend, "wait_until", timeout)
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _changed(self) -> None:
        with self._lock:
            ready = [w for w in self._waiters if w.predicate(self)]
            for w in ready:
                self._waiters.remove(w)
        for w in ready:
            w.event.set()

    # -- used by the driver -------------------------------------------------------
    def _begin(self, call: FakeCall) -> tuple[float, BaseException | None, int | None]:
        """The call's delay, error, and if it hangs the release count it hangs from."""
        with self._lock:
            self.calls.append(call)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            failures = self._failures.get(call.op)
            error = failures.popleft() if failures else None
            hang: int | None = None
            if self._hangs.get(call.op, 0) > 0:
                self._hangs[call.op] -= 1
                hang = self._releases
            delay = self._delays.get(call.op, 0.0)
        self._changed()
        return delay, error, hang

    def _end(self, call: FakeCall, outcome: str) -> None:
        with self._lock:
            call.outcome = outcome
            self.in_flight -= 1
        self._changed()

    def _gate(self, runtime: Runtime, since: int | None = None) -> Event:
        """What a hang waits on; already set if `release()` came since `since` (a count)."""
        gate = runtime.event()
        with self._lock:
            if since is not None and self._releases != since:
                gate.set()
            else:
                self._gates.append(gate)
        return gate

    def _setup(self) -> None:
        with self._lock:
            self.setups += 1
            error = self._setup_failures.popleft() if self._setup_failures else None
        self._changed()
        if error is not None:
            raise error


_registry_lock = threading.Lock()


class FakeDriverOptions(DriverOptions):
    capacity: int = Field(100, ge=0, description="total size units the fake backend holds")


class FakeDriver(DriverActor):
    """In-memory resources with programmable behaviour; see FakeController."""

    Options = FakeDriverOptions
    options: FakeDriverOptions

    @property
    def controller(self) -> FakeController:
        return FakeController.for_backend(self.backend_name)

    @property
    def backend_name(self) -> str:
        return f"{self.host}@{self.backend}"

    def do_setup(self) -> None:
        self.controller._setup()

    def check_for_setup_error(self) -> None:
        if self.options.capacity < 0:
            raise ValueError("capacity must not be negative")

    def get_stats(self) -> dict[str, Any]:
        used = sum(r["size"] for r in self.controller.resources.values())
        return {
            "driver": "fake",
            "total_capacity": self.options.capacity,
            "free_capacity": self.options.capacity - used,
            "resources": len(self.controller.resources),
        }

    def resolve_call(self, method: str, *, rpc: bool, version: str | None) -> Callable[..., Any]:
        """Its own operations, plus any other public name as a stand-in operation."""
        if rpc or method in self.operations or method == "get_stats" or method.startswith("_"):
            return super().resolve_call(method, rpc=rpc, version=version)
        if not method.isidentifier() or hasattr(DriverActor, method):
            raise MethodNotAllowed(self.name, method)
        if not self.ready:
            raise DriverNotReady(self.name, self.last_setup_error or "setup has not finished")
        return functools.partial(self._stand_in, method)

    def _stand_in(self, op: str, *args: Any, **kwargs: Any) -> Any:
        return self._run(op, args, lambda: self.controller._result(op, args, kwargs), kwargs)

    def _run(
        self,
        op: str,
        args: tuple[Any, ...],
        body: Callable[[], Any],
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        ctl = self.controller
        call = FakeCall(op, args, kwargs or {}, self.name)
        delay, error, hang = ctl._begin(call)
        try:
            if delay:
                self.runtime.sleep(delay)
            if hang is not None and not ctl._gate(self.runtime, hang).wait(ctl.hang_timeout):
                raise DeadlineExceeded(self.name, op, ctl.hang_timeout)
            if error is not None:
                raise error
            result = body()
        except BaseException:
            ctl._end(call, "failed")
            raise
        ctl._end(call, "succeeded")
        return result

    @operation(idempotent=True)
    def create(self, resource_id: str, size: int = 1) -> dict[str, Any]:
        def body() -> dict[str, Any]:
            resources = self.controller.resources
            if resource_id in resources:
                raise FakeResourceError(resource_id, "already exists")
            used = sum(r["size"] for r in resources.values())
            if used + size > self.options.capacity:
                raise FakeResourceError(resource_id, "not enough capacity")
            resources[resource_id] = {"id": resource_id, "size": size}
            return dict(resources[resource_id])

        return self._run("create", (resource_id, size), body)  # type: ignore[no-any-return]

    @operation(idempotent=True)
    def delete(self, resource_id: str) -> None:
        def body() -> None:
            if self.controller.resources.pop(resource_id, None) is None:
                raise FakeResourceError(resource_id, "does not exist")

        self._run("delete", (resource_id,), body)

    @operation
    def resize(self, resource_id: str, size: int) -> dict[str, Any]:
        def body() -> dict[str, Any]:
            resource = self.controller.resources.get(resource_id)
            if resource is None:
                raise FakeResourceError(resource_id, "does not exist")
            resource["size"] = size
            return dict(resource)

        return self._run("resize", (resource_id, size), body)  # type: ignore[no-any-return]

    @operation(idempotent=True)
    def get(self, resource_id: str) -> dict[str, Any]:
        def body() -> dict[str, Any]:
            resource = self.controller.resources.get(resource_id)
            if resource is None:
                raise FakeResourceError(resource_id, "does not exist")
            return dict(resource)

        return self._run("get", (resource_id,), body)  # type: ignore[no-any-return]

    @operation(idempotent=True)
    def list_resources(self) -> list[dict[str, Any]]:
        return self._run(  # type: ignore[no-any-return]
            "list_resources", (), lambda: [dict(r) for r in self.controller.resources.values()]
        )
