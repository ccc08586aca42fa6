"""Socket loops: the only code that touches a ZeroMQ socket.

A ZeroMQ socket must be used by one thread (and under gevent, by at most one
reading and one writing greenlet). A `SocketLoop` owns one socket and offers a
thread-safe / greenlet-safe `send(frames)`; incoming messages go to a callback.

- `GreenSocketLoop`: `zmq.green`, one reader and one writer greenlet.
- `ThreadSocketLoop`: plain `zmq`, one I/O thread that polls the socket and a
  wake-up pipe; other threads queue frames and poke the pipe.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

log = logging.getLogger("transport.io")

SocketFactory = Callable[[Any], Any]
"""Given a context, return a configured, bound or connected socket."""
OnFrames = Callable[[list[bytes]], None]

_STOP: Any = object()


class _Reconnect:
    """An outbox item: connect to `endpoint` again, in the loop that owns the socket."""

    __slots__ = ("endpoint",)

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint


MONITORED = zmq.EVENT_HANDSHAKE_FAILED_AUTH
"""Socket events a loop passes to `on_event` (a refused CURVE handshake)."""
_REPLY_SEND_PATIENCE = 5.0
"""Seconds a reply may wait for room at a slow or vanished peer before it is dropped."""


class Parked:
    """Messages whose peer had no room (a full pipe), kept per peer until they fit or expire.

    A ROUTER with ROUTER_MANDATORY answers EAGAIN when one peer's pipe is full
    (a client that does not read, or one that vanished): waiting for that peer
    would hold up every other peer's replies. Its messages wait here instead,
    in order (a later message to a peer with parked ones queues behind them),
    and are retried every RETRY_EVERY; what expires is dropped and counted.
    Bounded per peer and in all, in messages and in bytes: beyond, a new
    message is dropped at once. On a ROUTER (`routed`) the peer is the first
    frame, its routing id; any other socket has one peer.
    """

    RETRY_EVERY = 0.02  # seconds between retries while something is parked
    ROUTED_PER_PEER = 1_000  # a server's bound per client: a few slow ones cannot take it all

    def __init__(
        self,
        per_peer: int = 10_000,
        total: int = 50_000,
        per_peer_bytes: int = 64 << 20,
        total_bytes: int = 256 << 20,
    ) -> None:
        self.per_peer, self.total = per_peer, total
        self.per_peer_bytes, self.total_bytes = per_peer_bytes, total_bytes
        self.routed = False
        self._queues: dict[bytes, deque[tuple[list[bytes], float, int]]] = {}
        self._bytes: dict[bytes, int] = {}
        self._count = 0
        self._total_bytes = 0
        self._next_retry = 0.0
        self.dropped = 0

    def for_socket(self, socket_type: int) -> None:
        """Fit the bounds to the socket: on a ROUTER each peer is one client of many."""
        self.routed = socket_type == zmq.ROUTER
        if self.routed:
            self.per_peer = min(self.per_peer, self.ROUTED_PER_PEER)

    def __bool__(self) -> bool:
        return self._count > 0

    def __len__(self) -> int:
        return self._count

    @property
    def peers(self) -> int:
        """How many peers have messages waiting."""
        return len(self._queues)

    def _key(self, frames: list[bytes]) -> bytes:
        return frames[0] if self.routed else b""

    def holds(self, frames: list[bytes]) -> bool:
        """Whether messages to this peer are waiting (a new one must go behind them)."""
        return bool(self._queues) and self._key(frames) in self._queues

    def park(self, frames: list[bytes], expires: float) -> None:
        key = self._key(frames)
        size = sum(len(f) for f in frames)
        waiting = self._queues.get(key)
        if (
            self._count >= self.total
            or self._total_bytes + size > self.total_bytes
            or (waiting is not None and len(waiting) >= self.per_peer)
            or self._bytes.get(key, 0) + size > self.per_peer_bytes
        ):
            self.dropped += 1
            return
        if waiting is None:
            waiting = self._queues[key] = deque()
        waiting.append((frames, expires, size))
        self._bytes[key] = self._bytes.get(key, 0) + size
        self._count += 1
        self._total_bytes += size

    def due(self, now: float) -> bool:
        """Whether a retry pass is due (at most one every RETRY_EVERY)."""
        return self._count > 0 and now >= self._next_retry

    def retry(self, send: Callable[[list[bytes]], None], now: float) -> None:
        """Send what fits, peer by peer, oldest first; drop what expired.

        `send` raises zmq.Again when the peer still has no room (that peer
        waits for the next pass) and zmq.ZMQError when it cannot be reached.
        """
        for key in list(self._queues):
            waiting = self._queues[key]
            while waiting:
                frames, expires, size = waiting[0]
                if now >= expires:
                    self.dropped += 1
                else:
                    try:
                        send(frames)
                    except zmq.Again:
                        break
                    except zmq.ZMQError as exc:
                        self.dropped += 1
                        log.debug("send failed: %s", exc)
                waiting.popleft()
                self._count -= 1
                self._total_bytes -= size
                self._bytes[key] -= size
            if not waiting:
                del self._queues[key]
                del self._bytes[key]
        self._next_retry = time.monotonic() + self.RETRY_EVERY

    def discard(self) -> None:
        """Drop everything still waiting (the socket closes), counting it."""
        self.dropped += self._count
        self._queues.clear()
        self._bytes.clear()
        self._count = self._total_bytes = 0


class SocketLoop:
    """Interface of both loops."""

    socket: Any
    name: str

    def __init__(self) -> None:
        self._parked = Parked()
        self._dropped = 0
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        """Set before start(): gets the socket's monitor events (see MONITORED)."""
        self._monitor: Any = None

    def _open_monitor(self) -> None:
        if self.on_event is not None:
            self._monitor = self.socket.get_monitor_socket(MONITORED)

    def _on_monitor_frames(self, frames: list[bytes]) -> None:
        from zmq.utils.monitor import parse_monitor_message

        try:
            event = parse_monitor_message(frames)
        except Exception:  # a malformed event: nothing to act on
            return
        assert self.on_event is not None
        try:
            self.on_event(dict(event))
        except Exception:
            log.exception("socket event handler failed")

    def _close_monitor(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            try:
                self.socket.disable_monitor()
            except zmq.ZMQError:
                pass
            monitor.close(linger=0)

    @property
    def dropped_sends(self) -> int:
        """Messages dropped: expired before their peer had room, unroutable, or over a bound."""
        return self._dropped + self._parked.dropped

    def _send_or_park(self, frames: list[bytes], expires: float, now: float) -> None:
        """Send without waiting; a peer with no room gets its message parked, not the others.

        Raises zmq.ZMQError (other than EAGAIN) for the caller to judge.
        """
        parked = self._parked
        if parked.holds(frames):
            parked.park(frames, expires)  # behind that peer's waiting ones
        elif now >= expires:
            self._dropped += 1  # its deadline passed before it could be sent
        else:
            try:
                self.socket.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                parked.park(frames, expires)

    def _send_now(self, frames: list[bytes]) -> None:
        self.socket.send_multipart(frames, zmq.NOBLOCK)

    def reconnect(self, endpoint: str) -> None:
        """Connect to `endpoint` again, e.g. after the server refused our CURVE key:
        libzmq does not retry a refused handshake by itself."""
        raise NotImplementedError

    def _do_reconnect(self, endpoint: str) -> None:
        # What waits was sent for requests that were refused and failed: it must
        # not reach the server once a new handshake succeeds.
        self._parked.discard()
        try:
            self.socket.disconnect(endpoint)
        except zmq.ZMQError:
            pass  # the refused session is gone already
        try:
            self.socket.connect(endpoint)
        except zmq.ZMQError as exc:
            log.warning("%s: reconnecting to %s failed: %s", self.name, endpoint, exc)

    def start(self) -> None:
        raise NotImplementedError

    def send(self, frames: list[bytes], expires: float | None = None) -> None:
        """Queue frames; drop them if not sent by `expires` (monotonic seconds)."""
        raise NotImplementedError

    def stop(self, linger: float = 1.0) -> None:
        raise NotImplementedError


class GreenSocketLoop(SocketLoop):
    """A zmq.green socket served by a reader and a writer greenlet."""

    def __init__(
        self, factory: SocketFactory, on_frames: OnFrames, name: str, context: Any = None
    ) -> None:
        import gevent.queue
        import zmq.green

        self._factory, self._on_frames, self.name = factory, on_frames, name
        self._own_context = context is None
        self._context = zmq.green.Context() if context is None else context
        super().__init__()
        self._outbox: Any = gevent.queue.Queue()
        self._greenlets: list[Any] = []
        self.socket: Any = None

    def start(self) -> None:
        import gevent

        try:
            self.socket = self._factory(self._context)
        except BaseException:
            if self._own_context:
                self._context.term()
            raise
        self._parked.for_socket(self.socket.type)
        self._open_monitor()
        self._greenlets = [gevent.spawn(self._read), gevent.spawn(self._write)]
        if self._monitor is not None:
            self._greenlets.append(gevent.spawn(self._watch))

    def _watch(self) -> None:
        monitor = self._monitor
        while True:
            try:
                frames = monitor.recv_multipart()
            except zmq.ZMQError:
                return  # closed
            self._on_monitor_frames(frames)

    def _read(self) -> None:
        import gevent

        sock = self.socket
        received = 0
        while True:
            try:
                frames = sock.recv_multipart()
            except zmq.ZMQError as exc:
                if exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                    return
                log.warning("%s: receive failed: %s", self.name, exc)
                continue
            try:
                self._on_frames(frames)
            except Exception:
                log.exception("%s: handling a message failed", self.name)
            received += 1
            if received % 256 == 0:
                # A green recv yields only when the socket is empty: in a burst of
                # thousands of messages the replies (the writer) and the actors
                # would wait for the whole burst to be read.
                gevent.sleep(0)

    def _write(self) -> None:
        import gevent
        import gevent.queue

        parked = self._parked
        sent = 0
        while True:
            try:
                if parked and self._outbox.empty():
                    item = self._outbox.get(timeout=Parked.RETRY_EVERY)
                else:
                    item = self._outbox.get()
            except gevent.queue.Empty:
                item = None
            if item is _STOP:
                return
            if type(item) is _Reconnect:
                self._do_reconnect(item.endpoint)
                item = None
            if item is not None:
                frames, expires = item
                if expires is None:
                    expires = time.monotonic() + _REPLY_SEND_PATIENCE
                try:
                    self._send_or_park(frames, expires, time.monotonic())
                except zmq.ZMQError as exc:
                    if exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                        return
                    self._dropped += 1
                    log.debug("%s: send failed: %s", self.name, exc)
                sent += 1
                if sent % 256 == 0:
                    gevent.sleep(0)  # a long burst of sends still lets the others run
            # At most every RETRY_EVERY, also while more is queued: under a steady
            # stream a peer that has room again must not wait until its parked
            # replies expire (the thread loop retries on every pass too). Order
            # holds: what is queued for a peer with parked ones goes behind them.
            if parked:
                now = time.monotonic()
                if parked.due(now):
                    parked.retry(self._send_now, now)

    def send(self, frames: list[bytes], expires: float | None = None) -> None:
        self._outbox.put((frames, expires))

    def reconnect(self, endpoint: str) -> None:
        self._outbox.put(_Reconnect(endpoint))

    def stop(self, linger: float = 1.0) -> None:
        import gevent

        if not self._greenlets:
            return
        reader, writer, *watcher = self._greenlets
        reader.kill(block=True, timeout=linger)
        for greenlet in watcher:
            greenlet.kill(block=True, timeout=linger)
        self._outbox.put(_STOP)
        writer.join(timeout=linger)
        writer.kill(block=True, timeout=linger)
        self._greenlets = []
        self._parked.discard()
        self._close_monitor()
        self.socket.close(linger=int(linger * 1000))
        if self._own_context:
            gevent.spawn(self._context.term).join(timeout=linger)


class ThreadSocketLoop(SocketLoop):
    """A plain zmq socket owned by one I/O thread (reads and writes)."""

    def __init__(
        self, factory: SocketFactory, on_frames: OnFrames, name: str, context: Any = None
    ) -> None:
        super().__init__()
        self._factory, self._on_frames, self.name = factory, on_frames, name
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._linger = 1.0
        self._pipe_lock = threading.Lock()
        self._pipe_open = True
        self.socket: Any = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"zmq-{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(30.0):
            raise TimeoutError(f"{self.name}: the socket thread did not start within 30s")
        if self._error is not None:
            self._thread.join(5)
            self._close_pipe()
            raise self._error

    def _run(self) -> None:
        try:
            self.socket = self._factory(self._context)
        except BaseException as exc:
            self._error = exc
            if self._own_context:
                self._context.term()
            self._ready.set()
            return
        self._parked.for_socket(self.socket.type)
        try:
            self._open_monitor()
        except zmq.ZMQError as exc:
            log.warning("%s: no socket monitor: %s", self.name, exc)
        self._ready.set()
        sock = self.socket
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        monitor = self._monitor
        if monitor is not None:
            poller.register(monitor, zmq.POLLIN)
        pending: list[tuple[list[bytes], float]] = []
        parked = self._parked
        retry_ms = int(Parked.RETRY_EVERY * 1000)
        stopping = False
        while not stopping:
            try:
                events = dict(poller.poll(retry_ms if parked else None))
            except zmq.ZMQError:
                break
            if events.get(sock):
                for _ in range(256):
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    except zmq.ZMQError as exc:
                        log.warning("%s: receive failed: %s", self.name, exc)
                        break
                    try:
                        self._on_frames(frames)
                    except Exception:
                        log.exception("%s: handling a message failed", self.name)
            if monitor is not None and events.get(monitor):
                while True:
                    try:
                        frames = monitor.recv_multipart(zmq.NOBLOCK)
                    except zmq.ZMQError:
                        break
                    self._on_monitor_frames(frames)
            if self._wake_r in events:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            while True:
                try:
                    item = self._outbox.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                if type(item) is _Reconnect:
                    # What was queued before it belongs to refused requests:
                    # dropped (and counted) like the parked ones _do_reconnect drops.
                    self._dropped += len(pending)
                    pending.clear()
                    self._do_reconnect(item.endpoint)
                    continue
                pending.append(item)
            self._flush(pending)
            pending.clear()
            now = time.monotonic()
            if parked.due(now):
                parked.retry(self._send_now, now)
        parked.discard()
        self._close_monitor()
        sock.close(linger=int(self._linger * 1000))
        if self._own_context:
            self._context.term()
        self._close_pipe()

    def _flush(self, pending: list[tuple[list[bytes], float]]) -> None:
        now = time.monotonic()
        for frames, expires in pending:
            try:
                self._send_or_park(frames, expires, now)
            except zmq.ZMQError as exc:
                self._dropped += 1
                log.debug("%s: send failed: %s", self.name, exc)

    def send(self, frames: list[bytes], expires: float | None = None) -> None:
        if expires is None:
            expires = time.monotonic() + _REPLY_SEND_PATIENCE
        self._put((frames, expires) if frames is not _STOP else _STOP)

    def reconnect(self, endpoint: str) -> None:
        self._put(_Reconnect(endpoint))

    def _put(self, item: Any) -> None:
        self._outbox.put(item)
        with self._pipe_lock:
            if not self._pipe_open:
                return
            try:
                os.write(self._wake_w, b"\0")
            except OSError:
                pass  # the pipe is full: a wake-up is already pending

    def stop(self, linger: float = 1.0) -> None:
        if self._thread is None:
            return
        self._linger = linger
        self.send(_STOP)  # type: ignore[arg-type]
        self._thread.join(linger + 5)
        self._thread = None

    def _close_pipe(self) -> None:
        with self._pipe_lock:
            if not self._pipe_open:
                return
            self._pipe_open = False
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


def make_loop(
    green: bool, factory: SocketFactory, on_frames: OnFrames, name: str, context: Any = None
) -> SocketLoop:
    """The loop for the caller's concurrency model (sharing `context` if given)."""
    if green:
        return GreenSocketLoop(factory, on_frames, name, context)
    return ThreadSocketLoop(factory, on_frames, name, context)


def running_under_gevent() -> bool:
    """True when gevent has monkey-patched sockets (the daemon's setting)."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return bool(monkey.is_module_patched("socket"))
