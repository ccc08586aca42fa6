"""Managers and drivers used by the tests, loaded by import path like users' own."""

from __future__ import annotations

import os
from typing import Any

from actors import FatalError, ManagerActor, periodic_task, rpc
from actors.drivers.base import DriverActor, DriverOptions, operation


class ResourceManager(ManagerActor):
    """A manager over FakeDriver: returns driver futures, continues in its mailbox."""

    RPC_API_VERSION = "1.2"

    def init_host(self) -> None:
        self.events: list[str] = ["init_host"]
        self.status_calls = 0

    @rpc
    def create(self, resource_id: str, size: int = 1) -> Any:
        """Reply follows when the driver finishes (the future is returned)."""
        return self.driver.create(resource_id, size)

    @rpc(version="1.1")
    def create_and_count(self, resource_id: str) -> Any:
        """Continue in the manager's mailbox once the driver is done."""

        def done(resource: dict[str, Any]) -> dict[str, Any]:
            self.events.append(f"created {resource_id}")
            return {"resource": resource, "events": len(self.events)}

        return self.then(self.driver.create(resource_id), done)

    @rpc
    def create_then_get(self, resource_id: str) -> Any:
        """Two driver steps, the second queued by a continuation of the first."""
        return self.then(self.driver.create(resource_id), lambda _: self.driver.get(resource_id))

    @rpc
    def get(self, resource_id: str) -> Any:
        return self.driver.get(resource_id)

    @rpc(version="1.2")
    def status(self) -> dict[str, Any]:
        """Answers from the manager's own state, never from the driver."""
        self.status_calls += 1
        return {"events": list(self.events), "status_calls": self.status_calls}

    @rpc
    def record(self, note: str) -> None:
        self.events.append(note)

    @rpc
    def crash(self, reason: str = "asked to crash") -> None:
        raise FatalError(reason)

    @rpc
    def fail(self, message: str) -> None:
        raise ValueError(message)

    def not_exposed(self) -> str:
        return "secret"

    def _private(self) -> str:
        return "secret"


class CrashOnInitManager(ManagerActor):
    def init_host(self) -> None:
        raise RuntimeError("init_host exploded")


class BrokenSetupDriver(DriverActor):
    """A driver whose setup fails until its `healthy` file... never: always fails."""

    def do_setup(self) -> None:
        raise OSError("device /dev/fake0 missing")

    def check_for_setup_error(self) -> None:
        pass

    def get_stats(self) -> dict[str, Any]:
        return {}

    @operation
    def noop(self) -> None:
        pass


def backend(
    manager: str = "tests.support:ResourceManager",
    driver: str = "actors.drivers.fake:FakeDriver",
    **extra: Any,
) -> dict[str, Any]:
    """A backend config entry."""
    return {"manager": manager, "driver": driver, **extra}


class HoldingManager(ResourceManager):
    """Adds methods that deliberately block or misbehave, for fault tests."""

    @rpc
    def hold(self) -> str:
        """Block this manager's mailbox until the test releases its FakeController."""
        from actors.drivers.fake import FakeCall, FakeController

        fake = FakeController.for_backend(self.name)
        call = FakeCall("manager.hold", (), {}, self.name)
        fake._begin(call)
        try:
            if not fake._wait_released(self.runtime, 30):
                raise TimeoutError("never released")
        finally:
            fake._end(call, "succeeded")
        return "released"

    @rpc
    def raise_base_exception(self, kind: str) -> None:
        import gevent

        if kind == "timeout":
            raise gevent.Timeout(0.01)
        raise gevent.GreenletExit()


