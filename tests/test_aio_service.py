"""A service embedded in an asyncio app (`AsyncService`), and calls by topic from asyncio.

Each test is a coroutine run by `asyncio.run`; the services run on the
threading runtime, their actors in threads beside the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from actors import DeadlineExceeded, MethodNotAllowed, NotFound, Service, ServiceConfig
from actors.aio import AsyncService, AsyncTopicClient, wrap_future
from actors.registry import Registry
from actors.runtime import get_runtime
from actors.testing import FakeController
from tests.support import backend

THREADS = get_runtime("threading")


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def config(**overrides: Any) -> ServiceConfig:
    backends = overrides.pop("backends", {"b1": backend()})
    return ServiceConfig(
        host=overrides.pop("host", "h"),
        runtime="gevent",  # AsyncService runs it on threads whatever this says
        enabled_backends=list(backends),
        backends=backends,
        **overrides,
    )


def test_start_call_and_stop_from_async_code():
    async def main() -> AsyncService:
        async with AsyncService(config()) as service:
            assert service.service.system is not None
            assert service.service.system.runtime.name == "threading"
            created = await service.call("b1", "create", {"resource_id": "r1", "size": 2})
            assert created == {"id": "r1", "size": 2}
            assert await service.cast("b1", "record", {"note": "cast"}) is None
            assert (await service.call("h@b1", "status"))["events"][-1] == "cast"
            with pytest.raises(MethodNotAllowed):
                await service.call("b1", "not_exposed")
            with pytest.raises(NotFound):
                await service.call("nowhere", "ping")
        return service

    service = run(main())
    assert service.service.system is not None
    assert not [s for s in service.service.status() if s.get("state") == "running"]


def test_many_tasks_call_at_once():
    async def main() -> None:
        async with AsyncService(config()) as service:
            results = await asyncio.gather(
                *(
                    service.call("b1", "create", {"resource_id": f"r{i}", "size": 0})
                    for i in range(300)
                )
            )
            assert [r["id"] for r in results] == [f"r{i}" for i in range(300)]

    run(main())


def test_the_event_loop_runs_while_a_call_waits_and_the_deadline_holds():
    fake = FakeController.for_backend("h@b1")
    fake.hang("get")

    async def main() -> None:
        async with AsyncService(config()) as service:
            await service.call("b1", "create", {"resource_id": "r"})
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            ticking = asyncio.create_task(ticker())
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded) as err:
                await service.call("b1", "get", {"resource_id": "r"}, timeout=0.3)
            assert time.monotonic() - started < 5
            assert err.value.target == "h@b1" and err.value.timeout == 0.3
            assert ticks > 3  # the loop was never blocked
            ticking.cancel()
            fake.release()
            assert (await service.call("b1", "get", {"resource_id": "r"}))["id"] == "r"

    run(main())


def test_a_cancelled_call_leaves_the_service_serving():
    fake = FakeController.for_backend("h@b1")
    fake.hang("get")

    async def main() -> None:
        async with AsyncService(config()) as service:
            await service.call("b1", "create", {"resource_id": "r"})
            task = asyncio.create_task(service.call("b1", "get", {"resource_id": "r"}))
            await asyncio.to_thread(fake.wait_until, lambda c: c.in_flight == 1, THREADS)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            fake.release()
            await asyncio.to_thread(fake.wait_until, lambda c: c.in_flight == 0, THREADS)
            assert (await service.call("b1", "status"))["events"] == ["init_host"]

    run(main())


def test_journaled_calls_and_casts_with_keys():
    async def main() -> None:
        cfg = config(backends={"b1": backend("tests.support:JournaledManager")})
        async with AsyncService(cfg) as service:
            args = {"resource_id": "once"}
            first = await service.call("b1", "provision", args, key="k")
            assert await service.call("b1", "provision", args, key="k") == first
            op_id = await service.cast("b1", "provision", {"resource_id": "two"}, key="k2")
            assert op_id is not None and op_id == await service.cast(
                "b1", "provision", {"resource_id": "two"}, key="k2"
            )

    run(main())
    creates = [c.args[0] for c in FakeController.for_backend("h@b1").calls if c.op == "create"]
    assert creates.count("once") == 1 and creates.count("two") == 1


def test_wrap_future_completes_in_the_loop_from_another_thread():
    async def main() -> None:
        future = THREADS.future()
        waiter = wrap_future(future)
        loop_thread = threading.get_ident()
        seen: list[int] = []
        waiter.add_done_callback(lambda _: seen.append(threading.get_ident()))
        threading.Thread(target=future.set, args=("done",)).start()
        assert await waiter == "done"
        assert seen == [loop_thread]
        failing = THREADS.future()
        failing.set_exception(NotFound("x"))  # already done: still through the loop
        with pytest.raises(NotFound):
            await wrap_future(failing)

    run(main())


@pytest.fixture
def two_hosts(tmp_path) -> Iterator[tuple[list[Service], Registry]]:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"  # one registry for both "hosts"
    services = []
    for host in ("node1", "node2"):
        cfg = config(host=host, topic="shares", database_url=url)
        service = Service(cfg, runtime="threading").start(timeout=10)
        service.serve("tcp://127.0.0.1:0")
        services.append(service)
    registry = Registry(url, service_down_time=60)
    deadline = time.monotonic() + 20
    while not all(r.endpoint for r in registry.services(topic="shares")) or (
        len(registry.services(topic="shares")) < 2
    ):  # the rounds after serve() publish the endpoints
        assert time.monotonic() < deadline, "endpoints never reached the registry"
        time.sleep(0.05)
    yield services, registry
    registry.close()
    for service in services:
        assert service.stop(10)


def test_topic_client_calls_any_or_one_up_service(two_hosts):
    _, registry = two_hosts

    async def main() -> None:
        async with AsyncTopicClient(registry, "shares", timeout=10) as client:
            assert (await client.call("ping", target="node2@b1"))["name"] == "node2@b1"
            names = {(await client.call("ping"))["name"] for _ in range(20)}
            assert names <= {"node1@b1", "node2@b1"} and names
            assert await client.cast("record", {"note": "hi"}, target="node1@b1") is None
            await asyncio.to_thread(registry.set_disabled, "node1", "b1", True, "maintenance")
            assert {(await client.call("ping"))["name"] for _ in range(10)} == {"node2@b1"}
            with pytest.raises(NotFound, match=r"no service node1@b1 \(of topic 'shares'\)"):
                await client.call("ping", target="node1@b1")
        async with AsyncTopicClient(registry, "nothing-here") as nobody:
            with pytest.raises(NotFound, match="no service of topic 'nothing-here' is up"):
                await nobody.call("ping")

    run(main())


def test_a_registry_that_does_not_answer_is_a_deadline_not_a_hang(two_hosts):
    _, registry = two_hosts
    gate = threading.Event()

    class SlowRegistry:
        def services(self, **kw: Any) -> Any:
            gate.wait(10)
            return registry.services(**kw)

    async def main() -> None:
        client = AsyncTopicClient(SlowRegistry(), "shares", lookup_timeout=0.2)  # type: ignore[arg-type]
        async with client:
            with pytest.raises(DeadlineExceeded) as err:
                await client.call("ping")
            assert err.value.timeout == 0.2
            gate.set()
            assert (await client.call("ping"))["name"] in {"node1@b1", "node2@b1"}

    run(main())
