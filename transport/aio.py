"""`AsyncRpcClient`: the RPC client for asyncio applications, on `zmq.asyncio`.

    async with AsyncRpcClient("tcp://127.0.0.1:5555", timeout=10) as client:
        share = await client.call("local", "get_share", {"share_id": "projects"})

The same wire protocol, envelopes and errors as `RpcClient` (the shared parts
live in `transport._calls`): many requests in flight on one connection, each
with its own deadline; idempotency keys; CURVE; remote errors rebuilt through
the allowlist. A request whose caller was cancelled, or whose deadline passed,
is forgotten: its late reply is dropped and counted, and if it was still
waiting for a live connection it is never sent. Requests beyond
`max_in_flight` wait (within their deadline) for one to finish.

A client belongs to the event loop that first uses it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections import Counter, deque
from types import TracebackType
from typing import Any, Self

import zmq
import zmq.asyncio

from transport._calls import (
    WATCHED,
    configure_dealer,
    connection_news,
    open_clients,
    read_reply,
    reply_outcome,
    timeout_error,
)
from transport.errors import ConnectionClosed, TransportError
from transport.protocol import CALL, CAST, DEFAULT_LIMITS, PING, Limits, encode_request
from transport.security import ClientSecurity

__all__ = ["AsyncRpcClient", "InFlightLimit", "async_fanout"]


class InFlightLimit(TransportError):
    """`start_call` found `max_in_flight` requests in flight on this client."""

    retryable = True

    def __init__(self, endpoint: str, limit: int) -> None:
        super().__init__(
            f"{limit} requests are in flight to {endpoint} already", endpoint=endpoint, limit=limit
        )


class AsyncRpcClient:
    """A connection to one server endpoint, for coroutines of one event loop."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 60.0,
        limits: Limits = DEFAULT_LIMITS,
        security: ClientSecurity | None = None,
        heartbeat: float = 5.0,
        reconnect_interval: float = 0.1,
        max_in_flight: int = 10_000,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        """`context`: a ZeroMQ context to share (an inproc:// endpoint needs the
        server's); by default the process's asyncio context. Raises zmq.ZMQError
        for a malformed endpoint, as RpcClient does."""
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.endpoint = endpoint
        self.timeout = timeout
        self.limits = limits
        self.security = security
        self.max_in_flight = max_in_flight
        self.stats: Counter[str] = Counter()
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._prefix = os.urandom(6).hex()
        self._refused = False  # the server refused our key: connect again with the next call
        self._waiters: deque[asyncio.Future[None]] = deque()  # calls waiting for room
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        if context is None:
            actx: zmq.asyncio.Context = zmq.asyncio.Context.instance()
        elif isinstance(context, zmq.asyncio.Context):
            actx = context
        else:
            actx = zmq.asyncio.Context(context)  # a shadow: same context, asyncio sockets
        self._socket: zmq.asyncio.Socket = configure_dealer(
            actx.socket(zmq.DEALER),
            endpoint,
            limits=limits,
            security=security,
            heartbeat=heartbeat,
            reconnect_interval=reconnect_interval,
            connect=False,
        )
        # The connection's own events: a refused key or a dropped connection fails
        # what waits at once, not at its deadline (as RpcClient). Watched before
        # the socket connects, so that no event (the first handshake) is missed.
        self._monitor: zmq.asyncio.Socket | None = self._socket.get_monitor_socket(WATCHED)
        self._socket.connect(endpoint)
        self.connected: bool | None = None
        """True once a handshake succeeded, False once that connection dropped or
        was refused (until the next handshake), None before the first."""
        self._up: asyncio.Event | None = None  # set while connected; made in the loop

    # -- requests -------------------------------------------------------------------
    async def call(
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
        """Call `method` on `target`; the result, or its error, within `timeout`."""
        return await self._request(CALL, target, method, args, timeout, version, key, scope)

    async def cast(
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
        info = await self._request(CAST, target, method, args, timeout, version, key, scope)
        return info  # type: ignore[no-any-return]

    async def ping(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Round trip to the server; returns what it says about itself."""
        info = await self._request(PING, self.endpoint, "ping", None, timeout, None, None, None)
        return info or {}  # type: ignore[no-any-return]

    def start_call(
        self,
        target: str,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        version: str | None = None,
        key: str | None = None,
        scope: str | None = None,
    ) -> asyncio.Future[Any]:
        """Send a call now; await the returned future later (as `RpcClient.call_async`).

        Many calls in flight without a task each. Cancelling the future forgets
        the call. Raises InFlightLimit when `max_in_flight` calls are in flight
        (`call` waits for room instead).
        """
        if len(self._pending) >= self.max_in_flight:
            raise InFlightLimit(self.endpoint, self.max_in_flight)
        timeout = self.timeout if timeout is None else timeout
        loop = self._loop if self._loop is not None else self._start()
        return self._submit(
            CALL, target, method, args, timeout, version, key, scope, loop.time() + timeout
        )

    async def _request(
        self,
        kind: str,
        target: str,
        method: str,
        args: dict[str, Any] | None,
        timeout: float | None,
        version: str | None,
        key: str | None,
        scope: str | None,
    ) -> Any:
        timeout = self.timeout if timeout is None else timeout
        loop = self._loop if self._loop is not None else self._start()
        deadline = loop.time() + timeout
        if len(self._pending) >= self.max_in_flight:
            await self._wait_for_room(loop, deadline, target, method, timeout)
        return await self._submit(
            kind, target, method, args, timeout, version, key, scope, deadline
        )

    def _submit(
        self,
        kind: str,
        target: str,
        method: str,
        args: dict[str, Any] | None,
        timeout: float,
        version: str | None,
        key: str | None,
        scope: str | None,
        deadline: float,
    ) -> asyncio.Future[Any]:
        """Send one request; its future fails at `deadline` (loop time) if no reply came."""
        msg_id = f"{self._prefix}-{next(self._ids)}"
        body = encode_request(
            kind, msg_id, target, method, args, timeout, version, key, scope, self.limits
        )
        if self._closed:
            raise ConnectionClosed(self.endpoint)
        assert self._loop is not None
        reply: asyncio.Future[Any] = self._loop.create_future()
        self._pending[msg_id] = reply
        timer = self._loop.call_at(deadline, _expire, reply, target, method, timeout)
        if self._refused:  # libzmq gave up on the session: a new handshake, paced by calls
            self._reconnect()
        sent: asyncio.Future[Any] = self._socket.send(body)  # type: ignore[assignment]
        if sent.done():
            if (failed := sent.exception()) is not None:
                reply.set_exception(failed)
            reply.add_done_callback(lambda _: self._finished(msg_id, timer, None))
        else:  # no live connection yet: it waits in pyzmq's send queue
            sent.add_done_callback(lambda done: _send_failed(done, reply))
            reply.add_done_callback(lambda _: self._finished(msg_id, timer, sent))
        return reply

    def _finished(
        self, msg_id: str, timer: asyncio.TimerHandle, sent: asyncio.Future[Any] | None
    ) -> None:
        """A request ended (reply, error, deadline, cancellation): forget it, free its room."""
        timer.cancel()
        self._pending.pop(msg_id, None)
        if sent is not None:
            sent.cancel()  # still queued: never sent once its caller gave up
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def _wait_for_room(
        self,
        loop: asyncio.AbstractEventLoop,
        deadline: float,
        target: str,
        method: str,
        timeout: float,
    ) -> None:
        """Wait until fewer than max_in_flight requests are in flight, within the deadline."""
        while len(self._pending) >= self.max_in_flight:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                raise timeout_error(target, method, timeout) from None
            finally:
                if not waiter.done():
                    waiter.cancel()

    # -- replies ------------------------------------------------------------------------
    def _start(self) -> asyncio.AbstractEventLoop:
        """On first use: bind to the running loop, start reading replies (and socket events)."""
        if self._closed:
            raise ConnectionClosed(self.endpoint)
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._up = asyncio.Event()
        self._tasks.append(loop.create_task(self._read(), name=f"rpc-client {self.endpoint}"))
        if self._monitor is not None:
            self._tasks.append(loop.create_task(self._watch(self._monitor)))
        return loop

    async def _read(self) -> None:
        """Replies to their futures. After each awaited message, what else has
        arrived is read without waiting (no future per message: the cost of
        many in flight)."""
        recv = self._socket.recv_multipart
        drain = zmq.Socket.shadow(self._socket.underlying).recv_multipart
        on_frames = self._on_frames
        while True:
            try:
                on_frames(await recv())
                while True:
                    on_frames(drain(zmq.NOBLOCK))
            except zmq.Again:
                continue
            except zmq.ZMQError:  # the socket was closed
                return

    def _on_frames(self, frames: list[bytes]) -> None:
        envelope = read_reply(frames, self.limits, self.stats)
        if envelope is None:
            return
        reply = self._pending.pop(envelope.id, None)
        if reply is None or reply.done():
            self.stats["late_replies"] += 1  # its caller gave up: drop it
            return
        value, error = reply_outcome(envelope)
        if error is None:
            reply.set_result(value)
        else:
            reply.set_exception(error)

    async def _watch(self, monitor: zmq.asyncio.Socket) -> None:
        """The connection came up, dropped, or was refused: see `connection_news`."""
        from zmq.utils.monitor import parse_monitor_message

        while True:
            try:
                frames = await monitor.recv_multipart()
            except zmq.ZMQError:
                return
            try:
                event = parse_monitor_message(frames)
            except Exception:  # a malformed event: nothing to act on
                continue
            news = connection_news(event, self.endpoint, self.security, self.connected)
            if news is None:
                continue
            self.connected = news.connected
            if self._up is not None:
                if news.connected:
                    self._up.set()
                else:
                    self._up.clear()
            if news.counted is not None:
                self.stats[news.counted] += 1
            if news.refused:
                self._refused = True
            if news.error is not None:
                for reply in list(self._pending.values()):
                    if not reply.done():
                        reply.set_exception(news.error)

    async def wait_connected(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a live connection; True if there is one.

        Starts the client's reader (and watcher) if this is its first use.
        """
        if self.connected is None:
            if self._loop is None:
                self._start()
            assert self._up is not None
            try:
                async with asyncio.timeout(max(0.0, timeout)):
                    await self._up.wait()
            except TimeoutError:
                pass
        return bool(self.connected)

    def _reconnect(self) -> None:
        self._refused = False
        try:
            self._socket.disconnect(self.endpoint)
        except zmq.ZMQError:
            pass  # the refused session is gone already
        self._socket.connect(self.endpoint)

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection; requests in flight fail with ConnectionClosed."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        error = ConnectionClosed(self.endpoint)
        for reply in list(self._pending.values()):
            if not reply.done():
                reply.set_exception(error)
        self._pending.clear()
        if self._monitor is not None:
            try:
                self._socket.disable_monitor()
            except zmq.ZMQError:
                pass
            self._monitor.close(linger=0)
        self._socket.close(linger=0)

    async def aclose(self) -> None:
        """`close()`, then wait for the client's own tasks to end."""
        self.close()
        tasks, self._tasks = self._tasks, []
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _expire(reply: asyncio.Future[Any], target: str, method: str, timeout: float) -> None:
    if not reply.done():
        reply.set_exception(timeout_error(target, method, timeout))


def _send_failed(sent: asyncio.Future[Any], reply: asyncio.Future[Any]) -> None:
    """A queued send that failed (not one that was cancelled) fails its request."""
    if not sent.cancelled() and sent.exception() is not None and not reply.done():
        reply.set_exception(sent.exception())  # type: ignore[arg-type]


async def async_fanout(
    endpoints: list[str],
    target: str,
    method: str,
    args: dict[str, Any] | None = None,
    *,
    timeout: float = 10.0,
    **client_options: Any,
) -> dict[str, BaseException | None]:
    """Cast to every endpoint at once; per endpoint, None once accepted or the error.

    An endpoint whose client cannot even be made (a malformed address) gets
    that error as its outcome; the others are still cast to.
    """
    clients, outcome = open_clients(
        endpoints, lambda ep: AsyncRpcClient(ep, timeout=timeout, **client_options)
    )
    try:
        results = await asyncio.gather(
            *(client.cast(target, method, args) for client in clients.values()),
            return_exceptions=True,
        )
        for ep, result in zip(clients, results, strict=True):
            if isinstance(result, TransportError):
                outcome[ep] = result
            elif isinstance(result, BaseException):
                raise result  # not the transport's: a bug, or a cancellation
            else:
                outcome[ep] = None
        return outcome
    finally:
        for client in clients.values():
            await client.aclose()
