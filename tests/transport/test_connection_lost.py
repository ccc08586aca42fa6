"""A client learns from its connection that the server went away: what was in
flight fails at once with ConnectionLost, not at its deadline."""

from __future__ import annotations

import time

import pytest
import zmq

from actors.testing import wait_until
from transport.client import RpcClient
from transport.errors import ConnectionLost


@pytest.mark.parametrize("green", [False, True], ids=["threaded", "green"])
def test_requests_in_flight_fail_with_connection_lost_when_the_server_goes(green: bool) -> None:
    context = zmq.Context()
    server = context.socket(zmq.ROUTER)  # takes requests and never answers
    server.setsockopt(zmq.LINGER, 0)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    client = RpcClient(f"tcp://127.0.0.1:{port}", green=green, timeout=30)
    try:
        assert client.wait_connected(10) and client.connected is True
        futures = [client.call_async("t", "m", {"n": n}) for n in range(3)]
        # the requests are at the server (polled: a green client sends from the hub)
        wait_until(lambda: server.poll(0), timeout=10, interval=0.01, message="the requests")
        server.close()
        closed = time.monotonic()
        for future in futures:
            with pytest.raises(ConnectionLost) as lost:
                future.result()
            assert lost.value.retryable and lost.value.details["endpoint"] == client.endpoint
        assert time.monotonic() - closed < 2.0
        assert client.connected is False and client.stats["connections_lost"] == 1
    finally:
        client.close()
        context.term()


def test_a_request_made_after_the_drop_is_not_failed_by_it() -> None:
    """The drop is news about the old connection only: a later request waits for the
    next one (within its deadline) and is answered there."""
    context = zmq.Context()
    server = context.socket(zmq.ROUTER)
    server.setsockopt(zmq.LINGER, 0)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    client = RpcClient(f"tcp://127.0.0.1:{port}", green=False, timeout=30)
    try:
        assert client.wait_connected(10)
        server.close()

        def drop_noticed() -> bool:  # a request sent before this could go down with it
            client.poll_events()
            return client.connected is False

        wait_until(drop_noticed, timeout=10, interval=0.01, message="the drop noticed")
        server = context.socket(zmq.ROUTER)
        server.setsockopt(zmq.LINGER, 0)

        def rebound() -> bool:  # libzmq frees the port in its own thread, a moment later
            try:
                server.bind(f"tcp://127.0.0.1:{port}")
            except zmq.ZMQError:
                return False
            return True

        wait_until(rebound, timeout=10, interval=0.01, message="the port free again")
        future = client.call_async("t", "m", timeout=10)
        # it reached the new server: not failed by the old drop
        wait_until(lambda: server.poll(0), timeout=10, interval=0.01, message="the request")
        assert not future.done()
    finally:
        server.close()
        client.close()
        context.term()


def test_an_asyncio_client_learns_of_the_drop_too() -> None:
    """AsyncRpcClient reads the same connection events: in flight fails at once."""
    import asyncio

    from transport.aio import AsyncRpcClient

    context = zmq.Context()
    server = context.socket(zmq.ROUTER)  # takes requests and never answers
    server.setsockopt(zmq.LINGER, 0)
    port = server.bind_to_random_port("tcp://127.0.0.1")

    async def main() -> None:
        nonlocal server
        async with AsyncRpcClient(f"tcp://127.0.0.1:{port}", timeout=30) as client:
            assert await client.wait_connected(10) and client.connected is True
            futures = [client.start_call("t", "m", {"n": n}) for n in range(3)]
            deadline = time.monotonic() + 10
            while not server.poll(0):  # the requests reach the server
                assert time.monotonic() < deadline, "the requests never arrived"
                await asyncio.sleep(0.01)
            server.close()
            closed = time.monotonic()
            for future in futures:
                with pytest.raises(ConnectionLost) as lost:
                    await future
                assert lost.value.details["endpoint"] == client.endpoint
            assert time.monotonic() - closed < 2.0
            assert client.connected is False and client.stats["connections_lost"] == 1

    try:
        asyncio.run(main())
    finally:
        server.close()
        context.term()
