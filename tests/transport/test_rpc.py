"""The service over real ZeroMQ sockets (tcp and ipc on loopback), both runtimes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors import (
    DeadlineExceeded,
    MethodNotAllowed,
    RemoteError,
    Service,
    ServiceConfig,
    UnsupportedVersion,
)
from actors.errors import Busy, InvalidArguments, NotFound
from actors.rpc import rpc
from actors.testing import FakeController, wait_until
from tests.support import ResourceManager, backend
from transport import (
    AuthenticationFailed,
    ClientSecurity,
    InsecureBind,
    MessageTooLarge,
    RpcClient,
    RpcServer,
    ServerSecurity,
    fanout,
    generate_keypair,
)
from transport.errors import ProtocolError, TransportError


@pytest.fixture(params=["tcp", "ipc"])
def scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def endpoint_for(scheme: str, tmp_path) -> Callable[[str], str]:
    def make(name: str) -> str:
        if scheme == "tcp":
            return "tcp://127.0.0.1:0"
        return f"ipc://{tmp_path}/{name}.sock"

    return make


@pytest.fixture
def serve(runtime_name: str) -> Iterator[Callable[..., tuple[Service, RpcServer]]]:
    started: list[Service] = []

    def make(
        endpoint: str, backends: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[Service, RpcServer]:
        security = kw.pop("security", None)
        clock = kw.pop("clock", None)
        backends = backends or {"b1": backend()}
        config = ServiceConfig(
            host=kw.pop("host", "h"),
            runtime=runtime_name,
            enabled_backends=list(backends),
            backends=backends,
            **kw,
        )
        service = Service(config, clock=clock).start(timeout=10)
        started.append(service)
        return service, service.serve(endpoint, security=security)

    yield make
    for service in started:
        assert service.stop(10)


@pytest.fixture
def connect(runtime_name: str) -> Iterator[Callable[..., RpcClient]]:
    clients: list[RpcClient] = []

    def make(endpoint: str, **kw: Any) -> RpcClient:
        client = RpcClient(endpoint, green=runtime_name == "gevent", **kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_call_cast_and_ping(serve, connect, endpoint_for):
    _, server = serve(endpoint_for("a"))
    client = connect(server.endpoint, timeout=10)
    assert client.ping()["managers"] == ["h@b1"]
    assert client.call("h@b1", "create", {"resource_id": "r1", "size": 3}) == {
        "id": "r1",
        "size": 3,
    }
    assert client.call("b1", "create_and_count", {"resource_id": "r2"})["events"] == 2
    client.cast("b1", "record", {"note": "by cast"})
    assert client.call("b1", "status")["events"][-1] == "by cast"  # FIFO after the cast
    assert server.stats["call"] == 3 and server.stats["cast"] == 1


class TupleKeysManager(ResourceManager):
    @rpc
    def by_pair(self) -> dict[Any, Any]:
        return {("share", 1): "ok", "nested": [{("a", ("b", 2)): 3}]}


def test_a_result_with_tuple_keys_reaches_the_caller(serve, connect, endpoint_for):
    # Once counted as a bad reply: the caller waited out its deadline.
    _, server = serve(endpoint_for("a"), {"b1": backend(f"{__name__}:TupleKeysManager")})
    client = connect(server.endpoint, timeout=10)
    assert client.call("b1", "by_pair") == {("share", 1): "ok", "nested": [{("a", ("b", 2)): 3}]}
    assert client.stats["bad_replies"] == 0


def test_many_calls_in_flight_on_one_connection(serve, connect, endpoint_for):
    _, server = serve(endpoint_for("a"))
    client = connect(server.endpoint, timeout=20)
    futures = [
        client.call_async("b1", "create", {"resource_id": f"r{i}", "size": 0}) for i in range(200)
    ]
    assert [f.result()["id"] for f in futures] == [f"r{i}" for i in range(200)]


def test_errors_arrive_typed(serve, connect, endpoint_for):
    _, server = serve(endpoint_for("a"))
    client = connect(server.endpoint, timeout=10)
    with pytest.raises(MethodNotAllowed) as err:
        client.call("b1", "not_exposed")
    assert err.value.method == "not_exposed" and err.value.target == "h@b1"
    with pytest.raises(MethodNotAllowed):
        client.call("b1", "__init__")
    with pytest.raises(NotFound):
        client.call("h@elsewhere", "ping")
    with pytest.raises(InvalidArguments):
        client.call("b1", "create", {"resource_id": 1, "size": "big"})
    with pytest.raises(UnsupportedVersion) as version:
        client.call("b1", "status", version="2.0")
    assert version.value.supported == "1.2"
    with pytest.raises(UnsupportedVersion) as needs:
        client.call("b1", "status", version="1.1")  # status appeared in 1.2
    assert needs.value.needs == "1.2"
    assert client.call("b1", "status", version="1.2")["status_calls"] == 1
    with pytest.raises(RemoteError) as remote:  # ValueError is not on the allowlist
        client.call("b1", "fail", {"message": "disk on fire"})
    assert remote.value.type_name == "ValueError"
    assert not remote.value.retryable
    assert "disk on fire" in remote.value.remote_message
    assert "Traceback" in remote.value.traceback


def test_deadline_on_the_client_and_on_the_server(serve, connect, endpoint_for, runtime, clock):
    # The server's deadlines run on a virtual clock: what the server does at
    # expiry is then independent of how long the message spent in transit.
    _, server = serve(endpoint_for("a"), clock=clock)
    client = connect(server.endpoint, timeout=10)
    fake = FakeController.for_backend("h@b1")
    fake.hang("create")
    first = client.call_async("b1", "create", {"resource_id": "first"}, timeout=10)
    fake.wait_until(lambda c: c.in_flight == 1, runtime)
    late = client.call_async("b1", "create", {"resource_id": "late"}, timeout=0.2)
    client.call("b1", "ping")  # same connection, so 'late' now waits in the driver's mailbox
    with pytest.raises(DeadlineExceeded) as err:  # the client stops waiting at its deadline
        late.result()
    assert err.value.timeout == 0.2
    clock.advance(1.0)  # ... and on the server it has expired too
    fake.release()
    assert first.result()["id"] == "first"
    assert client.call("b1", "ping")["name"] == "h@b1"
    # the server did not start 'late': its deadline passed while it was queued
    assert [c.args[0] for c in fake.calls] == ["first"]


def test_a_late_reply_is_dropped_not_given_to_the_next_caller(
    serve, connect, endpoint_for, runtime
):
    _, server = serve(endpoint_for("a"))
    client = connect(server.endpoint, timeout=10)
    fake = FakeController.for_backend("h@b1")
    fake.hang("get")
    client.call("b1", "create", {"resource_id": "slow"})
    with pytest.raises(DeadlineExceeded):
        client.call("b1", "get", {"resource_id": "slow"}, timeout=0.2)
    fake.wait_until(lambda c: c.in_flight == 1, runtime)
    fake.release()
    fake.wait_until(lambda c: c.in_flight == 0, runtime)
    # The late reply to 'get' is on its way; until it is in, every caller gets
    # its own answer (a status reply may overtake it on the threading runtime).

    def late_reply_in() -> bool:
        assert client.call("b1", "ping")["name"] == "h@b1"
        return bool(client.stats["late_replies"] >= 1)

    wait_until(late_reply_in, message="the late reply")
    assert client.call("b1", "status")["status_calls"] == 1
    assert client.stats["late_replies"] == 1


def test_busy_mailbox_is_a_retryable_error_over_the_wire(serve, connect, endpoint_for, runtime):
    _, server = serve(
        endpoint_for("a"),
        {"b1": backend(manager="tests.support:HoldingManager", mailbox_capacity=2)},
    )
    client = connect(server.endpoint, timeout=10)
    fake = FakeController.for_backend("h@b1")
    held = client.call_async("b1", "hold")
    fake.wait_until(lambda c: "manager.hold" in c.ops(), runtime)
    queued = [client.call_async("b1", "ping") for _ in range(2)]
    with pytest.raises(Busy) as err:
        client.call("b1", "ping")
    assert err.value.retryable
    fake.release()
    assert held.result() == "released"
    assert all(f.result()["name"] == "h@b1" for f in queued)


def test_fanout_reaches_every_service_of_the_topic(serve, runtime_name, endpoint_for):
    services = [
        serve(endpoint_for(f"s{i}"), {"b1": backend()}, host=f"node{i}", topic="shares")
        for i in range(2)
    ]
    endpoints = [server.endpoint for _, server in services]
    outcome = fanout(
        endpoints,
        "shares",
        "record",
        {"note": "everyone"},
        timeout=10,
        green=runtime_name == "gevent",
    )
    assert outcome == {ep: None for ep in endpoints}
    for i, (service, _) in enumerate(services):
        assert service.call(f"node{i}@b1", "status")["events"][-1] == "everyone"
    # A malformed endpoint among them: its own outcome; the others are still reached.
    outcome = fanout(
        [endpoints[0], "tcp://no port here", endpoints[1]],
        "shares",
        "record",
        {"note": "again"},
        timeout=10,
        green=runtime_name == "gevent",
    )
    assert outcome[endpoints[0]] is None and outcome[endpoints[1]] is None
    assert outcome["tcp://no port here"] is not None
    assert services[1][0].call("node1@b1", "status")["events"][-1] == "again"


def test_client_reconnects_after_the_server_restarts(runtime_name, connect, tmp_path):
    import zmq

    ctx = zmq.Context()
    probe = ctx.socket(zmq.ROUTER)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(0)
    ctx.term()
    endpoint = f"tcp://127.0.0.1:{port}"

    def start() -> Service:
        config = ServiceConfig(
            host="h", runtime=runtime_name, enabled_backends=["b1"], backends={"b1": backend()}
        )
        service = Service(config).start(timeout=10)
        service.serve(endpoint)
        return service

    service = start()
    client = connect(endpoint, timeout=10)
    assert client.call("b1", "ping")["name"] == "h@b1"
    assert service.stop(10)
    service = start()
    try:
        assert client.call("b1", "ping", timeout=10)["name"] == "h@b1"
    finally:
        assert service.stop(10)


def test_curve_accepts_allowed_keys_and_refuses_others(serve, connect, tmp_path, runtime):
    keys = tmp_path / "keys"
    allowed = tmp_path / "allowed"
    generate_keypair(keys, "server")
    _, good_secret = generate_keypair(keys, "good")
    _, bad_secret = generate_keypair(keys, "bad")
    allowed.mkdir()
    (allowed / "good.key").write_text((keys / "good.key").read_text())
    security = ServerSecurity(keys / "server.key_secret", allowed)
    service, server = serve("tcp://127.0.0.1:0", security=security)
    good = connect(
        server.endpoint, timeout=10, security=ClientSecurity(good_secret, keys / "server.key")
    )
    assert good.call("b1", "record", {"note": "encrypted"}) is None
    bad = connect(
        server.endpoint, timeout=30, security=ClientSecurity(bad_secret, keys / "server.key")
    )
    # Told at the handshake (its deadline would have been DeadlineExceeded).
    with pytest.raises(AuthenticationFailed, match="client_keys_dir") as refused:
        bad.call("b1", "record", {"note": "should never arrive"})
    assert refused.value.status == 400 and not refused.value.retryable
    with pytest.raises(AuthenticationFailed):  # told again, not left to time out
        bad.call("b1", "record", {"note": "nor this"}, timeout=10)
    # Its key allowed now: the same client connects again and is served.
    (allowed / "bad.key").write_text((keys / "bad.key").read_text())
    assert bad.call("b1", "ping", timeout=10)["name"] == "h@b1"
    (allowed / "bad.key").unlink()
    plain = connect(server.endpoint, timeout=1)
    with pytest.raises(DeadlineExceeded):
        plain.call("b1", "record", {"note": "nor this"})
    # nothing from the refused clients was dispatched
    assert service.call("b1", "status")["events"] == ["init_host", "encrypted"]
    assert server.stats["call"] == 2  # "encrypted", and the ping once its key was allowed


def test_a_curve_handshake_cut_after_the_key_worked_is_not_an_authentication_failure(
    tmp_path,
):
    """libzmq reports a connection dropped during a CURVE handshake as it reports
    a wrong server key. Once a handshake with this key succeeded, it is the
    connection (a server restarting, a reset): requests wait, retryable, instead
    of failing at once with a non-retryable AuthenticationFailed."""
    import socket
    import threading

    class Echo:
        def dispatch(self, request: Any) -> _Done:
            return _Done(request.args)

        def info(self) -> dict[str, Any]:
            return {}

    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    generate_keypair(keys, "server")
    _, secret = generate_keypair(keys, "client")
    allowed.mkdir()
    (allowed / "client.key").write_text((keys / "client.key").read_text())
    security = ServerSecurity(keys / "server.key_secret", allowed)
    server = RpcServer(Echo(), "tcp://127.0.0.1:0", green=False, security=security).start()
    endpoint = server.endpoint
    port = int(endpoint.rsplit(":", 1)[1])
    client = RpcClient(
        endpoint, green=False, timeout=5, security=ClientSecurity(secret, keys / "server.key")
    )
    cutter = socket.socket()
    stop = threading.Event()
    try:
        assert client.call("t", "m", {"a": 1}) == {"a": 1}
        server.stop()
        # What answers on the port now takes each connection and drops it at once.
        cutter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        cutter.bind(("127.0.0.1", port))
        cutter.listen(16)
        cutter.settimeout(0.1)

        def cut() -> None:
            while not stop.is_set():
                try:
                    conn, _ = cutter.accept()
                except OSError:
                    continue
                conn.close()

        threading.Thread(target=cut, daemon=True).start()
        with pytest.raises(TransportError) as waited:
            client.call("t", "m", {"a": 2}, timeout=1.5)
        assert not isinstance(waited.value, AuthenticationFailed)
        assert waited.value.retryable
        assert client.stats["handshakes_cut"] >= 1
    finally:
        stop.set()
        cutter.close()
        client.close()


def test_binding_beyond_loopback_needs_curve_or_an_explicit_flag():
    class Nothing:
        def dispatch(self, request):  # pragma: no cover - never reached
            raise AssertionError

        def info(self):  # pragma: no cover
            return {}

    with pytest.raises(InsecureBind):
        RpcServer(Nothing(), "tcp://0.0.0.0:0")
    with pytest.raises(InsecureBind):
        RpcServer(Nothing(), "tcp://*:0")
    RpcServer(Nothing(), "tcp://0.0.0.0:0", allow_insecure=True)  # constructs; not started
    RpcServer(Nothing(), "tcp://127.0.0.2:0")
    RpcServer(Nothing(), "tcp://[::1]:0")


def test_oversized_request_is_refused_before_sending(serve, connect, endpoint_for):
    _, server = serve(endpoint_for("a"))
    client = connect(server.endpoint, timeout=10)
    with pytest.raises(MessageTooLarge):
        client.call("b1", "record", {"note": "x" * (2 << 20)})
    assert client.call("b1", "ping")["name"] == "h@b1"


def test_a_client_that_never_reads_does_not_hold_up_anyone_else(
    serve, connect, endpoint_for, runtime_name, runtime
):
    """Replies to a peer whose pipe is full wait aside (bounded) while everyone else
    is answered; the server stops on time even with them still waiting."""
    import msgpack
    import zmq
    import zmq.green

    _, server = serve(endpoint_for("a"))
    # Under gevent the server runs in this thread's hub: the flooder must yield.
    context = zmq.green.Context() if runtime_name == "gevent" else zmq.Context()
    flooder = context.socket(zmq.DEALER)
    try:
        flooder.setsockopt(zmq.LINGER, 0)
        flooder.setsockopt(zmq.RCVHWM, 1)
        flooder.setsockopt(zmq.RCVBUF, 4096)
        flooder.connect(server.endpoint)
        ping = msgpack.packb({"v": 1, "kind": "ping", "id": "flood"})
        for _ in range(30_000):
            flooder.send(ping)  # and never a recv
        client = connect(server.endpoint, timeout=5)

        def all_read() -> bool:  # all of them read and answered (or parked)
            assert client.ping()["managers"] == ["h@b1"]  # others are answered meanwhile
            return bool(server.stats["pings"] >= 30_000)

        wait_until(all_read, timeout=30, message=lambda: f"30000 pings read: {server.stats}")
        assert client.call("b1", "status")["status_calls"] == 1
        loop = server._loop
        assert loop is not None
        parked = loop._parked  # the flooder's pongs that found no room (if any did)
        assert parked.peers <= 1 and len(parked) <= parked.per_peer  # its own, bounded
    finally:
        flooder.close()
        context.term()


def test_requests_to_a_server_that_is_not_there_wait_in_one_bounded_line(runtime_name):
    """The client's socket has one peer: what cannot be sent waits in order, in one
    queue, retried a few times a second (not once per message), and is counted
    as dropped when the client closes."""
    import socket

    from transport.errors import ConnectionClosed

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = RpcClient(f"tcp://127.0.0.1:{port}", green=runtime_name == "gevent", timeout=60)
    try:
        futures = [client.call_async("b1", "ping", {}) for _ in range(3_000)]
        loop = client._loop
        assert loop is not None
        wait_until(  # the writer parks them as it takes them (on gevent: in this hub)
            lambda: len(loop._parked) >= 3_000,
            message=lambda: f"3000 parked sends, not {len(loop._parked)}",
        )
        assert loop._parked.peers == 1
    finally:
        client.close()
    assert all(isinstance(f._error, ConnectionClosed) for f in futures)
    assert loop.dropped_sends == 3_000


def test_parked_messages_keep_each_peers_order_bounds_and_expiry():
    """Parked, with a stand-in send: the logic the socket loops rely on."""
    import zmq

    from transport._io import Parked

    parked = Parked(per_peer=3, total=5, per_peer_bytes=1_000, total_bytes=10_000)
    parked.routed = True
    full: set[bytes] = {b"a", b"b"}
    sent: list[list[bytes]] = []

    def send(frames: list[bytes]) -> None:
        if frames[0] in full:
            raise zmq.Again()
        sent.append(frames)

    for i in range(4):  # a: 3 fit, the 4th is over the per-peer bound
        parked.park([b"a", b"%d" % i], expires=100.0)
    parked.park([b"b", b"x" * 2_000], expires=100.0)  # over the per-peer bytes
    parked.park([b"b", b"0"], expires=1.0)
    parked.park([b"b", b"1"], expires=100.0)
    parked.park([b"c", b"0"], expires=100.0)  # over the total count
    assert (len(parked), parked.peers, parked.dropped) == (5, 2, 3)
    assert parked.holds([b"a", b"later"]) and not parked.holds([b"c", b"x"])
    parked.retry(send, now=0.5)  # nobody has room
    assert sent == [] and len(parked) == 5
    assert not parked.due(now=0.5) and parked.due(now=1e9)  # one pass per RETRY_EVERY
    full.clear()
    parked.retry(send, now=2.0)  # room now; b's first has expired
    assert sent == [[b"a", b"0"], [b"a", b"1"], [b"a", b"2"], [b"b", b"1"]]
    assert (len(parked), parked.peers, parked.dropped) == (0, 0, 4)
    parked.park([b"a", b"late"], expires=100.0)
    parked.discard()  # the socket closes: what waits is counted as dropped
    assert (len(parked), parked.dropped) == (0, 5)
    unrouted = Parked()  # a DEALER: one peer, whatever the first frame
    unrouted.park([b"body-1"], expires=100.0)
    unrouted.park([b"body-2"], expires=100.0)
    assert unrouted.peers == 1 and unrouted.holds([b"body-3"])
    # A server's socket (a ROUTER) holds at most 1,000 per client, as protocol.md says;
    # a client's (a DEALER, one peer: its server) keeps its own bound.
    server_side, client_side = Parked(), Parked()
    server_side.for_socket(zmq.ROUTER)
    client_side.for_socket(zmq.DEALER)
    assert (server_side.routed, server_side.per_peer, server_side.total) == (True, 1_000, 50_000)
    assert (client_side.routed, client_side.per_peer) == (False, 10_000)


def test_a_green_reader_lets_the_others_run_during_a_long_burst():
    """Thousands of requests already queued: the reader yields now and then, so
    replies and actors do not wait for the whole burst to be read."""
    import gevent
    import gevent.event
    import zmq
    import zmq.green

    from transport._io import GreenSocketLoop

    context = zmq.green.Context()
    endpoint = "inproc://green-reader-burst"
    burst = 2000
    ticks = 0
    seen: list[int] = []
    all_read = gevent.event.Event()

    def on_frames(frames: list[bytes]) -> None:
        seen.append(ticks)
        if len(seen) == burst:
            all_read.set()

    def bind(ctx: Any) -> Any:
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.bind(endpoint)
        return sock

    def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            gevent.sleep(0)

    loop = GreenSocketLoop(bind, on_frames, "burst", context)
    loop.start()  # the reader greenlet does not run before this one yields
    sender = context.socket(zmq.DEALER)
    sender.setsockopt(zmq.SNDHWM, 0)
    ticker = None
    try:
        sender.connect(endpoint)
        for i in range(burst):
            sender.send(b"%d" % i)
        ticker = gevent.spawn(tick)
        assert all_read.wait(10)
        assert seen[-1] > seen[0]  # the ticker ran while the burst was read
    finally:
        if ticker is not None:
            ticker.kill()
        sender.close(linger=0)
        loop.stop()
        context.term()


class _Done:
    """A completed reply future, as a dispatcher returns (transport-level tests only)."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        callback(self)

    def exception(self) -> BaseException | None:
        return None

    def value(self) -> Any:
        return self._value


