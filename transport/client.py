"""`RpcClient`: calls, casts and pings over one DEALER connection.

Many requests can be in flight at once on one connection (pipelining); each
has its own deadline. A reply that arrives after its request timed out is
dropped and counted, never handed to a later caller. ZeroMQ reconnects by
itself; with IMMEDIATE set, requests are only queued to a live connection, so
a request made while the server is down waits (within its deadline) instead
of being delivered to a restarted server long after the caller gave up.
Works under gevent (`green=True`) and plain threads.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import zmq

from transport._calls import (
    WATCHED,
    configure_dealer,
    connection_news,
    open_clients,
    read_reply,
    reply_outcome,
    timeout_error,
)
from transport._direct import DirectSocket
from transport._io import GreenSocketLoop, Shape, SocketLoop, running_under_gevent
from transport.errors import (
    ConnectionClosed,
    TransportError,
)
from transport.protocol import CALL, CAST, DEFAULT_LIMITS, PING, Limits, encode_request
from transport.security import ClientSecurity

__all__ = ["ClientFuture", "RpcClient", "fanout"]


class ClientFuture:
    """The pending outcome of one request."""

    __slots__ = (
        "_done",
        "_error",
        "_event",
        "_forget",
        "_read",
        "_value",
        "_wait",
        "deadline",
        "id",
        "method",
        "target",
        "timeout",
    )

    def __init__(
        self,
        event: Any,
        msg_id: str,
        target: str,
        method: str,
        timeout: float,
        wait: Callable[[Callable[[], bool], float], bool] | None = None,
        read: Callable[[], None] | None = None,
    ) -> None:
        self._forget: Any = None
        self._event = event  # set when done, for waiters that wait on it (green clients)
        self._wait = wait  # or: wait(done, deadline) reads replies itself (threaded clients)
        self._read = read  # and read() takes in what is there without waiting
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None
        self.id, self.target, self.method, self.timeout = msg_id, target, method, timeout
        self.deadline = time.monotonic() + timeout

    def done(self) -> bool:
        if not self._done and self._read is not None:
            self._read()  # a threaded client: take in the replies that are there
        return self._done

    def _is_done(self) -> bool:
        return self._done

    def _resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        if not self._done:
            self._value, self._error = value, error
            self._done = True
            if self._event is not None:
                self._event.set()

    def result(self) -> Any:
        """Wait until the reply or the deadline; return the value or raise the error."""
        if not self._done:
            if self._wait is not None:
                self._wait(self._is_done, self.deadline)
            else:
                self._event.wait(max(0.0, self.deadline - time.monotonic()))
            if not self._done:
                if self._forget is not None:
                    self._forget(self)  # a late reply will now be dropped
                raise timeout_error(self.target, self.method, self.timeout)
        if self._error is not None:
            raise self._error
        return self._value


class RpcClient:
    """A connection to one server endpoint."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 60.0,
        green: bool | None = None,
        limits: Limits = DEFAULT_LIMITS,
        security: ClientSecurity | None = None,
        heartbeat: float = 5.0,
        reconnect_interval: float = 0.1,
        context: Any = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.green = running_under_gevent() if green is None else green
        self.limits = limits
        self.security = security
        self.heartbeat = heartbeat
        self.reconnect_interval = reconnect_interval
        self.stats: Counter[str] = Counter()
        self._pending: dict[str, ClientFuture] = {}
        self._refused = False  # the server refused our key: connect again with the next call
        self._connected_event = self._event()  # green clients: set at the first handshake
        self.connected: bool | None = None
        """True once a handshake succeeded, False once that connection dropped
        (until the next handshake), None before the first: see `_on_socket_event`."""
        self._ids = itertools.count(1)
        self._prefix = os.urandom(6).hex()
        self._lock = threading.Lock()
        # inproc:// endpoints need the server's context (RpcServer.context).
        # A reply is one frame; anything larger is dropped as it is read.
        shape = Shape(max_frames=1, max_bytes=limits.max_message_bytes + 4096)
        name = f"rpc-client {endpoint}"
        self._direct: DirectSocket | None = None
        self._loop: SocketLoop | None
        if self.green:
            self._loop = GreenSocketLoop(
                self._make_socket, self._on_frames, name, context, shape, self._on_oversized
            )
        else:  # the calling threads use the socket themselves: no I/O thread
            self._loop = self._direct = DirectSocket(
                self._make_socket, self._on_frames, name, context, shape, self._on_oversized
            )
        # The connection's own events: a refused key or a dropped connection fails
        # what waits at once, not at its deadline.
        self._loop.on_event = self._on_socket_event
        self._loop.monitored = WATCHED
        self._loop.connect_to = self.endpoint  # once the monitor watches
        self._loop.start()

    def _make_socket(self, context: Any) -> Any:
        return configure_dealer(
            context.socket(zmq.DEALER),
            self.endpoint,
            limits=self.limits,
            security=self.security,
            heartbeat=self.heartbeat,
            reconnect_interval=self.reconnect_interval,
            connect=False,
        )

    def _event(self) -> Any:
        if self.green:
            import gevent.event

            return gevent.event.Event()
        return None  # threaded: the caller reads its reply itself (DirectSocket.wait)

    # -- requests -------------------------------------------------------------------
    def call_async(
        self,
        target: str,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        version: str | None = None,
        key: str | None = None,
        scope: str | None = None,
        _kind: str = CALL,
    ) -> ClientFuture:
        """Send a request and return its future at once (pipelining)."""
        timeout = self.timeout if timeout is None else timeout
        msg_id = f"{self._prefix}-{next(self._ids)}"
        direct = self._direct
        future = ClientFuture(
            self._event(),
            msg_id,
            target,
            method,
            timeout,
            None if direct is None else direct.wait,
            None if direct is None else direct.read_ready,
        )
        future._forget = self._forget
        body = encode_request(
            _kind, msg_id, target, method, args, timeout, version, key, scope, self.limits
        )
        loop = self._loop
        if loop is None:
            future._resolve(error=ConnectionClosed(self.endpoint))
            return future
        # Take in the connection's news first: a drop reported before this request
        # must not fail it (it waits for the next connection, within its deadline).
        loop.read_events()
        with self._lock:
            self._pending[msg_id] = future
        if self._refused:  # libzmq gave up on the session: a new handshake, paced by calls
            self._refused = False
            loop.reconnect(self.endpoint)
        loop.send([body], expires=future.deadline)
        return future

    def call(
        self,
        target: str,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        version: str | None = None,
        key: str | None = None,
        scope: str | None = None,
    ) -> Any:
        """Call `method` on `target` and wait (at most `timeout`) for the result.

        `key`: the idempotency key of a journaled method; `scope`: across which
        managers it is one operation (the target when None; protocol §6).
        """
        future = self.call_async(
            target, method, args, timeout=timeout, version=version, key=key, scope=scope
        )
        return self._wait(future)

    def cast(
        self,
        target: str,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        version: str | None = None,
        key: str | None = None,
        scope: str | None = None,
    ) -> dict[str, Any] | None:
        """Fire and forget; returns once the server accepted it (raises if refused).

        Returns what the ack says, if anything: for a journaled method
        {"operation": id}.
        """
        future = self.call_async(
            target,
            method,
            args,
            timeout=timeout,
            version=version,
            key=key,
            scope=scope,
            _kind=CAST,
        )
        return self._wait(future)  # type: ignore[no-any-return]

    def ping(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Round trip to the server; returns what it says about itself."""
        future = self.call_async(self.endpoint, "ping", timeout=timeout, _kind=PING)
        return self._wait(future) or {}  # type: ignore[no-any-return]

    def wait_connected(self, timeout: float) -> bool:
        """Wait at most `timeout` for the first handshake (or the connection's loss);
        True once connected. Returns at once if that is known already."""
        deadline = time.monotonic() + timeout
        if self._direct is not None and self._loop is not None:
            self._direct.wait(lambda: self.connected is not None, deadline)
        else:
            while self.connected is None and self._loop is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._connected_event.wait(remaining)
        return bool(self.connected)

    def poll_events(self) -> None:
        """Take in the connection's news now (threaded clients read it only while
        someone waits), so `connected` is current; never waits."""
        if self._direct is not None and self._loop is not None:
            self._direct.read_ready()

    def _wait(self, future: ClientFuture) -> Any:
        """The result of one request; forgotten either way, so a late reply is dropped."""
        try:
            return future.result()
        finally:
            self._forget(future)

    def _forget(self, future: ClientFuture) -> None:
        with self._lock:
            self._pending.pop(future.id, None)

    # -- replies ------------------------------------------------------------------------
    def _on_oversized(self, frames: list[bytes], count: int, size: int) -> None:
        self.stats["bad_frames"] += 1

    def _on_frames(self, frames: list[bytes]) -> None:
        envelope = read_reply(frames, self.limits, self.stats)
        if envelope is None:
            return
        with self._lock:
            future = self._pending.pop(envelope.id, None)
        if future is None:
            self.stats["late_replies"] += 1  # its caller gave up: drop it
            return
        value, error = reply_outcome(envelope)
        future._resolve(value, error)

    def _on_socket_event(self, event: dict[str, Any]) -> None:
        """In the socket's loop: the connection came up, dropped, or its handshake failed."""
        news = connection_news(event, self.endpoint, self.security, self.connected)
        if news is None:
            return
        self.connected = news.connected
        if news.connected and self._connected_event is not None:
            self._connected_event.set()
        if news.counted is not None:
            self.stats[news.counted] += 1
        if news.refused:
            self._refused = True
        if news.error is not None:
            self._fail_pending(news.error)

    def _fail_pending(self, error: TransportError) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future._resolve(error=error)

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection; requests still in flight fail with ConnectionClosed."""
        loop, self._loop = self._loop, None
        with self._lock:  # first, so a caller reading replies sees its future end
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future._resolve(error=ConnectionClosed(self.endpoint))
        if loop is not None:
            loop.stop(0.1)

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fanout(
    endpoints: list[str],
    target: str,
    method: str,
    args: dict[str, Any] | None = None,
    *,
    timeout: float = 10.0,
    **client_options: Any,
) -> dict[str, BaseException | None]:
    """Cast to every endpoint; per endpoint, None once accepted or the error.

    An endpoint whose client cannot even be made (a malformed address) gets
    that error as its outcome; the others are still cast to.
    """
    clients, outcome = open_clients(
        endpoints, lambda ep: RpcClient(ep, timeout=timeout, **client_options)
    )
    try:
        futures = {
            ep: client.call_async(target, method, args, timeout=timeout, _kind=CAST)
            for ep, client in clients.items()
        }
        for ep, future in futures.items():
            try:
                future.result()
                outcome[ep] = None
            except TransportError as exc:
                outcome[ep] = exc
        return outcome
    finally:
        for client in clients.values():
            client.close()
