"""`ServiceHarness`: a service started for one test, with the tools to probe it."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from actors._cell import CellMixin
from actors.config import ServiceConfig
from actors.drivers.fake import FakeController
from actors.loading import register_object, unregister_object
from actors.registry.journal import OperationRecord
from actors.runtime import VirtualClock
from actors.service import Service
from actors.testing._outage import sqlite_outage
from actors.testing._recorder import Fault, Received, Recorder
from actors.testing._wait import WaitTimeout, wait_until
from transport.client import RpcClient

__all__ = ["LeakError", "ServiceHarness"]

_ids = itertools.count(1)


class LeakError(AssertionError):
    """Something the test started was still running after teardown."""


def _path_for(obj: Any, registered: list[str]) -> str:
    if isinstance(obj, str):
        return obj
    name = register_object(obj)
    registered.append(name)
    return name


def _loop_ended(cell: Any) -> Callable[[], bool]:
    """Whether the thread or greenlet running `cell` has finished."""
    return lambda: not cell.loop_alive()


class ServiceHarness:
    """A ServiceActor in this process, served on inproc://, with a client bound to it.

    `backends` maps backend names to {"manager": cls-or-path, "driver":
    cls-or-path, "options": {...}}. `replace_drivers` swaps a backend's driver
    (e.g. for FakeDriver) without touching the manager.
    """

    def __init__(
        self,
        backends: dict[str, dict[str, Any]],
        *,
        runtime: str = "threading",
        clock: VirtualClock | None = None,
        state_dir: Path | None = None,
        host: str = "test-host",
        replace_drivers: dict[str, Any] | None = None,
        transport: bool = True,
        **config: Any,
    ) -> None:
        self._registered: list[str] = []
        resolved = {}
        for name, spec in backends.items():
            spec = dict(spec)
            if replace_drivers and name in replace_drivers:
                # The stand-in takes its own options: (cls, {...}) or just cls.
                replacement = replace_drivers[name]
                if isinstance(replacement, tuple):
                    spec["driver"], spec["options"] = replacement
                else:
                    spec["driver"], spec["options"] = replacement, {}
            spec["manager"] = _path_for(spec["manager"], self._registered)
            spec["driver"] = _path_for(spec["driver"], self._registered)
            resolved[name] = spec
        if state_dir is not None:
            config.setdefault("state_dir", state_dir)
        self.config = ServiceConfig(
            host=host,
            runtime=runtime,
            enabled_backends=list(resolved),
            backends=resolved,
            **config,
        )
        self.runtime_name = runtime
        self.clock = clock
        self.service = Service(self.config, clock=clock)
        self.transport = transport
        self.client: RpcClient | None = None
        self.endpoint: str | None = None
        self._recorders: dict[str, Recorder] = {}
        self._faults: list[tuple[str, Fault]] = []

    # -- lifecycle -------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> ServiceHarness:
        self.service.start(timeout=timeout, defer_ready=True)  # the start phases in order
        if self.transport:
            self.endpoint = f"inproc://actors-test-{next(_ids)}"
            server = self.service.serve(self.endpoint)
            self.client = RpcClient(
                self.endpoint,
                green=self.runtime_name == "gevent",
                timeout=timeout,
                context=server.context,
            )
        self.service.ready(timeout)
        self.settle(timeout)  # the start's own messages handled: mailboxes are the test's
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop everything; raise LeakError if an actor is still running.

        Safe on a harness that was never started, or whose service the test
        stopped already.
        """
        if self.client is not None:
            self.client.close()
            self.client = None
        for name, fault in self._faults:
            self._probes(name).remove(fault)
        self._faults.clear()
        try:
            stopped = self.service.stop(timeout)
        finally:
            for name in self._registered:
                unregister_object(name)
            self._registered.clear()
        leaks = self._leaks(grace=1.0)
        if leaks or not stopped:
            raise LeakError(f"actors still running after stop: {leaks or 'stop timed out'}")

    def _leaks(self, grace: float) -> list[str]:
        """Actors whose thread or greenlet still runs `grace` seconds after stop."""
        system = self.service.system
        if system is None:
            return []
        cells = []
        for name in system.directory.names():
            entry = system.directory.entry(name)
            if entry is not None:
                cells += [c for c in (entry.cell, entry.last) if isinstance(c, CellMixin)]
        deadline = time.monotonic() + grace
        leaks = []
        for cell in cells:
            if not cell.exited.wait(max(0.0, deadline - time.monotonic())):
                leaks.append(f"{cell.name} (not stopped)")
                continue
            try:  # a thread finishing its last handler
                wait_until(_loop_ended(cell), timeout=max(0.0, deadline - time.monotonic()))
            except WaitTimeout:
                leaks.append(f"{cell.name} (its thread/greenlet still runs)")
        leaks += [
            f"{s.get('name')} ({s['state']})"
            for s in self.service.status()
            if s.get("state") in ("running", "stopping")
        ]
        return leaks

    def __enter__(self) -> ServiceHarness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- calling -----------------------------------------------------------------------
    def call(
        self,
        target: str,
        method: str,
        args: dict[str, Any] | None = None,
        /,
        *,
        timeout: float = 10.0,
        version: str | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call an RPC method as if it came off the wire (through the transport).

        Arguments as keywords, or as one dict (for names that clash with ours).
        `key` is the idempotency key of a journaled method.
        """
        args = {**(args or {}), **kwargs}
        if self.client is not None:
            return self.client.call(target, method, args, timeout=timeout, version=version, key=key)
        return self.service.call(target, method, args, timeout=timeout, version=version, key=key)

    def cast(
        self,
        target: str,
        method: str,
        args: dict[str, Any] | None = None,
        /,
        *,
        key: str | None = None,
        **kwargs: Any,
    ) -> str | None:
        """Cast as if off the wire; returns once accepted.

        For a journaled method, returns the operation's id (once committed).
        """
        args = {**(args or {}), **kwargs}
        if self.client is not None:
            ack = self.client.cast(target, method, args, key=key)
            return str(ack["operation"]) if ack and "operation" in ack else None
        return self.service.cast(target, method, args, key=key)

    def operation(self, op_id: str) -> OperationRecord | None:
        """A journaled operation by id, read from the journal (None if unknown)."""
        return self.service.operation(op_id)

    def wait_operation(self, op_id: str, timeout: float = 10.0) -> OperationRecord:
        """Wait until a journaled operation is finished; returns its record."""

        def finished() -> OperationRecord | None:
            record = self.operation(op_id)  # the database: no event to wait on
            return record if record is not None and record.finished else None

        def what() -> str:
            return f"operation {op_id} to finish (now: {self.operation(op_id)})"

        record = wait_until(finished, timeout, message=what)
        assert record is not None  # wait_until returns a true value
        return record

    def hook(self, target: str, method: str) -> Callable[..., Any]:
        """A function that calls `method` on `target` like a client would."""
        return lambda **args: self.call(target, method, **args)

    def run_in(self, target: str, fn: Callable[[Any], Any], timeout: float = 10.0) -> Any:
        """Run `fn(behaviour)` inside the actor's mailbox and return its result.

        For reading state in assertions, or replacing a dependency with a
        test double (`lambda m: setattr(m, "client", double)`).
        """
        name = self._name(target)
        system = self.service.system
        assert system is not None
        cell = system.directory.lookup(name)
        from actors._messages import Continuation

        done = system.runtime.future()
        done.set(None)
        result = system.runtime.future()
        result.expect_by(name, getattr(fn, "__name__", "run_in"), timeout)
        cell.post(Continuation(lambda _: fn(cell.behaviour), done, result))
        return result.result()

    def replace(self, target: str, **doubles: Any) -> None:
        """Set attributes of a running manager (its dependencies) to test doubles."""

        def swap(behaviour: Any) -> None:
            for attr, double in doubles.items():
                setattr(behaviour, attr, double)

        self.run_in(target, swap)

    # -- observing ------------------------------------------------------------------------
    def _name(self, target: str) -> str:
        if "@" in target or target == self.service.name:
            return target
        return self.service.route(target)

    def _probes(self, name: str) -> list[Any]:
        assert self.service.system is not None
        return self.service.system.directory.probes(name)

    def recorder(self, target: str) -> Recorder:
        """Every message `target` receives from now on (kept across restarts)."""
        name = self._name(target)
        rec = self._recorders.get(name)
        if rec is None:
            assert self.service.system is not None
            handle = self.service.system.handle(name)
            rec = self._recorders[name] = Recorder(self.service.system.runtime, name, handle.status)
            self._probes(name).append(rec)
        return rec

    @contextlib.contextmanager
    def waiting_for(
        self, target: str, method: str, *, kind: str | None = None, timeout: float = 10.0
    ) -> Iterator[list[Received]]:
        """Wait (after the block) until `target` handled `method` (a cast, timer...).

        The message is recorded when the actor takes it from its mailbox; to
        know it was *handled*, a no-op then goes through the same mailbox.
        """
        rec = self.recorder(target)
        waiter = rec.expect(lambda m: m.method == method and (kind is None or m.kind == kind))
        found: list[Received] = []
        yield found
        found.append(rec.wait(waiter, timeout, f"{kind or 'a message'} {method!r}"))
        self.run_in(self._name(target), lambda _: None, timeout)  # handled, not just taken

    def advance(self, seconds: float) -> None:
        """Move the virtual clock, then wait until every actor handled what fell due.

        Timers that fall due post messages to their actors; this waits for
        those to be handled (a no-op through each mailbox), so the test sees
        the effects, e.g. of periodic tasks, deterministically.
        """
        if not isinstance(self.clock, VirtualClock):
            raise RuntimeError("advance() needs the harness to run on a VirtualClock")
        self.clock.advance(seconds)
        self.settle()

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every running actor has handled what is in its mailbox now."""
        system = self.service.system
        assert system is not None
        for name in system.directory.names():
            entry = system.directory.entry(name)
            if entry is not None and entry.state == "running" and entry.cell is not None:
                self.run_in(name, lambda _: None, timeout)

    def fake(self, backend: str) -> FakeController:
        """The FakeController of a backend whose driver is FakeDriver."""
        return FakeController.for_backend(self._name(backend))

    def status(self) -> list[dict[str, Any]]:
        return self.service.status()

    # -- faults ------------------------------------------------------------------------------
    def crash(
        self, target: str, reason: str = "crashed by the test", timeout: float = 10.0
    ) -> None:
        """Crash an actor (after what it already queued) and wait until it is down.

        Its supervisor takes over; `wait_running(target)` waits for the restart.
        """
        system = self.service.system
        assert system is not None
        name = self._name(target)
        cell = system.directory.lookup(name)
        cell.request_crash(reason)
        if not cell.exited.wait(timeout):
            raise WaitTimeout(f"{name} did not crash within {timeout:g}s: {cell.status()}")

    def drop(self, target: str, method: str, times: int = 1) -> Fault:
        """Lose the next `times` requests/casts of `method` to `target`."""
        return self._fault(target, Fault(self._runtime(), method, drop=True, times=times))

    def delay(self, target: str, method: str, seconds: float, times: int = 1) -> Fault:
        """Hold the next `times` requests/casts of `method` for `seconds` first."""
        return self._fault(target, Fault(self._runtime(), method, delay=seconds, times=times))

    def _runtime(self) -> Any:
        assert self.service.system is not None
        return self.service.system.runtime

    def _fault(self, target: str, fault: Fault) -> Fault:
        name = self._name(target)
        self._probes(name).append(fault)
        self._faults.append((name, fault))
        return fault

    @contextlib.contextmanager
    def registry_outage(self) -> Iterator[None]:
        """Take the registry database away for the block, then give it back.

        For the default SQLite registry: see `sqlite_outage`.
        """
        registry = self.service.registry
        if registry is None or not registry.url.startswith("sqlite:///"):
            raise NotImplementedError("registry_outage works on a SQLite registry file")
        with sqlite_outage(Path(registry.url.removeprefix("sqlite:///"))):
            yield

    def wait_running(self, target: str, timeout: float = 10.0) -> None:
        """Wait until `target` runs again (after a crash and its restart).

        An incarnation that is still ending (it crashed, its callers have
        heard, its children are stopping) does not count: this waits for the
        next one.
        """
        system = self.service.system
        assert system is not None
        name = self._name(target)
        deadline = time.monotonic() + timeout
        entry = system.directory.entry(name)
        ending = entry.cell if entry is not None else None
        try:
            if ending is not None and ending._stopping and not ending.exited.wait(timeout):
                raise WaitTimeout(f"{target} did not end within {timeout:g}s")
            system.directory.wait_for(name, "running", max(0.0, deadline - time.monotonic()))
        except Exception as exc:
            raise WaitTimeout(f"{target} is not running: {self.status()}") from exc