class JournaledManager(HoldingManager):
    """Journaled methods over FakeDriver: durable operations for the journal tests."""

    @rpc(journal=True)
    def provision(self, resource_id: str, size: int = 1) -> Any:
        """Not idempotent: after a crash it is marked interrupted, never re-run."""
        return self.driver.create(resource_id, size)

    @rpc(idempotent=True)
    def resize(self, resource_id: str, size: int) -> Any:
        """Idempotent: crash recovery runs it again."""
        return self.driver.resize(resource_id, size)

    @rpc
    def hold_then_crash(self) -> None:
        """Block the mailbox until released, then crash with what queued behind."""
        self.hold()
        raise FatalError("crashed after the hold")

    @rpc(idempotent=True)
    def stamp(self, tag: str) -> dict[str, str]:
        """Idempotent, journaled: says which manager ran it (run again after a crash)."""
        return {"tag": tag, "by": self.name}

    @rpc(journal=True)
    def explode(self) -> None:
        raise FatalError("exploded inside a journaled operation")

    @rpc(journal=True)
    def shaped(self, tag: str) -> Any:
        """A result JSON reshapes: a tuple, and a map with an integer key."""
        return {"pair": (tag, 1), "by_number": {7: tag}}

    @rpc(journal=True)
    def unstorable(self) -> Any:
        return {"a set": {1, 2}}  # a set is neither JSON nor msgpack


class SlowOptions(DriverOptions):
    root: str


class SlowDriver(DriverActor):
    """Real host work that takes a while: `sleep` in a subprocess, then a file."""

    Options = SlowOptions
    options: SlowOptions

    def do_setup(self) -> None:
        os.makedirs(self.options.root, exist_ok=True)

    def check_for_setup_error(self) -> None:
        pass

    def get_stats(self) -> dict[str, Any]:
        return {"driver": "slow"}

    @operation(idempotent=True)
    def work(self, item: str, seconds: float) -> dict[str, Any]:
        self.execute("sleep", str(seconds), timeout=60)
        path = os.path.join(self.options.root, item)
        with open(path, "a", encoding="utf-8") as f:
            f.write("done\n")
        return {"item": item}


class SlowManager(ManagerActor):
    """Journaled slow work, for the SIGKILL crash-recovery test."""

    @rpc(idempotent=True)
    def work(self, item: str, seconds: float = 0.2) -> Any:
        return self.driver.work(item, seconds)

    @rpc(journal=True)
    def work_once(self, item: str, seconds: float = 0.2) -> Any:
        return self.driver.work(item, seconds)


PHASES: list[str] = []
"""What PhaseManager saw, in order (tests clear it)."""


class PhaseManager(ResourceManager):
    """Records the start phases it goes through."""

    fail_with_rpc = False

    def init_host(self) -> None:
        super().init_host()
        PHASES.append(f"init_host {self.backend}")

    def init_host_with_rpc(self) -> None:
        PHASES.append(f"init_host_with_rpc {self.backend}")
        if self.backend == "broken":
            raise RuntimeError("cannot announce myself")

    @periodic_task(spacing=3600, run_immediately=True)
    def announce(self) -> None:
        PHASES.append(f"periodic {self.backend}")


class SchedulerManager(ManagerActor):
    """Receives capability reports, keeping the newest per service."""

    def init_host(self) -> None:
        from actors.capabilities import CapabilityStore

        self.store = CapabilityStore()

    @rpc
    def update_capabilities(self, report: dict[str, Any]) -> bool:
        return self.store.update(report)

    @rpc
    def capabilities(self) -> dict[str, Any]:
        return {"reports": self.store.reports, "dropped": self.store.dropped}


class ClusterManager(JournaledManager):
    """A host of the cluster tests: journaled work, a long call, capability reports."""

    def init_host(self) -> None:
        from actors.capabilities import CapabilityStore

        super().init_host()
        self.store = CapabilityStore()

    @rpc
    def update_capabilities(self, report: dict[str, Any]) -> bool:
        return self.store.update(report)

    @rpc
    def capabilities(self) -> dict[str, Any]:
        return {"reports": self.store.reports, "dropped": self.store.dropped}

    @rpc
    def nap(self, seconds: float) -> Any:
        """A long call that leaves the mailbox free: answered after `seconds`."""
        import time

        self.naps_begun = getattr(self, "naps_begun", 0) + 1
        return self.runtime.offload(time.sleep, seconds)

    @rpc
    def naps(self) -> int:
        """How many `nap` calls reached this host: a test waits on it, not on a sleep."""
        return getattr(self, "naps_begun", 0)