def test_a_drain_starting_while_a_call_is_dispatched_still_answers_it():
    import threading

    inside, release = threading.Event(), threading.Event()

    class Slow:
        def dispatch(self, request: Any) -> _Done:
            inside.set()
            assert release.wait(10)
            return _Done({"echo": request.args})

        def info(self) -> dict[str, Any]:
            return {}

    server = RpcServer(Slow(), "tcp://127.0.0.1:0", green=False).start()
    try:
        with RpcClient(server.endpoint, green=False, timeout=10) as client:
            reply = client.call_async("t", "m", {"a": 1})
            assert inside.wait(10)
            server.drain()  # between the server's draining check and the dispatch's end
            assert server.in_flight == 1  # counted already: a drain waits for it
            release.set()
            assert reply.result() == {"echo": {"a": 1}}
    finally:
        release.set()
        server.stop()


def test_a_server_stops_while_an_inproc_client_still_shares_its_context(caplog):
    """protocol.md §1: an inproc client uses the server's context. Stopping the
    server first used to wait for that client's socket for ever (the context's
    term()); now the stop returns and the context ends with the client."""
    import threading

    class Echo:
        def dispatch(self, request: Any) -> _Done:
            return _Done(request.args)

        def info(self) -> dict[str, Any]:
            return {}

    server = RpcServer(Echo(), "inproc://stopped-under-a-client", green=False).start()
    client = RpcClient(server.endpoint, green=False, timeout=2, context=server.context)
    try:
        assert client.call("t", "m", {"a": 1}) == {"a": 1}
        stopper = threading.Thread(target=server.stop, daemon=True)
        stopper.start()
        stopper.join(10)
        assert not stopper.is_alive(), "stop() hung on the shared context"
        assert any("context stays open" in r.getMessage() for r in caplog.records)
        with pytest.raises(TransportError):  # nobody serves: it fails within its deadline
            client.call("t", "m", {"a": 2}, timeout=0.5)
    finally:
        client.close()


