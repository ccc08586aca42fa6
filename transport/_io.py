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
from collections.abc import Callable
from typing import Any

import zmq

log = logging.getLogger("transport.io")

SocketFactory = Callable[[Any], Any]
"""Given a context, return a configured, bound or connected socket."""
OnFrames = Callable[[list[bytes]], None]

_STOP: Any = object()
_REPLY_SEND_PATIENCE = 5.0
"""Seconds a reply may wait for room at a slow or vanished peer before it is dropped."""


class SocketLoop:
    """Interface of both loops."""

    socket: Any
    dropped_sends: int

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
        self._outbox: Any = gevent.queue.Queue()
        self._greenlets: list[Any] = []
        self.dropped_sends = 0
        self.socket: Any = None

    def start(self) -> None:
        import gevent

        try:
            self.socket = self._factory(self._context)
        except BaseException:
            if self._own_context:
                self._context.term()
            raise
        self._greenlets = [gevent.spawn(self._read), gevent.spawn(self._write)]

    def _read(self) -> None:
        sock = self.socket
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

    def _write(self) -> None:
        sock = self.socket
        while True:
            item = self._outbox.get()
            if item is _STOP:
                return
            frames, expires = item
            try:
                self._send_until(sock, frames, expires)
            except zmq.ZMQError as exc:
                if exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                    return
                self.dropped_sends += 1
                log.debug("%s: send failed: %s", self.name, exc)

    def _send_until(self, sock: Any, frames: list[bytes], expires: float | None) -> None:
        # Never block forever on a peer that is gone or full: a request is
        # dropped at its deadline, a reply after a few seconds of no room.
        limit = expires if expires is not None else time.monotonic() + _REPLY_SEND_PATIENCE
        while True:
            if time.monotonic() >= limit:
                self.dropped_sends += 1
                return
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
                return
            except zmq.Again:
                sock.poll(int(min(0.1, max(0.0, limit - time.monotonic())) * 1000) + 1, zmq.POLLOUT)

    def send(self, frames: list[bytes], expires: float | None = None) -> None:
        self._outbox.put((frames, expires))

    def stop(self, linger: float = 1.0) -> None:
        import gevent

        if not self._greenlets:
            return
        reader, writer = self._greenlets
        reader.kill(block=True, timeout=linger)
        self._outbox.put(_STOP)
        writer.join(timeout=linger)
        writer.kill(block=True, timeout=linger)
        self._greenlets = []
        self.socket.close(linger=int(linger * 1000))
        if self._own_context:
            gevent.spawn(self._context.term).join(timeout=linger)


class ThreadSocketLoop(SocketLoop):
    """A plain zmq socket owned by one I/O thread (reads and writes)."""

    def __init__(
        self, factory: SocketFactory, on_frames: OnFrames, name: str, context: Any = None
    ) -> None:
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
        self.dropped_sends = 0
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
        self._ready.set()
        sock = self.socket
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        pending: list[tuple[list[bytes], float]] = []
        stopping = False
        while not stopping:
            try:
                events = dict(poller.poll(100 if pending else None))
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
                pending.append(item)
            pending = self._flush(sock, pending)
        sock.close(linger=int(self._linger * 1000))
        if self._own_context:
            self._context.term()
        self._close_pipe()

    def _flush(
        self, sock: Any, pending: list[tuple[list[bytes], float]]
    ) -> list[tuple[list[bytes], float]]:
        now = time.monotonic()
        for index, (frames, expires) in enumerate(pending):
            if now >= expires:
                self.dropped_sends += 1  # its deadline passed while the peer had no room
                continue
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                return [p for p in pending[index:] if now < p[1]]  # retry shortly
            except zmq.ZMQError as exc:
                self.dropped_sends += 1
                log.debug("%s: send failed: %s", self.name, exc)
        return []

    def send(self, frames: list[bytes], expires: float | None = None) -> None:
        if expires is None:
            expires = time.monotonic() + _REPLY_SEND_PATIENCE
        self._outbox.put((frames, expires) if frames is not _STOP else _STOP)
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
