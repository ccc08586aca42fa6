"""What a server holds is bounded in bytes, and a threaded client's callers read for each other.

Transport level (an `RpcServer` over a stand-in dispatcher), on both loops:
`green=True` serves in this thread's gevent hub, `green=False` in an I/O thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
import zmq

from transport import RpcClient, RpcServer
from transport.errors import ServerOverloaded


class Held:
    """A reply future the test completes when it likes."""

    def __init__(self, value: Any) -> None:
        self._value = value
        self._callbacks: list[Callable[[Any], None]] = []
        self.completed = False

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        if self.completed:
            callback(self)
        else:
            self._callbacks.append(callback)

    def complete(self) -> None:
        self.completed = True
        for callback in self._callbacks:
            callback(self)

    def exception(self) -> BaseException | None:
        return None

    def value(self) -> Any:
        return self._value


class Dispatcher:
    """Echoes the args; holds the reply of method 'hold' until release()."""

    def __init__(self) -> None:
        self.held: list[Held] = []

    def dispatch(self, request: Any) -> Held:
        future = Held(request.args)
        if request.method == "hold":
            self.held.append(future)
        else:
            future.complete()
        return future

    def release(self) -> None:
        held, self.held = self.held, []
        for future in held:
            future.complete()

    def info(self) -> dict[str, Any]:
        return {}


@pytest.fixture(params=[True, False], ids=["green", "thread"])
def green(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def served(green: bool) -> Iterator[tuple[RpcServer, Dispatcher]]:
    dispatcher = Dispatcher()
    server = RpcServer(
        dispatcher, "tcp://127.0.0.1:0", green=green, max_peer_bytes=2_000, max_held_bytes=2_500
    ).start()
    yield server, dispatcher
    dispatcher.release()
    server.stop()


def wait_for(condition: Callable[[], bool], green: bool, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        if green:
            import gevent

            gevent.sleep(0.01)  # the server's loop runs in this hub
        else:
            time.sleep(0.01)


def test_a_message_of_many_frames_is_answered_without_being_kept(served, green):
    """More frames than a request can have: read and let go frame by frame (never
    all copied at once), answered as bad framing; everyone else is served on."""
    server, _ = served
    from zmq import green as zmq_green

    context: Any = zmq_green.Context() if green else zmq.Context()
    sock = context.socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 10_000)
        sock.connect(server.endpoint)
        sock.send_multipart([b"x" * 100_000] * 40)
        reply = msgpack.unpackb(sock.recv())
        assert reply["kind"] == "error"
        assert reply["error"]["message"].endswith("expected one body frame, got 40")
        loop = server._loop
        assert loop is not None and loop.oversized == 1
        assert server.stats["bad_frames"] == 1
        with RpcClient(server.endpoint, green=green, timeout=10) as client:
            assert client.call("t", "echo", {"a": 1}) == {"a": 1}
    finally:
        sock.close()
        context.term()


def test_request_bytes_held_are_bounded_per_client_and_in_all(served, green):
    """Requests not yet answered count by size against their client's budget and
    the server's; beyond either, a retryable ServerOverloaded, and room comes back
    as answers go out."""
    server, dispatcher = served
    note = {"note": "n" * 500}  # a request of a little over 600 bytes
    with (
        RpcClient(server.endpoint, green=green, timeout=10) as first,
        RpcClient(server.endpoint, green=green, timeout=10) as second,
    ):
        held = [first.call_async("t", "hold", note) for _ in range(3)]
        with pytest.raises(ServerOverloaded) as err:  # the fourth passes 2,000 for this client
            first.call("t", "hold", note)
        assert err.value.retryable and err.value.scope == "this client's"
        assert first.call("t", "echo", {}) == {}  # a small one still fits
        held.append(second.call_async("t", "hold", note))
        with pytest.raises(ServerOverloaded) as err:  # 2,500 in all
            second.call("t", "hold", note)
        assert err.value.scope == "all clients'"
        assert server.stats["refused_overloaded"] == 2
        wait_for(lambda: len(dispatcher.held) == 4, green, "four held")
        dispatcher.release()
        assert [f.result() for f in held] == [note] * 4
        assert server.held_bytes == 0 and server._peer_bytes == {}
        assert server.in_flight == 0


def test_threads_sharing_a_client_read_each_others_replies(served, green):
    """A threaded client has no I/O thread: whichever caller waits reads for all."""
    if green:
        pytest.skip("threads share a threaded client; a green client serves greenlets")
    server, _ = served
    errors: list[BaseException] = []
    with RpcClient(server.endpoint, green=False, timeout=10) as client:

        def work(n: int) -> None:
            try:
                for i in range(200):
                    futures = [
                        client.call_async("t", "echo", {"n": n, "i": i, "k": k}) for k in (0, 1)
                    ]
                    assert [f.result() for f in futures] == [
                        {"n": n, "i": i, "k": 0},
                        {"n": n, "i": i, "k": 1},
                    ]
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors and not any(t.is_alive() for t in threads)
        assert not client.stats  # no bad or late replies


def test_a_threaded_clients_future_completes_without_a_waiter(served, green):
    """done() takes in the replies that are there: polling a future works too."""
    if green:
        pytest.skip("a green client's replies are read by its own greenlet")
    server, _ = served
    with RpcClient(server.endpoint, green=False, timeout=10) as client:
        future = client.call_async("t", "echo", {"x": 1})
        deadline = time.monotonic() + 10
        while not future.done():
            assert time.monotonic() < deadline
            time.sleep(0.001)
        assert future.result() == {"x": 1}


def test_a_closed_clients_waiting_caller_gets_connection_closed(served, green):
    from transport.errors import ConnectionClosed

    server, _ = served
    client = RpcClient(server.endpoint, green=green, timeout=10)
    future = client.call_async("t", "hold", {})
    if green:
        import gevent

        closer = gevent.spawn_later(0.05, client.close)
        with pytest.raises(ConnectionClosed):
            future.result()
        closer.join()
    else:
        closer = threading.Timer(0.05, client.close)
        closer.start()
        with pytest.raises(ConnectionClosed):
            future.result()  # this caller was reading when the client closed
        closer.join()