def test_a_result_whose_conversion_raises_is_an_error_reply_not_silence():
    class Model:
        def model_dump(self, mode: str = "json") -> Any:
            raise RuntimeError("lazy field not loaded")

    class Unsendable:
        def dispatch(self, request: Any) -> _Done:
            return _Done(Model())

        def info(self) -> dict[str, Any]:
            return {}

    server = RpcServer(Unsendable(), "tcp://127.0.0.1:0", green=False).start()
    try:
        with (
            RpcClient(server.endpoint, green=False, timeout=10) as client,
            pytest.raises(ProtocolError, match="cannot encode reply: RuntimeError"),
        ):
            client.call("t", "m")
        assert server.stats["unencodable_results"] == 1 and server.in_flight == 0
    finally:
        server.stop()


def test_a_green_writer_retries_a_parked_peer_while_others_keep_it_busy():
    """A peer that had no room gets its reply as soon as it has room again, not
    after the steady stream to the other peers ends (or its reply expires)."""
    import os

    import gevent
    import zmq

    from transport._io import GreenSocketLoop

    class Socket:  # a ROUTER stand-in: peer A's pipe is full until `room`
        type = zmq.ROUTER

        def __init__(self) -> None:
            self.room = False
            self.sent: list[bytes] = []
            self.FD, self._unused = os.pipe()  # never readable: the reader waits on it

        def send(self, frame: bytes, flags: int = 0) -> None:
            if flags & zmq.SNDMORE:  # a message's first frame: the peer's identity
                if frame == b"A" and not self.room:
                    raise zmq.Again()
                self.sent.append(frame)

        def recv(self, flags: int = 0, copy: bool = True) -> bytes:
            raise zmq.Again()  # nothing ever comes in

        def get(self, option: int) -> int:
            return 0  # EVENTS: nothing to read

        def close(self, linger: int = 0) -> None:
            os.close(self.FD)
            os.close(self._unused)

    sock = Socket()
    loop = GreenSocketLoop(lambda context: sock, lambda frames: None, "test")
    loop.start()
    try:
        loop.send([b"A", b"reply"])
        gevent.sleep(0)  # the writer takes it: A has no room, so it is parked
        assert sock.sent == [] and len(loop._parked) == 1
        for _ in range(20_000):  # a steady stream to B, all queued at once
            loop.send([b"B", b"reply"])
        sock.room = True
        wait_until(lambda: len(sock.sent) >= 20_001, message="every send written")
        assert sock.sent.index(b"A") < 20_000  # not only once B's stream was done
    finally:
        loop.stop(0.1)
