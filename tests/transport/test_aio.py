"""`AsyncRpcClient` against a live server (tcp and ipc on loopback).

The server is a `Service` on the threading runtime in this process (a gevent
server would need its hub to run, which an asyncio loop never yields to).
Each test is a coroutine run by `asyncio.run`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors import (
    DeadlineExceeded,
    InvalidArguments,
    MethodNotAllowed,
    NotFound,
    RemoteError,
    Service,
    ServiceConfig,
    UnsupportedVersion,
)
from actors.runtime import get_runtime
from actors.testing import FakeController
from tests.support import backend
from transport import (
    AsyncRpcClient,
    AuthenticationFailed,
    ClientSecurity,
    ConnectionClosed,
    MessageTooLarge,
    RpcServer,
    ServerSecurity,
    async_fanout,
    generate_keypair,
)
from transport.aio import InFlightLimit

THREADS = get_runtime("threading")


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run one test's coroutine, with a deadline for the whole of it."""
    return asyncio.run(asyncio.wait_for(coro, 60))


async def wait_until(fake: FakeController, predicate: Callable[[FakeController], bool]) -> None:
    """FakeController.wait_until, off the event loop (it blocks its thread)."""
    await asyncio.to_thread(fake.wait_until, predicate, THREADS)


@pytest.fixture(params=["tcp", "ipc"])
def endpoint_for(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    def make(name: str) -> str:
        if request.param == "tcp":
            return "tcp://127.0.0.1:0"
        return f"ipc://{tmp_path}/{name}.sock"

    return make


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[Service, RpcServer]]]:
    started: list[Service] = []

    def make(
        endpoint: str, backends: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[Service, RpcServer]:
        security = kw.pop("security", None)
        backends = backends or {"b1": backend()}
        config = ServiceConfig(
            host=kw.pop("host", "h"),
            runtime="threading",
            enabled_backends=list(backends),
            backends=backends,
            **kw,
        )
        service = Service(config).start(timeout=10)
        started.append(service)
        return service, service.serve(endpoint, security=security)

    yield make
    for service in started:
        assert service.stop(10)


def test_call_cast_and_ping(serve, endpoint_for):
    _, server = serve(endpoint_for("a"))

    async def main() -> None:
        async with AsyncRpcClient(server.endpoint, timeout=10) as client:
            assert (await client.ping())["managers"] == ["h@b1"]
            created = await client.call("h@b1", "create", {"resource_id": "r1", "size": 3})
            assert created == {"id": "r1", "size": 3}
            assert await client.cast("b1", "record", {"note": "by cast"}) is None
            assert (await client.call("b1", "status"))["events"][-1] == "by cast"
            assert not client.stats

    run(main())
    assert server.stats["call"] == 2 and server.stats["cast"] == 1


def test_many_tasks_share_one_connection(serve, endpoint_for):
    _, server = serve(endpoint_for("a"))

    async def main() -> None:
        async with AsyncRpcClient(server.endpoint, timeout=20) as client:
            results = await asyncio.gather(
                *(
                    client.call("b1", "create", {"resource_id": f"r{i}", "size": 0})
                    for i in range(500)
                )
            )
            assert [r["id"] for r in results] == [f"r{i}" for i in range(500)]
            # Futures without a task each (the shape of RpcClient.call_async).
            futures = [client.start_call("b1", "get", {"resource_id": f"r{i}"}) for i in range(500)]
            assert [(await f)["id"] for f in futures] == [f"r{i}" for i in range(500)]
            assert not client._pending and not client.stats

    run(main())


def test_errors_arrive_typed(serve, endpoint_for):
    _, server = serve(endpoint_for("a"))

    async def main() -> None:
        async with AsyncRpcClient(server.endpoint, timeout=10) as client:
            with pytest.raises(MethodNotAllowed) as err:
                await client.call("b1", "not_exposed")
            assert err.value.method == "not_exposed" and err.value.target == "h@b1"
            with pytest.raises(NotFound):
                await client.call("h@elsewhere", "ping")
            with pytest.raises(InvalidArguments):
                await client.call("b1", "create", {"resource_id": 1, "size": "big"})
            with pytest.raises(UnsupportedVersion):
                await client.call("b1", "status", version="2.0")
            with pytest.raises(RemoteError) as remote:  # ValueError is not on the allowlist
                await client.call("b1", "fail", {"message": "disk on fire"})
            assert remote.value.type_name == "ValueError" and not remote.value.retryable
            assert "Traceback" in remote.value.traceback
            with pytest.raises(MessageTooLarge):  # refused before it is sent
                await client.call("b1", "record", {"note": "x" * (2 << 20)})
            assert (await client.call("b1", "ping"))["name"] == "h@b1"

    run(main())


def test_a_deadline_fails_the_caller_and_the_late_reply_is_dropped(serve, endpoint_for):
    _, server = serve(endpoint_for("a"))
    fake = FakeController.for_backend("h@b1")
    fake.hang("get")

    async def main() -> None:
        async with AsyncRpcClient(server.endpoint, timeout=10) as client:
            await client.call("b1", "create", {"resource_id": "slow"})
            with pytest.raises(DeadlineExceeded) as err:
                await client.call("b1", "get", {"resource_id": "slow"}, timeout=0.2)
            assert err.value.timeout == 0.2 and err.value.target == "b1"
            assert not client._pending  # forgotten at once
            await wait_until(fake, lambda c: c.in_flight == 1)
            fake.release()
            await wait_until(fake, lambda c: c.in_flight == 0)
            # Until the late reply is in, every caller still gets its own answer.
            while client.stats["late_replies"] < 1:
                assert (await client.call("b1", "ping"))["name"] == "h@b1"
            assert (await client.call("b1", "status"))["status_calls"] == 1

    run(main())


def test_a_cancelled_call_drops_its_reply(serve, endpoint_for):
    _, server = serve(endpoint_for("a"))
    fake = FakeController.for_backend("h@b1")
    fake.hang("get")

    async def main() -> None:
        async with AsyncRpcClient(server.endpoint, timeout=10) as client:
            await client.call("b1", "create", {"resource_id": "r"})
            task = asyncio.create_task(client.call("b1", "get", {"resource_id": "r"}))
            await wait_until(fake, lambda c: c.in_flight == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not client._pending
            fake.release()
            while client.stats["late_replies"] < 1:  # the reply came, and nobody got it
                assert (await client.call("b1", "ping"))["name"] == "h@b1"
            assert (await client.call("b1", "get", {"resource_id": "r"}))["id"] == "r"

    run(main())


def test_a_request_given_up_before_a_server_came_is_never_sent(serve, tmp_path):
    endpoint = f"ipc://{tmp_path}/later.sock"

    async def main() -> None:
        async with AsyncRpcClient(endpoint, timeout=10) as client:
            with pytest.raises(DeadlineExceeded):  # no server: it waits, then gives up
                await client.call("b1", "record", {"note": "timed out"}, timeout=0.2)
            cancelled = asyncio.create_task(client.call("b1", "record", {"note": "cancelled"}))
            while not client._pending:  # until the task has queued its send
                await asyncio.sleep(0)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            await asyncio.to_thread(serve, endpoint)
            await client.call("b1", "record", {"note": "served"})
            assert (await client.call("b1", "status"))["events"] == ["init_host", "served"]

    run(main())


def test_an_idempotency_key_returns_the_first_outcome(serve, endpoint_for):
    _, server = serve(endpoint_for("a"), {"b1": backend("tests.support:JournaledManager")})

    async def main() -> None:
        async with AsyncRpcClient(server.endpoint, timeout=10) as client:
            args = {"resource_id": "once", "size": 2}
            first = await client.call("b1", "provision", args, key="k-1")
            again = await client.call("b1", "provision", args, key="k-1")
            assert first == again == {"id": "once", "size": 2}
            accepted = await client.cast("b1", "provision", {"resource_id": "two"}, key="k-2")
            assert accepted is not None and accepted["operation"]

    run(main())
    fake = FakeController.for_backend("h@b1")
    assert [c.args[0] for c in fake.calls if c.op == "create"].count("once") == 1


def test_curve_accepts_allowed_keys_and_refuses_others(serve, tmp_path):
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    generate_keypair(keys, "server")
    _, good_secret = generate_keypair(keys, "good")
    _, bad_secret = generate_keypair(keys, "bad")
    allowed.mkdir()
    (allowed / "good.key").write_text((keys / "good.key").read_text())
    security = ServerSecurity(keys / "server.key_secret", allowed)
    service, server = serve("tcp://127.0.0.1:0", security=security)

    async def main() -> None:
        good = AsyncRpcClient(
            server.endpoint, timeout=10, security=ClientSecurity(good_secret, keys / "server.key")
        )
        bad = AsyncRpcClient(
            server.endpoint, timeout=30, security=ClientSecurity(bad_secret, keys / "server.key")
        )
        async with good, bad:
            assert await good.call("b1", "record", {"note": "encrypted"}) is None
            # Told at the handshake, not after its 30 s deadline.
            with pytest.raises(AuthenticationFailed, match="client_keys_dir") as refused:
                await bad.call("b1", "record", {"note": "never arrives"})
            assert refused.value.status == 400 and not refused.value.retryable
            (allowed / "bad.key").write_text((keys / "bad.key").read_text())
            assert (await bad.call("b1", "ping", timeout=10))["name"] == "h@b1"

    run(main())
    assert service.call("b1", "status")["events"] == ["init_host", "encrypted"]


def test_fanout_casts_to_every_endpoint(serve, endpoint_for):
    services = [serve(endpoint_for(f"s{i}"), host=f"node{i}", topic="shares") for i in range(2)]
    endpoints = [server.endpoint for _, server in services]

    async def main() -> dict[str, BaseException | None]:
        return await async_fanout(
            [endpoints[0], "tcp://no port here", endpoints[1]],
            "shares",
            "record",
            {"note": "everyone"},
            timeout=10,
        )

    outcome = run(main())
    assert outcome[endpoints[0]] is None and outcome[endpoints[1]] is None
    assert outcome["tcp://no port here"] is not None
    for i, (service, _) in enumerate(services):
        assert service.call(f"node{i}@b1", "status")["events"][-1] == "everyone"


def test_requests_beyond_max_in_flight_wait_within_their_deadline(serve, endpoint_for):
    _, server = serve(endpoint_for("a"), {"b1": backend("tests.support:HoldingManager")})
    fake = FakeController.for_backend("h@b1")

    async def main() -> None:
        async with AsyncRpcClient(server.endpoint, timeout=10, max_in_flight=1) as client:
            held = asyncio.create_task(client.call("b1", "hold"))
            await wait_until(fake, lambda c: "manager.hold" in c.ops())
            with pytest.raises(DeadlineExceeded):  # no room before its deadline
                await client.call("b1", "ping", timeout=0.2)
            with pytest.raises(InFlightLimit) as full:  # start_call cannot wait: told at once
                client.start_call("b1", "ping")
            assert full.value.retryable and full.value.limit == 1
            waiting = asyncio.create_task(client.call("b1", "ping"))
            fake.release()
            assert await held == "released"
            assert (await waiting)["name"] == "h@b1"

    run(main())


def test_close_fails_what_is_in_flight_and_what_comes_after(serve, endpoint_for):
    _, server = serve(endpoint_for("a"), {"b1": backend("tests.support:HoldingManager")})
    fake = FakeController.for_backend("h@b1")

    async def main() -> None:
        client = AsyncRpcClient(server.endpoint, timeout=10)
        held = asyncio.create_task(client.call("b1", "hold"))
        await wait_until(fake, lambda c: "manager.hold" in c.ops())
        await client.aclose()
        with pytest.raises(ConnectionClosed):
            await held
        with pytest.raises(ConnectionClosed):
            await client.call("b1", "ping")
        fake.release()

    run(main())
